"""The gallery: every generated image stored once, as a content-addressed PNG plus a database row.

Files live at `<folder>/<first 2 hex>/<sha256>.png`, written atomically before the row that names
them is committed, so a crash leaves at worst an unreferenced file, never a row without its file.
A path is only ever built from a hash this module computed or checked (`is_sha256`).

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
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from kaiga.metadata import GenerationRecord, png_bytes, write_atomic
from kaiga.store.db import Database
from kaiga.store.models import Image

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_sha256(text: str) -> bool:
    return bool(_SHA256.match(text))


class Gallery:
    """Stores images in `folder` and their records in `db`."""

    def __init__(self, db: Database, folder: str | os.PathLike[str]):
        self.db = db
        self.folder = Path(folder)

    def file(self, sha256: str) -> Path:
        """The file of an image by its hash (checked: a request's text never becomes a path unchecked)."""
        if not is_sha256(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
        return self.folder / sha256[:2] / f"{sha256}.png"

    def add(self, session: Session, image: PILImage.Image, record: GenerationRecord, job_id: str | None = None) -> int:
        """Store one image (once: the same PNG bytes give the same row) and return its id."""
        data = png_bytes(image, record)
        sha = hashlib.sha256(data).hexdigest()
        existing = session.scalar(select(Image.id).where(Image.sha256 == sha))
        if existing is not None:
            return existing
        path = self.file(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
        row = Image(sha256=sha, path=str(path.relative_to(self.folder)), record=record.model_dump(mode="json"),
                    prompt=record.prompt, favourite=False, job_id=job_id)
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

