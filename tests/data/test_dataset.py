import json

import pytest

from kaiga.data.dataset import DatasetError, read_metadata, scene_example, write_scenes


def test_write_scenes_writes_the_training_format(tmp_path):
    write_scenes(tmp_path, n=5, seed=1)
    rows = [json.loads(line) for line in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all((tmp_path / r["file_name"]).is_file() for r in rows)
    assert all(isinstance(r["text"], list) and r["attributes"]["scene"] for r in rows)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {a["object"] for a in manifest["assets"]} >= {"car", "dog"}
    assert all(a["font_licence"] == "SIL OFL-1.1" and a["image_licence"] == "Apache-2.0" for a in manifest["assets"])
    assert manifest["held_out_pairs"]["object_colour"]


def test_each_example_renders_alone_the_same_way(tmp_path):
    write_scenes(tmp_path, n=3, seed=4)
    image, captions, attrs = scene_example(2, seed=4)
    row = json.loads((tmp_path / "metadata.jsonl").read_text().splitlines()[2])
    assert row["text"] == captions and row["attributes"] == attrs


def test_workers_write_the_same_folder(tmp_path):
    one, three = write_scenes(tmp_path / "one", n=7, seed=2), write_scenes(tmp_path / "three", n=7, seed=2, workers=3)
    assert (one / "metadata.jsonl").read_bytes() == (three / "metadata.jsonl").read_bytes()
    assert all((one / name).read_bytes() == (three / name).read_bytes() for name in ("000000.png", "000006.png"))


def test_read_metadata_accepts_a_user_folder_with_one_caption_per_image(tmp_path):
    from PIL import Image

    Image.new("RGB", (100, 80), "red").save(tmp_path / "a.jpg")
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "a.jpg", "text": "a red square"}) + "\n")
    [ex] = read_metadata(tmp_path)
    assert ex.captions == ("a red square",) and ex.attributes is None


@pytest.mark.parametrize("line, message", [
    ('{"file_name": "missing.png", "text": "x"}', "not a file"),
    ('{"file_name": "../etc/passwd", "text": "x"}', "not a file"),
    ('{"text": "x"}', "needs file_name"),
    ("not json", "needs file_name"),
])
def test_read_metadata_names_the_bad_line(tmp_path, line, message):
    (tmp_path / "metadata.jsonl").write_text(line + "\n")
    with pytest.raises(DatasetError, match=message):
        read_metadata(tmp_path)
    with pytest.raises(DatasetError, match="no metadata.jsonl"):
        read_metadata(tmp_path / "nowhere")
