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
from pathlib import Path
from typing import Any

MAX_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit on the JSON header


def read_header(path: str | Path) -> dict[str, Any] | None:
    """The JSON header (tensor entries plus ``__metadata__``), or None when `path` is not safetensors."""
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
    return header if isinstance(header, dict) else None
