"""Images are stored once, by content, and a request's text never becomes a path unchecked."""

import pytest
from PIL import Image

from kaiga.metadata import GenerationRecord, read_metadata
from kaiga.store.db import open_database
from kaiga.store.gallery import Gallery

REC = GenerationRecord(prompt="a red car", seed=1, sampler="ddim", steps=2, guidance=3.0, width=8, height=8,
                       model="m", model_hash="0123456789")


def test_content_addressed_file_carries_the_record(tmp_path):
    g = Gallery(open_database("sqlite://"), tmp_path)
    with g.db.session() as s:
        ids = [g.add(s, Image.new("RGB", (8, 8), c), REC) for c in ("red", "blue", "red")]
    assert ids[0] == ids[2] != ids[1]
    row = g.get([ids[1]])[0]
    path = tmp_path / row.path
    assert path == g.file(row.sha256) and path.name == f"{row.sha256}.png"
    assert read_metadata(path).record == REC


@pytest.mark.parametrize("bad", ["../../etc/passwd", "a" * 63, "A" * 64, "0" * 64 + "/x"])
def test_only_hashes_become_paths(tmp_path, bad):
    with pytest.raises(ValueError):
        Gallery(open_database("sqlite://"), tmp_path).file(bad)
