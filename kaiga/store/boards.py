"""Boards: named collections of gallery images, each owned by one user.

A board belongs to the user who made it (the API caller's name); other users neither see nor
change it, and a board name is unique per owner. Images are shared: one image may be on many
boards, and deleting a board leaves its images in the gallery.

Example:
    >>> from kaiga.store.db import open_database
    >>> from kaiga.store.tables import Image
    >>> db = open_database("sqlite://")
    >>> with db.session() as s:
    ...     s.add(Image(id=1, sha256="0" * 64, path="x.png", record={}, prompt="a red car", favourite=False))
    >>> boards = Boards(db)
    >>> cars = boards.create("ann", "cars")
    >>> boards.add_image("ann", cars.id, 1), boards.add_image("ann", cars.id, 1)
    (True, False)
    >>> [(b.name, b.images) for b in boards.list("ann")], boards.list("bob")
    ([('cars', 1)], [])
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from kaiga.store.db import Database
from kaiga.store.gallery import ImageNotFound, as_utc
from kaiga.store.tables import Board, BoardImage, Image, utcnow

MAX_NAME = 100  # characters in a board name


class BoardNotFound(KeyError):
    """No such board, or it is another user's (the same answer: whether it exists is not told)."""


class BoardExists(ValueError):
    """The owner already has a board of that name."""


@dataclass(frozen=True)
class BoardView:
    id: int
    name: str
    created: datetime  # UTC
    images: int  # how many images it holds


def check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name: must contain some text")
    if len(name) > MAX_NAME:
        raise ValueError(f"name: at most {MAX_NAME} characters (got {len(name)})")


class Boards:
    """Create, list, rename and delete boards in `db`, and put images on them."""

    def __init__(self, db: Database):
        self.db = db

    def create(self, owner: str, name: str) -> BoardView:
        check_name(name)
        board = Board(owner=owner, name=name, created=utcnow())
        try:
            with self.db.session() as s:
                s.add(board)
        except IntegrityError:  # the unique (owner, name) constraint, also when two requests race
            raise BoardExists(f"name: you already have a board called {name!r}") from None
        return BoardView(board.id, board.name, as_utc(board.created), 0)

    def list(self, owner: str) -> list[BoardView]:
        """The owner's boards by name, with their image counts."""
        counts = (select(BoardImage.board_id, func.count().label("n")).group_by(BoardImage.board_id).subquery())
        with self.db.session() as s:
            rows = s.execute(select(Board, func.coalesce(counts.c.n, 0))
                             .outerjoin(counts, counts.c.board_id == Board.id)
                             .where(Board.owner == owner).order_by(Board.name, Board.id)).all()
            return [BoardView(b.id, b.name, as_utc(b.created), n) for b, n in rows]

    def get(self, owner: str, board_id: int) -> BoardView:
        with self.db.session() as s:
            board = self._owned(s, owner, board_id)
            n = s.scalar(select(func.count()).select_from(BoardImage).where(BoardImage.board_id == board_id)) or 0
            return BoardView(board.id, board.name, as_utc(board.created), n)

    def rename(self, owner: str, board_id: int, name: str) -> BoardView:
        check_name(name)
        try:
            with self.db.session() as s:
                self._owned(s, owner, board_id).name = name
        except IntegrityError:
            raise BoardExists(f"name: you already have a board called {name!r}") from None
        return self.get(owner, board_id)

    def delete(self, owner: str, board_id: int) -> None:
        """Delete the board and its memberships; its images stay in the gallery."""
        with self.db.session() as s:
            self._owned(s, owner, board_id)
            s.execute(delete(BoardImage).where(BoardImage.board_id == board_id))
            s.execute(delete(Board).where(Board.id == board_id))

    def add_image(self, owner: str, board_id: int, image_id: int) -> bool:
        """Put an image on the board; False if it was there already."""
        try:
            with self.db.session() as s:
                self._owned(s, owner, board_id)
                if s.get(Image, image_id) is None:
                    raise ImageNotFound(image_id)
                if s.get(BoardImage, (board_id, image_id)) is not None:
                    return False
                s.add(BoardImage(board_id=board_id, image_id=image_id, added=utcnow()))
        except IntegrityError:  # added by a concurrent request, or the image deleted meanwhile
            with self.db.session() as s:
                if s.get(BoardImage, (board_id, image_id)) is not None:
                    return False
            raise ImageNotFound(image_id) from None
        return True

    def remove_image(self, owner: str, board_id: int, image_id: int) -> bool:
        """Take an image off the board; False if it was not on it."""
        with self.db.session() as s:
            self._owned(s, owner, board_id)
            return s.execute(delete(BoardImage).where(BoardImage.board_id == board_id,
                                                      BoardImage.image_id == image_id)).rowcount == 1

    @staticmethod
    def _owned(session, owner: str, board_id: int) -> Board:
        board = session.get(Board, board_id)
        if board is None or board.owner != owner:
            raise BoardNotFound(board_id)
        return board
