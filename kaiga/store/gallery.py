"""The gallery: every generated image stored once, as a content-addressed PNG plus a database row.

Files live at `<folder>/<first 2 hex>/<sha256>.png`, written atomically before the row that names
them is committed, so a crash leaves at worst an unreferenced file, never a row without its file.
Deleting keeps that order the other way round: the row's deletion is committed first, then the file
is unlinked if no row names it any more. A path is only ever built from a hash this module computed
or checked (`is_sha256`).

Browsing: `page()` lists newest first (by id, which only grows: see migration 0002), filtered by an
`ImageQuery` (prompt text, favourite, rating, board, held for review), a page at a time with a keyset cursor, so
images added meanwhile never shift a later page (no duplicates, no gaps). `export_zip()` streams
the PNGs and a records.jsonl. Boards themselves are `kaiga.store.boards`.

Review: an image whose record carries a flagged safety note (`extra.safety.flagged`, see kaiga.safety)
is stored held: listed only by `ImageQuery(held=True)` until `review()` approves it (then listed as
any other) or rejects it (then deleted, row and file).

Example:
    >>> import tempfile
    >>> from PIL import Image as PILImage
    >>> from kaiga.metadata import GenerationRecord
    >>> from kaiga.store.db import open_database
    >>> db = open_database("sqlite://")
    >>> g = Gallery(db, tempfile.mkdtemp())
    >>> rec = GenerationRecord(prompt="a red car", seed=1, sampler="ddim", steps=2, guidance=3.0,
    ...     width=8, height=8, model="m", model_hash="0123456789")
    >>> with db.session() as s:
    ...     first = g.add(s, PILImage.new("RGB", (8, 8)), rec)
    ...     again = g.add(s, PILImage.new("RGB", (8, 8)), rec)
    >>> first == again, g.file(g.get([first])[0].sha256).exists()
    (True, True)
    >>> g.set_rating(first, 5)
    >>> page = g.page(ImageQuery(text="RED", min_rating=4))
    >>> [im.id for im in page.items], page.total, page.next_cursor
    ([1], 1, None)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator

from PIL import Image as PILImage
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from kaiga.metadata import GenerationRecord, png_bytes
from kaiga.store.content import ContentFiles, is_sha256  # noqa: F401 (is_sha256 re-exported)
from kaiga.store.db import Database
from kaiga.store.tables import Board, BoardImage, Image

MAX_PAGE = 200  # images per page at most
RATINGS = range(1, 6)  # 1-5 stars; None is "not rated"
HELD, APPROVED = "held", "approved"  # Image.review; None: never flagged
DECISIONS = ("approve", "reject")


class ImageNotFound(KeyError):
    pass


def flagged(record: GenerationRecord) -> bool:
    """Whether the safety filter flagged the image (its note in `extra`; the store reads, never decides)."""
    note = record.extra.get("safety")
    return isinstance(note, dict) and note.get("flagged") is True


def check_rating(rating: int | None) -> None:
    if rating is not None and (isinstance(rating, bool) or rating not in RATINGS):
        raise ValueError(f"rating: must be between {RATINGS.start} and {RATINGS.stop - 1}, or null to clear "
                         f"(got {rating!r})")


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes even for timezone-aware columns; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class BoardRef:
    id: int
    name: str


@dataclass(frozen=True)
class ImageView:
    """An image as read at one moment (detached from any session); `boards` are the reader's boards."""

    id: int
    sha256: str
    path: str  # relative to the gallery folder
    prompt: str
    created: datetime  # UTC
    favourite: bool
    rating: int | None
    record: dict  # GenerationRecord
    job_id: str | None
    boards: tuple[BoardRef, ...] = ()
    review: str | None = None  # None (never flagged), "held" or "approved"


@dataclass(frozen=True)
class ImageQuery:
    """Which images: every field given must match (None: any)."""

    text: str | None = None  # a substring of the prompt, any case; % and _ are plain characters
    favourite: bool | None = None
    rating: int | None = None  # exactly
    min_rating: int | None = None  # at least (unrated images never match)
    board_id: int | None = None  # only images on this board (check the board's owner before)
    held: bool = False  # True: only the images held for review; False: every other one

    def where(self) -> list:
        clauses = [Image.review == HELD] if self.held else [or_(Image.review.is_(None), Image.review != HELD)]
        if self.text:
            clauses.append(Image.prompt.icontains(self.text, autoescape=True))
        if self.favourite is not None:
            clauses.append(Image.favourite.is_(self.favourite))
        if self.rating is not None:
            clauses.append(Image.rating == self.rating)
        if self.min_rating is not None:
            clauses.append(Image.rating >= self.min_rating)
        if self.board_id is not None:
            clauses.append(Image.id.in_(select(BoardImage.image_id).where(BoardImage.board_id == self.board_id)))
        return clauses


@dataclass(frozen=True)
class Page:
    items: list[ImageView]
    next_cursor: int | None  # pass it back as `cursor` for the next page; None on the last
    total: int  # images matching the query now


def boards_of(session: Session, image_ids: list[int], owner: str) -> dict[int, tuple[BoardRef, ...]]:
    """The boards of `owner` that hold each image (by board name)."""
    rows = session.execute(select(BoardImage.image_id, Board.id, Board.name).join(Board)
                           .where(BoardImage.image_id.in_(image_ids), Board.owner == owner)
                           .order_by(Board.name, Board.id)).all()
    found: dict[int, list[BoardRef]] = {}
    for image_id, board_id, name in rows:
        found.setdefault(image_id, []).append(BoardRef(board_id, name))
    return {i: tuple(refs) for i, refs in found.items()}


class _Sink:
    """A write-only stream that hands out what was written since the last `take()` (zipfile streams into it)."""

    def __init__(self):
        self._chunks: list[bytes] = []

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class Gallery(ContentFiles):
    """Stores images in `folder` (content-addressed) and their records in `db`."""

    def __init__(self, db: Database, folder: str | os.PathLike[str],
                 finish: Callable[[bytes, GenerationRecord], bytes] | None = None):
        """`finish`: the last step on each PNG's bytes before it is stored, e.g. signing its content
        credentials (the server passes kaiga.provenance's; the store itself knows nothing of signing)."""
        super().__init__(folder)
        self.db = db
        self.finish = finish

    def encode(self, image: PILImage.Image, record: GenerationRecord) -> bytes:
        """The PNG the gallery stores for `image`: its record in text chunks, then `finish` (if any)."""
        data = png_bytes(image, record)
        return self.finish(data, record) if self.finish is not None else data

    def add(self, session: Session, image: PILImage.Image, record: GenerationRecord, job_id: str | None = None) -> int:
        """Store one image (once: the same PNG bytes give the same row) and return its id.

        A signed PNG (see `finish`) differs at every signing, so the same image signed twice is two files."""
        # Written unless there: new, or its file lost to a delete that raced an earlier add (see delete).
        sha = self.put(self.encode(image, record))
        path = self.file(sha)
        existing = session.scalar(select(Image.id).where(Image.sha256 == sha))
        if existing is not None:
            return existing
        row = Image(sha256=sha, path=str(path.relative_to(self.folder)), record=record.model_dump(mode="json"),
                    prompt=record.prompt, favourite=False, job_id=job_id, review=HELD if flagged(record) else None)
        session.add(row)
        session.flush()  # assigns row.id
        return row.id

    def get(self, ids: list[int]) -> list[Image]:
        """Rows of `ids`, in that order."""
        with self.db.session() as s:
            rows = {r.id: r for r in s.scalars(select(Image).where(Image.id.in_(ids)))}
        return [rows[i] for i in ids if i in rows]

    def by_hash(self, sha256: str) -> Image | None:
        with self.db.session() as s:
            return s.scalar(select(Image).where(Image.sha256 == sha256))

    # --- browsing ----------------------------------------------------------------------------
    def page(self, query: ImageQuery = ImageQuery(), *, limit: int = 50, cursor: int | None = None,
             owner: str | None = None) -> Page:
        """Images matching `query`, newest first, `limit` of them after `cursor` (a previous page's next_cursor).

        `owner`: whose boards to list on each image (None: none).
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit: must be between 1 and {MAX_PAGE} (got {limit})")
        clauses = query.where()
        with self.db.session() as s:
            page_clauses = clauses + ([Image.id < cursor] if cursor is not None else [])
            rows = list(s.scalars(select(Image).where(*page_clauses).order_by(Image.id.desc()).limit(limit + 1)))
            total = s.scalar(select(func.count()).select_from(Image).where(*clauses)) or 0
            more = len(rows) > limit
            rows = rows[:limit]
            items = self._views(s, rows, owner)
        return Page(items, rows[-1].id if more else None, total)

    def image(self, image_id: int, owner: str | None = None) -> ImageView:
        with self.db.session() as s:
            row = s.get(Image, image_id)
            if row is None:
                raise ImageNotFound(image_id)
            return self._views(s, [row], owner)[0]

    def iter_images(self, query: ImageQuery = ImageQuery(), owner: str | None = None) -> Iterator[ImageView]:
        """Every image matching `query`, newest first, read a page at a time."""
        cursor = None
        while True:
            page = self.page(query, limit=MAX_PAGE, cursor=cursor, owner=owner)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    @staticmethod
    def _views(session: Session, rows: list[Image], owner: str | None) -> list[ImageView]:
        boards = boards_of(session, [r.id for r in rows], owner) if owner is not None and rows else {}
        return [ImageView(r.id, r.sha256, r.path, r.prompt, as_utc(r.created), r.favourite, r.rating, dict(r.record),
                          r.job_id, boards.get(r.id, ()), r.review) for r in rows]

    # --- curating ----------------------------------------------------------------------------
    def set_favourite(self, image_id: int, favourite: bool) -> None:
        self._update(image_id, favourite=bool(favourite))

    def set_rating(self, image_id: int, rating: int | None) -> None:
        """1-5 stars, or None to clear; anything else is a ValueError."""
        check_rating(rating)
        self._update(image_id, rating=rating)

    def review(self, image_id: int, decision: str) -> bool:
        """Decide on an image held for review: "approve" lists it again (blurred as it was stored: the
        original was never kept), "reject" deletes it. Returns whether it still exists. A ValueError
        for any other decision or an image that is not held."""
        if decision not in DECISIONS:
            raise ValueError(f"decision: must be one of {', '.join(DECISIONS)} (got {decision!r})")
        with self.db.session() as s:
            row = s.get(Image, image_id)
            if row is None:
                raise ImageNotFound(image_id)
            if row.review != HELD:
                raise ValueError(f"decision: image {image_id} is not held for review")
            if decision == "approve":
                row.review = APPROVED
                return True
        self.delete(image_id)
        return False

    def _update(self, image_id: int, **values) -> None:
        with self.db.session() as s:
            if s.execute(update(Image).where(Image.id == image_id).values(**values)).rowcount != 1:
                raise ImageNotFound(image_id)

    def delete(self, image_id: int) -> bool:
        """Delete an image's row and board memberships, then its file; returns whether the file went.

        The deletion is committed before the file is unlinked: a crash in between leaves an
        unreferenced file (harmless), never a row whose file is gone.
        """
        with self.db.session() as s:
            row = s.get(Image, image_id)
            if row is None:
                raise ImageNotFound(image_id)
            sha = row.sha256
            s.execute(delete(BoardImage).where(BoardImage.image_id == image_id))
            s.delete(row)
        return self.unlink_unreferenced(sha)

    def unlink_unreferenced(self, sha256: str) -> bool:
        """Remove the file of `sha256` unless a row names it (the same PNG may have been added again meanwhile).

        One race is left: an `add` of these very bytes (record and its timestamp included) whose
        transaction commits between this check and the unlink. Its row then lacks its file until the
        same PNG is added again, which writes the file back.
        """
        with self.db.session() as s:
            if s.scalar(select(Image.id).where(Image.sha256 == sha256)) is not None:
                return False
        path = self.file(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    # --- export ------------------------------------------------------------------------------
    def export_zip(self, query: ImageQuery = ImageQuery(), owner: str | None = None) -> Iterator[bytes]:
        """A zip archive, streamed in pieces: `images/<sha256>.png` for each image matching `query` and
        `records.jsonl`, one line per image (id, file, prompt, created, favourite, rating, boards, record).

        PNGs are stored as they are (they are compressed already); an image deleted while the
        archive is written is left out.
        """
        sink = _Sink()
        with tempfile.TemporaryFile() as lines, zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
            for im in self.iter_images(query, owner):
                try:
                    src = open(self.folder / im.path, "rb")
                except FileNotFoundError:
                    continue
                name = f"images/{im.sha256}.png"
                info = zipfile.ZipInfo(name, date_time=im.created.timetuple()[:6])
                info.compress_type = zipfile.ZIP_STORED
                with src, zf.open(info, "w") as dest:
                    shutil.copyfileobj(src, dest, 1 << 20)
                entry = {"id": im.id, "file": name, "sha256": im.sha256, "prompt": im.prompt,
                         "created": im.created.isoformat(), "favourite": im.favourite, "rating": im.rating,
                         "boards": [b.name for b in im.boards], "record": im.record}
                lines.write(json.dumps(entry, ensure_ascii=False).encode() + b"\n")
                yield sink.take()
            lines.seek(0)
            with zf.open("records.jsonl", "w") as dest:
                shutil.copyfileobj(lines, dest, 1 << 20)
        yield sink.take()  # the central directory, written when the ZipFile closed

