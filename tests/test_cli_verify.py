"""`kaiga keys init-signing` and `kaiga verify` (issue 20, items 1 and 2): a key made once (by the command or the
first image written), every PNG of `kaiga generate` signed with it and watermarked, and verify's verdict in its exit code (0 trusted and marked,
1 not, 2 bad input)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from kaiga.cli import app
from kaiga.metadata import GenerationRecord, png_bytes, read_metadata
from kaiga.paths import model_home
from kaiga.provenance.credentials import read_credentials

RECORD = GenerationRecord(prompt="a red car", seed=7, sampler="ddim", steps=2, guidance=3.0, width=64, height=64,
                          model="scenes-diffusion", model_hash="0123456789")


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def kaiga(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The `kaiga` command as a person runs it (KAIGA_HOME is the test's, from tests/conftest.py)."""
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], check=False, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.fixture
def signing():
    r = cli("keys", "init-signing")
    assert r.exit_code == 0, r.output
    return model_home() / "signing"


def test_init_signing_makes_the_files_once(signing):
    assert sorted(p.name for p in signing.iterdir()) == ["chain.pem", "key.pem", "root.pem"]
    assert stat.S_IMODE((signing / "key.pem").stat().st_mode) == 0o600
    key = (signing / "key.pem").read_bytes()
    again = cli("keys", "init-signing")
    assert again.exit_code == 2 and "--force" in again.output and "Traceback" not in again.output
    assert (signing / "key.pem").read_bytes() == key
    assert cli("keys", "init-signing", "--force").exit_code == 0 and (signing / "key.pem").read_bytes() != key


def test_generate_signs_with_a_key_and_verify_trusts_it(signing, tmp_path):
    r = kaiga("generate", "a red car in the snow", "--seed", "3", "--steps", "2", "--n", "2", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 2
    for png in pngs:
        report = read_credentials(png.read_bytes())
        assert report["status"] == "trusted", report
        assert report["model"]["hash"] == read_metadata(png).record.model_hash
    shown = cli("verify", str(pngs[0]))
    assert shown.exit_code == 0, shown.output
    assert "trusted" in shown.output and "names this image's record" in shown.output
    assert "a red car in the snow" in shown.output
    as_json = json.loads(cli("verify", str(pngs[0]), "--json").output)
    assert as_json["ok"] and as_json["credentials"]["status"] == "trusted"
    record = read_metadata(pngs[0]).record
    assert as_json["record"]["seed"] == record.seed
    mark = as_json["watermark"]
    assert mark["status"] == "found" and mark["payload"] == record.extra["watermark"] and mark["matches_record"]
    assert mark["p_value"] <= 1e-3
    assert as_json["credentials"]["soft_binding"] == record.extra["watermark"]  # the manifest names the mark


def test_a_reencoded_copy_loses_its_credentials_but_keeps_its_watermark(signing, tmp_path):
    r = kaiga("generate", "a red car in the snow", "--seed", "5", "--steps", "2", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    [png] = tmp_path.glob("*.png")
    payload = read_metadata(png).record.extra["watermark"]
    copy = tmp_path / "copy.jpg"
    Image.open(png).convert("RGB").save(copy, quality=75)
    shown = cli("verify", str(copy), "--json")
    assert shown.exit_code == 1  # no credentials: not a verified kaiga image, but still traceable
    result = json.loads(shown.output)
    assert result["credentials"]["status"] == "none" and result["record"] is None
    assert result["watermark"]["status"] == "found" and result["watermark"]["payload"] == payload


def test_generate_signs_by_default_unless_signing_is_off(tmp_path):
    """With no identity yet, the first generate makes one and signs (verify trusts it); KAIGA_SIGNING=off
    writes unsigned PNGs."""
    r = kaiga("generate", "a red car", "--seed", "3", "--steps", "2", "--out", str(tmp_path / "on"))
    assert r.returncode == 0, r.stderr
    [png] = (tmp_path / "on").glob("*.png")
    assert b"caBX" in png.read_bytes() and (model_home() / "signing" / "key.pem").exists()
    assert cli("verify", str(png)).exit_code == 0
    r = kaiga("generate", "a red car", "--seed", "3", "--steps", "2", "--out", str(tmp_path / "off"),
              env={"KAIGA_SIGNING": "off"})
    [png] = (tmp_path / "off").glob("*.png")
    assert r.returncode == 0 and b"caBX" not in png.read_bytes()


def test_a_tampered_image_fails(signing, tmp_path):
    from kaiga.provenance.credentials import sign_png

    data = bytearray(sign_png(png_bytes(Image.new("RGB", (64, 64), "red"), RECORD), RECORD))
    data[data.index(b"IDAT") + 12] ^= 0x01
    path = tmp_path / "tampered.png"
    path.write_bytes(bytes(data))
    r = cli("verify", str(path))
    assert r.exit_code == 1 and "tampered" in r.output
    assert json.loads(cli("verify", str(path), "--json").output)["credentials"]["status"] == "tampered"


def test_an_unsigned_image_fails(tmp_path):
    path = tmp_path / "plain.png"
    path.write_bytes(png_bytes(Image.new("RGB", (64, 64), "red"), RECORD))
    r = cli("verify", str(path))
    assert r.exit_code == 1 and "no content credentials" in r.output and "a red car" in r.output
    assert "not found" in r.output  # an image kaiga did not mark


def test_a_bad_path_is_one_line(tmp_path):
    r = cli("verify", str(tmp_path / "missing.png"))
    assert r.exit_code == 2 and "does not exist" in r.output and len(r.output.strip().splitlines()) == 1
