"""Boards: create, list, rename, delete, put images on and off; each user sees only their own."""

import pytest
from PIL import Image

from kaiga.metadata import GenerationRecord
from kaiga.store.boards import BoardExists, BoardNotFound, Boards
from kaiga.store.db import open_database
from kaiga.store.gallery import Gallery, ImageNotFound, ImageQuery

REC = GenerationRecord(prompt="a red car", seed=1, sampler="ddim", steps=2, guidance=3.0, width=8, height=8,
                       model="m", model_hash="0123456789")


@pytest.fixture
def gallery(database_url, tmp_path):
    db = open_database(database_url)
    yield Gallery(db, tmp_path / "gallery")
    db.engine.dispose()


def test_boards_crud_and_membership(gallery):
    with gallery.db.session() as s:
        a, b = (gallery.add(s, Image.new("RGB", (8, 8), c), REC) for c in ("red", "blue"))
    boards = Boards(gallery.db)
    cars = boards.create("ann", "cars")
    boats = boards.create("ann", "boats")
    boards.create("bob", "cars")  # names are unique per owner only
    with pytest.raises(BoardExists):
        boards.create("ann", "cars")
    for bad in ("", "   ", "x" * 101):
        with pytest.raises(ValueError, match="name"):
            boards.create("ann", bad)

    assert boards.add_image("ann", cars.id, a) is True and boards.add_image("ann", cars.id, a) is False
    assert boards.add_image("ann", cars.id, b) and boards.add_image("ann", boats.id, a)
    assert [(x.name, x.images) for x in boards.list("ann")] == [("boats", 1), ("cars", 2)]
    on_cars = gallery.page(ImageQuery(board_id=cars.id), owner="ann")
    assert [im.id for im in on_cars.items] == [b, a]
    assert [r.name for r in gallery.image(a, owner="ann").boards] == ["boats", "cars"]
    assert gallery.image(a, owner="bob").boards == ()  # bob's boards only

    with pytest.raises(BoardExists):
        boards.rename("ann", boats.id, "cars")
    assert boards.rename("ann", boats.id, "ships").name == "ships"
    assert boards.remove_image("ann", cars.id, a) is True and boards.remove_image("ann", cars.id, a) is False
    with pytest.raises(ImageNotFound):
        boards.add_image("ann", cars.id, 999)

    for other_users_call in (lambda: boards.get("bob", cars.id), lambda: boards.rename("bob", cars.id, "mine"),
                             lambda: boards.add_image("bob", cars.id, a), lambda: boards.delete("bob", cars.id)):
        with pytest.raises(BoardNotFound):
            other_users_call()
    boards.delete("ann", cars.id)
    assert [x.name for x in boards.list("ann")] == ["ships"]
    assert {im.id for im in gallery.page().items} == {a, b}  # the images stay in the gallery
