"""Content-addressed PNG files: each file named by the SHA-256 of its bytes, `<folder>/<first 2 hex>/<sha256>.png`.

The gallery's images and the uploaded init images and masks are both kept this way: a file is written
once (atomically, so a crash never leaves half a file) and never overwritten, and a path is only ever
built from a hash checked here, never from a request's text.

Example:
    >>> import tempfile
    >>> files = ContentFiles(tempfile.mkdtemp())
    >>> sha = files.put(b"png bytes")
    >>> files.file(sha).read_bytes(), files.file(sha).parent.name == sha[:2]
    (b'png bytes', True)
    >>> is_sha256("../etc/passwd")
    False
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from kaiga.metadata import write_atomic

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_sha256(text: str) -> bool:
    """A lowercase SHA-256 hex digest, the only text a content path is built from."""
    return bool(_SHA256.match(text))


class ContentFiles:
    """PNG files under `folder`, named by content."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)

    def file(self, sha256: str) -> Path:
        """The file of a hash (checked: a request's text never becomes a path unchecked)."""
        if not is_sha256(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
        return self.folder / sha256[:2] / f"{sha256}.png"

    def put(self, data: bytes) -> str:
        """Write `data` under its hash unless that file exists; returns the hash."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.file(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
        return sha
