"""`kaiga data import` as a subprocess on a real folder: a phone JPEG with GPS and a face, a captioned PNG,
a consent file, and the refusals (an --out inside the source or not empty) as one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from PIL import Image

from kaiga.provenance.faces import detect_faces
from tests.provenance.photos import drawn_face, phone_jpeg


def kaiga(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kaiga", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _folder(tmp_path):
    src = tmp_path / "mine"
    (src / "trip").mkdir(parents=True)
    (src / "trip" / "me.jpg").write_bytes(phone_jpeg(drawn_face(96)))
    (src / "friend.jpg").write_bytes(phone_jpeg(drawn_face(80), thumbnail=False))
    Image.new("RGB", (32, 32), "blue").save(src / "sky.png")
    rows = [{"file_name": "trip/me.jpg", "text": "me on a trip"},
            {"file_name": "friend.jpg", "text": "a friend", "faces_consent": True},
            {"file_name": "sky.png", "text": ["a blue sky", "sky"]}]
    (src / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return src, rows


def test_import_cleans_a_folder_carries_its_captions_and_reports_what_it_removed(tmp_path):
    src, rows = _folder(tmp_path)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    r = kaiga("data", "import", src, "--out", tmp_path / "clean")
    assert r.returncode == 0, r.stderr
    assert "with GPS" in r.stdout and "faces blurred" in r.stdout
    out = tmp_path / "clean"
    assert [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()] == rows
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before  # the source untouched
    for name in ("trip/me.jpg", "friend.jpg"):
        data = (out / name).read_bytes()
        assert b"Exif" not in data and b"Canon" not in data and b"xmpmeta" not in data
    assert detect_faces(Image.open(out / "trip" / "me.jpg")) == ()  # blurred
    assert len(detect_faces(Image.open(out / "friend.jpg"))) == 1  # its line records consent
    report = json.loads((out / "privacy-report.json").read_text())
    by_name = {e["file_name"]: e for e in report["images"]}
    assert set(by_name) == {"trip/me.jpg", "friend.jpg", "sky.png"}
    assert by_name["trip/me.jpg"]["gps"] and by_name["trip/me.jpg"]["thumbnail"] and by_name["trip/me.jpg"]["faces_blurred"]
    assert by_name["friend.jpg"]["faces_consent"] and not by_name["friend.jpg"]["faces_blurred"]
    assert by_name["sky.png"]["removed"] == [] and by_name["sky.png"]["faces"] == []
    assert report["totals"]["with_gps"] == 2 and report["totals"]["faces_blurred"] == 1


def test_a_consent_file_keeps_the_faces_it_names_and_a_name_not_in_the_folder_is_refused(tmp_path):
    src = tmp_path / "mine"
    src.mkdir()
    drawn_face(96).save(src / "a.png")
    drawn_face(96).save(src / "b.png")
    consent = tmp_path / "consent.txt"
    consent.write_text("# signed forms in the drawer\na.png\n")
    r = kaiga("data", "import", src, "--out", tmp_path / "clean", "--consent", consent)
    assert r.returncode == 0, r.stderr
    report = {e["file_name"]: e for e in json.loads((tmp_path / "clean" / "privacy-report.json").read_text())["images"]}
    assert report["a.png"]["faces_consent"] and not report["a.png"]["faces_blurred"]
    assert report["b.png"]["faces_blurred"]
    assert not (tmp_path / "clean" / "metadata.jsonl").exists()  # none in the source, none made up
    consent.write_text("c.png\n")
    r = kaiga("data", "import", src, "--out", tmp_path / "other", "--consent", consent)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "consent.txt:1: 'c.png' is not an image in" in r.stderr
    assert not (tmp_path / "other").exists()


def test_an_out_inside_the_source_or_not_empty_is_refused_in_one_line(tmp_path):
    src, _ = _folder(tmp_path)
    r = kaiga("data", "import", src, "--out", src / "clean")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "is inside" in r.stderr and "Traceback" not in r.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("keep me")
    r = kaiga("data", "import", src, "--out", full)
    assert r.returncode == 2 and "is not empty" in r.stderr and (full / "x").read_text() == "keep me"
    r = kaiga("data", "import", tmp_path / "nowhere", "--out", tmp_path / "o")
    assert r.returncode == 2 and "DIR:" in r.stderr and "does not exist" in r.stderr


def test_a_broken_metadata_line_is_named_and_an_unreadable_image_is_skipped_with_exit_1(tmp_path):
    src = tmp_path / "mine"
    src.mkdir()
    (src / "metadata.jsonl").write_text('{"text": "no file name"}\n')
    r = kaiga("data", "import", src, "--out", tmp_path / "o")
    assert r.returncode == 2 and "metadata.jsonl:1: needs a file_name" in r.stderr
    (src / "metadata.jsonl").unlink()
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    Image.new("RGB", (8, 8)).save(src / "fine.png")
    r = kaiga("data", "import", src, "--out", tmp_path / "o")
    assert r.returncode == 1 and "skipped: broken.jpg: not a readable PNG, JPEG or WebP image" in r.stderr
    assert (tmp_path / "o" / "fine.png").is_file() and not (tmp_path / "o" / "broken.jpg").exists()
