"""Images are stored once, by content, and a request's text never becomes a path unchecked; the
gallery pages, searches, filters, rates, deletes and exports (on SQLite and PostgreSQL)."""

import io
import json
import zipfile

import pytest
from PIL import Image

from kaiga.metadata import GenerationRecord, read_metadata
from kaiga.store.boards import Boards
from kaiga.store.db import open_database
from kaiga.store.gallery import Gallery, ImageNotFound, ImageQuery

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


# --- browsing, curating, deleting, exporting: on SQLite and PostgreSQL ------------------------------
@pytest.fixture
def gallery(database_url, tmp_path):
    db = open_database(database_url)
    yield Gallery(db, tmp_path / "gallery")
    db.engine.dispose()


def _add(g, prompt, shade=0):
    with g.db.session() as s:
        return g.add(s, Image.new("RGB", (8, 8), (shade, 0, 0)), REC.model_copy(update={"prompt": prompt}))


def test_pages_have_no_duplicates_or_gaps_while_images_arrive(gallery):
    first = [_add(gallery, f"car {i}") for i in range(10)]
    seen, cursor, page_no = [], None, 0
    while True:
        page = gallery.page(limit=3, cursor=cursor)
        seen += [im.id for im in page.items]
        for i in range(2):  # new images arrive between page requests: they belong before page one
            _add(gallery, f"new {page_no} {i}")
        page_no += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(first, reverse=True)  # newest first, each exactly once
    assert gallery.page(limit=200).total == 10 + 2 * page_no
    with pytest.raises(ValueError, match="limit"):
        gallery.page(limit=0)


def test_search_is_a_case_insensitive_substring_with_wildcards_taken_literally(gallery):
    ids = {p: _add(gallery, p) for p in ["100% cotton", "1000 cotton", "snake_case", "snakeXcase",
                                         "a/b", "ab", "back\\slash", "A RED car"]}

    def found(text):
        return {im.prompt for im in gallery.page(ImageQuery(text=text)).items}

    assert found("0%") == {"100% cotton"}
    assert found("e_c") == {"snake_case"}
    assert found("%") == {"100% cotton"} and found("_") == {"snake_case"}
    assert found("a/") == {"a/b"} and found("\\") == {"back\\slash"}
    assert found("red CAR") == {"A RED car"}
    assert len(ids) == 8 and found("nothing like it") == set()


def test_favourite_and_rating_filters_and_rating_validation(gallery):
    a, b, c = (_add(gallery, p) for p in ("a", "b", "c"))
    gallery.set_favourite(a, True)
    gallery.set_rating(a, 5)
    gallery.set_rating(b, 3)
    gallery.set_rating(c, 4)
    gallery.set_rating(c, None)  # cleared
    ids = lambda **q: [im.id for im in gallery.page(ImageQuery(**q)).items]  # noqa: E731
    assert ids(favourite=True) == [a] and ids(favourite=False) == [c, b]
    assert ids(rating=3) == [b] and ids(min_rating=3) == [b, a] and ids(min_rating=4, favourite=True) == [a]
    for bad in (0, 6, -1, True):
        with pytest.raises(ValueError, match="rating: must be between 1 and 5"):
            gallery.set_rating(a, bad)
    assert gallery.image(a).rating == 5 and gallery.image(c).rating is None
    with pytest.raises(ImageNotFound):
        gallery.set_favourite(999, True)


def test_delete_removes_row_memberships_and_file_only_when_unreferenced(gallery):
    keep, gone = _add(gallery, "keep", 1), _add(gallery, "gone", 2)
    boards = Boards(gallery.db)
    board = boards.create("ann", "b")
    boards.add_image("ann", board.id, gone)
    boards.add_image("ann", board.id, keep)
    gone_file = gallery.folder / gallery.image(gone).path
    assert gallery.delete(gone) is True
    assert not gone_file.exists() and (gallery.folder / gallery.image(keep).path).exists()
    assert boards.get("ann", board.id).images == 1
    with pytest.raises(ImageNotFound):
        gallery.image(gone)
    with pytest.raises(ImageNotFound):
        gallery.delete(gone)
    assert _add(gallery, "gone", 2) != gone  # the same PNG again: a new row, never the old id
    # The same PNG stored again between the committed deletion and the unlink: its file must stay.
    again = gallery.image(gallery.page(ImageQuery(text="gone")).items[0].id)
    assert gallery.unlink_unreferenced(again.sha256) is False and gone_file.exists()
    gone_file.unlink()  # as if that race had been lost: adding the same PNG again puts the file back
    assert _add(gallery, "gone", 2) == again.id and gone_file.exists()


def test_export_zip_holds_every_png_and_record(gallery):
    ids = [_add(gallery, f"car {i}", i) for i in range(3)]
    gallery.set_rating(ids[0], 4)
    boards = Boards(gallery.db)
    board = boards.create("ann", "best")
    boards.add_image("ann", board.id, ids[1])
    data = b"".join(gallery.export_zip(owner="ann"))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        lines = [json.loads(line) for line in zf.read("records.jsonl").decode().splitlines()]
        assert [e["id"] for e in lines] == ids[::-1]
        for e in lines:
            im = gallery.image(e["id"])
            assert e["file"] == f"images/{im.sha256}.png"
            assert zf.read(e["file"]) == (gallery.folder / im.path).read_bytes()
            assert e["record"] == im.record and GenerationRecord(**e["record"]).prompt == e["prompt"]
        assert sorted(zf.namelist()) == sorted([e["file"] for e in lines] + ["records.jsonl"])
        assert lines[-1]["rating"] == 4 and lines[1]["boards"] == ["best"]
    only_board = b"".join(gallery.export_zip(ImageQuery(board_id=board.id), owner="ann"))
    with zipfile.ZipFile(io.BytesIO(only_board)) as zf:
        assert len(zf.namelist()) == 2 and zf.read("records.jsonl").count(b"\n") == 1
