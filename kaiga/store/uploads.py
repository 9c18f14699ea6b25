"""Uploaded input images (init images, masks): checked before decoding, stored by content hash.

`check_image(data)` refuses what is not a small PNG, JPEG or WebP *before any pixel is decoded*:
the byte count first, then the format and size that PIL reads lazily from the header (so a 100-byte
file claiming 30000×30000 pixels, a decompression bomb, is refused without allocating anything).
Only then are the pixels decoded.

`UploadStore` keeps each accepted image once, re-encoded as a PNG without metadata (no EXIF or GPS
of the uploader is kept), at `<folder>/<first 2 hex>/<sha256>.png`. A request names an upload by
that SHA-256 only; a path is built only from a hash checked here, never from a request's text.
Files only: no database table, so the store is the same for the server and the CLI.

Example:
    >>> import io, tempfile
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (8, 8), "red").save(buf, format="PNG")
    >>> store = UploadStore(tempfile.mkdtemp())
    >>> sha = store.add(check_image(buf.getvalue()))
    >>> store.open(sha).getpixel((0, 0))
    (255, 0, 0)
    >>> try:
    ...     check_image(b"GIF89a....")
    ... except UploadError as e:
    ...     print(e)
    image: must be a PNG, JPEG or WebP file
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from kaiga.metadata import write_atomic
from kaiga.request import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, UPLOAD_FORMATS
from kaiga.store.content import ContentFiles, is_sha256  # noqa: F401 (is_sha256 re-exported)

PENDING = "0" * 64  # stands in for an upload's hash while the rest of a request is checked, before storing


class UploadError(ValueError):
    """An upload refused; the message names the field and the limit."""


def check_image(data: bytes, field: str = "image", *, max_bytes: int = MAX_UPLOAD_BYTES,
                max_pixels: int = MAX_UPLOAD_PIXELS) -> Image.Image:
    """The decoded image in `data`, or UploadError if it is too big, of another format, or corrupt."""
    if len(data) > max_bytes:
        raise UploadError(too_large(field, len(data), max_bytes))
    try:
        # `formats` limits which decoders PIL even tries; open() reads the header only.
        image = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)
    except Image.DecompressionBombError:  # PIL's own header check, for sizes far above ours
        raise UploadError(f"{field}: at most {max_pixels:,} pixels (its header claims far more)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UploadError(f"{field}: must be a PNG, JPEG or WebP file") from None
    width, height = image.size
    if width < 1 or height < 1 or width * height > max_pixels:
        raise UploadError(f"{field}: at most {max_pixels:,} pixels (got {width}x{height})")
    if getattr(image, "n_frames", 1) > 1:
        raise UploadError(f"{field}: must be a still image (got {image.n_frames} frames)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
        # JPEG photos are often stored sideways with an EXIF rotation; apply it as viewers do.
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise UploadError(f"{field}: cannot be decoded ({e})") from None


def read_image_file(path: str | os.PathLike[str], field: str) -> Image.Image:
    """`check_image` of a local file, whose size is checked before it is read."""
    try:
        size = os.stat(path).st_size
        if size > MAX_UPLOAD_BYTES:
            raise UploadError(too_large(field, size, MAX_UPLOAD_BYTES))
        data = Path(path).read_bytes()
    except OSError as e:
        raise UploadError(f"{field}: cannot read {path} ({e.strerror or e})") from None
    return check_image(data, field)


def amount(n_bytes: int) -> str:
    """A byte limit as people write it: "4 MiB", or "1,000 bytes"."""
    return f"{n_bytes // 2**20} MiB" if n_bytes >= 2**20 and n_bytes % 2**20 == 0 else f"{n_bytes:,} bytes"


def too_large(field: str, n_bytes: int, limit: int) -> str:
    """The refusal of `n_bytes` over `limit` in the limit's unit, e.g. "image: at most 4 MiB (got 4.3 MiB)",
    with the exact count too when one decimal would not show the excess.

    >>> too_large("image", 4_508_877, 4 * 2**20), too_large("mask", 4 * 2**20 + 1, 4 * 2**20)
    ('image: at most 4 MiB (got 4.3 MiB)', 'mask: at most 4 MiB (got 4.0 MiB: 4,194,305 bytes)')
    """
    if amount(limit).endswith("bytes"):
        got = f"{n_bytes:,} bytes"
    else:
        got = f"{n_bytes / 2**20:.1f} MiB"
        if round(n_bytes / 2**20, 1) * 2**20 <= limit:  # 4.0 MiB against "at most 4 MiB"
            got += f": {n_bytes:,} bytes"
    return f"{field}: at most {amount(limit)} (got {got})"


class UploadStore(ContentFiles):
    """Uploaded images as content-addressed PNG files under `folder`."""

    def add(self, image: Image.Image, note: dict | None = None) -> str:
        """Store `image` (a checked one) as a PNG without metadata; returns its SHA-256. `note`: what was done to
        the upload before (the privacy report), kept beside it as `<sha256>.json` for the images made from it."""
        # L for masks (white = repaint), RGB for everything else: the pipelines read nothing more.
        buf = io.BytesIO()
        # No pnginfo, no exif: nothing of the uploader's file but its pixels.
        image.convert("L" if image.mode == "L" else "RGB").save(buf, format="PNG")
        sha = self.put(buf.getvalue())
        if note is not None:
            write_atomic(self.file(sha).with_suffix(".json"), json.dumps(note, sort_keys=True).encode())
        return sha

    def note(self, sha256: str) -> dict | None:
        """The note `add` kept beside an upload, or None."""
        path = self.file(sha256).with_suffix(".json")
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def open(self, sha256: str) -> Image.Image:
        """The stored image, decoded; FileNotFoundError if there is none with this hash."""
        path = self.file(sha256)
        if not path.is_file():
            raise FileNotFoundError(f"no upload {sha256}")
        with Image.open(path, formats=["PNG"]) as image:
            return image.copy()  # decoded, and the file closed
