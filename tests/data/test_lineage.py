"""Training-data lineage: what each item says, the dataset's defaults, the refusal of unlicensed items and
the opt-out list matched by perceptual hash (on real files, re-encoded and resized)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from kaiga.data.admit import UnlicensedError, admit
from kaiga.data.dataset import DatasetError, read_metadata, scene_example, write_scenes
from kaiga.data.lineage import LINEAGE_FILE
from kaiga.data.optout import OptOutError, OptOutList, add_to_list, default_list_path, image_hash


def user_folder(tmp_path, rows: list[dict], default: dict | None = None):
    """A user's imagefolder of scenes renders (their own pixels, no manifest) with the given metadata columns."""
    for i, row in enumerate(rows):
        scene_example(i, seed=5)[0].save(tmp_path / f"im{i}.png")
        row.setdefault("file_name", f"im{i}.png")
        row.setdefault("text", "a picture")
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if default is not None:
        (tmp_path / LINEAGE_FILE).write_text(json.dumps(default))
    return tmp_path


def test_scenes_renders_carry_their_lineage_per_item(tmp_path):
    write_scenes(tmp_path, n=3)
    rows = [json.loads(line) for line in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    assert {(r["licence"], r["consent"]) for r in rows} == {("Apache-2.0", "not-applicable")}
    assert all("Noto Color Emoji" in r["source"] for r in rows)
    assert all(ex.lineage.licensed for ex in read_metadata(tmp_path))


def test_an_older_scenes_folder_gets_its_lineage_from_the_manifest(tmp_path):
    write_scenes(tmp_path, n=2)
    meta = tmp_path / "metadata.jsonl"
    rows = [json.loads(line) for line in meta.read_text().splitlines()]
    meta.write_text("".join(json.dumps({k: r[k] for k in ("file_name", "text")}) + "\n" for r in rows))
    assert {ex.lineage.licence for ex in read_metadata(tmp_path)} == {"Apache-2.0"}


def test_an_item_says_more_than_the_dataset_default(tmp_path):
    folder = user_folder(tmp_path, [{"licence": "CC0-1.0"}, {}, {"consent": "given"}],
                         default={"source": "my photos", "licence": "CC-BY-4.0"})
    got = [(ex.lineage.source, ex.lineage.licence, ex.lineage.consent) for ex in read_metadata(folder)]
    assert got == [("my photos", "CC0-1.0", "unknown"), ("my photos", "CC-BY-4.0", "unknown"),
                   ("my photos", "CC-BY-4.0", "given")]


def test_a_bad_consent_names_the_line(tmp_path):
    folder = user_folder(tmp_path, [{"licence": "MIT"}, {"licence": "MIT", "consent": "yes"}])
    with pytest.raises(DatasetError, match=r"metadata.jsonl:2: consent must be given, not-applicable, unknown"):
        read_metadata(folder)


def test_unlicensed_items_are_refused_unless_allowed(tmp_path):
    folder = user_folder(tmp_path, [{"licence": "CC-BY-4.0"}, {}, {"licence": "unknown"}, {}, {}])
    with pytest.raises(UnlicensedError) as e:
        admit(folder)
    assert "4 of 5 items have no licence (im1.png, im2.png, im3.png, ...)" in str(e.value)
    assert "--allow-unlicensed" in str(e.value)
    a = admit(folder, allow_unlicensed=True)
    block = a.data_block()
    assert (len(a.examples), a.unlicensed_allowed) == (5, 4)
    assert block["licences"] == {"none": 4, "CC-BY-4.0": 1} and block["consent"] == {"unknown": 5}


def test_an_opted_out_image_is_left_out_even_re_encoded_and_resized(tmp_path):
    data = write_scenes(tmp_path / "data", n=12, seed=1)
    original = Image.open(data / "000004.png").convert("RGB")
    copy = tmp_path / "copy.jpg"  # what the owner has: an enlarged JPEG of it, not the training file
    original.resize((256, 256), Image.LANCZOS).save(copy, quality=70)
    listed = add_to_list(default_list_path(), [copy])
    assert default_list_path().read_text().startswith(listed[0]) and "# copy.jpg" in default_list_path().read_text()
    a = admit(data)  # the default list, $KAIGA_HOME/opt-out.txt
    assert [p.name for p in a.opted_out] == ["000004.png"] and len(a.examples) == 11
    assert a.data_block()["opted_out"] == 1 and "000004.png" in a.summary()


def test_an_opt_out_list_takes_hashes_and_image_paths(tmp_path):
    a, b = scene_example(0, seed=2)[0], scene_example(1, seed=2)[0]
    b.save(tmp_path / "b.png")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# people who asked\n{image_hash(a):064x}\nb.png  # by path, next to the list\n")
    opt = OptOutList.read(listing)
    assert len(opt) == 2 and opt.matches(image_hash(a)) and opt.matches(image_hash(b))
    assert not opt.matches(image_hash(scene_example(2, seed=2)[0]))
    listing.write_text("not-a-hash.png\n")
    with pytest.raises(OptOutError, match=r"list.txt:1: 'not-a-hash.png' is neither"):
        OptOutList.read(listing)


def test_an_opt_out_list_of_the_whole_dataset_leaves_nothing(tmp_path):
    data = write_scenes(tmp_path / "data", n=2, seed=1)
    listing = tmp_path / "all.txt"
    listing.write_text("".join(f"{image_hash(p):064x}\n" for p in sorted(data.glob("*.png"))))
    with pytest.raises(DatasetError, match="every item is on the opt-out list"):
        admit(data, opt_out=listing)
