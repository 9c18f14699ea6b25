"""Read a safetensors file's JSON header without loading any tensor (cheap even for multi-GB files).

The header says what a file is (its tensor names, its `__metadata__`), so formats are decided by
content, never by file name. No torch import: identifying a file stays instant.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.ckpt")
    >>> open(path, "wb").write(b"\\x80\\x04not safetensors")
    17
    >>> read_header(path) is None
    True
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit on the JSON header


@dataclass(frozen=True)
class TensorEntry:
    dtype: str  # the format's name: "F32", "F16", "BF16", "I64", ...
    shape: tuple[int, ...]
    start: int  # byte offsets in the file (the header's data_offsets plus the header's own length)
    end: int


def _read(path: str | Path) -> tuple[dict[str, Any], int] | None:
    """The JSON header and the offset of the first tensor byte, or None when `path` is not safetensors."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                return None
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > MAX_HEADER:
                return None
            raw = f.read(n)
        if len(raw) != n:
            return None
        header = json.loads(raw)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return (header, 8 + n) if isinstance(header, dict) else None


def read_header(path: str | Path) -> dict[str, Any] | None:
    """The JSON header (tensor entries plus ``__metadata__``), or None when `path` is not safetensors."""
    found = _read(path)
    return found[0] if found else None


def tensor_entries(path: str | Path) -> dict[str, TensorEntry] | None:
    """Where each tensor of `path` lies (file offsets), in file order; None when `path` is not safetensors.

    What a reader needs to load tensors one at a time with plain reads, never the whole file at once.
    """
    found = _read(path)
    if found is None:
        return None
    header, base = found
    try:
        entries = {name: TensorEntry(e["dtype"], tuple(int(d) for d in e["shape"]),
                                     base + int(e["data_offsets"][0]), base + int(e["data_offsets"][1]))
                   for name, e in header.items() if name != "__metadata__"}
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return dict(sorted(entries.items(), key=lambda kv: kv[1].start))
