import io
import struct
import zlib

import pytest
from PIL import Image

from kaiga.store.uploads import UploadError, UploadStore, check_image, read_image_file


def _encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _claims(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR says width × height (a decompression bomb's header)."""
    data = bytearray(_encoded(Image.new("RGB", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_allowed_formats_decode(fmt):
    assert check_image(_encoded(Image.new("RGB", (10, 6), "red"), fmt)).size == (10, 6)


@pytest.mark.parametrize("data, message", [
    (b"\0" * 1001, "image: at most 1,000 bytes (got 1,001 bytes)"),
    (_claims(30000, 30000), "image: at most 100 pixels"),
    (_claims(11, 10), "image: at most 100 pixels (got 11x10)"),
    (_encoded(Image.new("RGB", (4, 4)), "GIF"), "image: must be a PNG, JPEG or WebP file"),
    (_encoded(Image.new("RGB", (4, 4)), "BMP"), "image: must be a PNG, JPEG or WebP file"),
])
def test_refused_before_decoding(data, message):
    with pytest.raises(UploadError) as e:
        check_image(data, max_bytes=1000, max_pixels=100)
    assert str(e.value).startswith(message)


def test_the_default_limits_refuse_a_bomb_header_without_allocating():
    with pytest.raises(UploadError, match="at most 16,777,216 pixels"):
        check_image(_claims(30000, 30000))
    with pytest.raises(UploadError, match=r"\(got 5000x4000\)"):
        check_image(_claims(5000, 4000))


def test_store_is_content_addressed_and_drops_metadata(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "someone's name")
    image = check_image(_encoded(Image.new("RGBA", (8, 8), (1, 2, 3, 255)), "PNG", pnginfo=info))
    store = UploadStore(tmp_path)
    sha = store.add(image)
    assert store.add(image) == sha and store.file(sha).name == f"{sha}.png"
    back = Image.open(store.file(sha))
    assert back.mode == "RGB" and "Author" not in back.info
    assert store.open(sha).getpixel((0, 0)) == (1, 2, 3)
    with pytest.raises(ValueError, match="not a SHA-256"):
        store.file("../../etc/passwd")
    with pytest.raises(FileNotFoundError):
        store.open("a" * 64)


def test_a_local_file_is_sized_before_it_is_read(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (4 * 2**20 + 1))
    with pytest.raises(UploadError, match="init: at most 4 MiB"):
        read_image_file(big, "init")
    with pytest.raises(UploadError, match="init: cannot read"):
        read_image_file(tmp_path / "missing.png", "init")
