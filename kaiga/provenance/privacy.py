"""Privacy at ingest: a user's image without the metadata that identifies them, and with its faces blurred.

What a photo carries besides its pixels, and what happens to it here:

| found | done |
|---|---|
| EXIF (camera make and model, serial numbers, dates, GPS position in its own IFD 0x8825) | removed |
| EXIF orientation (tag 0x0112) | applied to the pixels first (as viewers show it), then removed |
| an embedded thumbnail (EXIF IFD1, which keeps the *unedited* picture) | removed |
| XMP packets, IPTC (Photoshop APP13), JPEG comments, PNG text chunks | removed |
| the ICC colour profile | kept: it is colour, not identity |
| faces (`kaiga.provenance.faces`) | blurred, unless consent is recorded |

Removal is by re-encoding the pixels into a new file (PNG, or JPEG / WebP at quality 95) that is given
nothing but them and the ICC profile, so no block of the source can survive, whatever its kind.

Example:
    >>> import io
    >>> from PIL import Image
    >>> exif = Image.Exif(); exif[0x010F] = "Canon"; exif.get_ifd(0x8825)[1] = "N"
    >>> buf = io.BytesIO(); Image.new("RGB", (32, 32), "grey").save(buf, "JPEG", exif=exif)
    >>> data, report = clean_image(buf.getvalue())
    >>> report.metadata.gps, report.metadata.exif_tags, b"Exif" in data
    (True, ('GPSInfo', 'Make'), False)
    >>> report.removed()
    ['EXIF (GPS, Make)']
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from kaiga.provenance.faces import Box, blur_faces, detect_faces

FORMATS = ("PNG", "JPEG", "WEBP")  # what is read and written back (the upload formats)
JPEG_QUALITY = 95  # re-encoding a JPEG costs a generation of loss; 95 keeps it invisible
ORIENTATION = 0x0112
# EXIF tags that say who, where, when or with what: named in the summary, the rest only counted.
NOTABLE_TAGS = ("GPSInfo", "Make", "Model", "BodySerialNumber", "CameraOwnerName", "LensModel", "LensSerialNumber",
                "DateTime", "DateTimeOriginal", "DateTimeDigitized", "Artist", "Copyright", "ImageDescription",
                "UserComment", "Software", "HostComputer", "ImageUniqueID")
_XMP_KEYS = ("xmp", "XML:com.adobe.xmp")  # JPEG / WebP, and PNG's iTXt keyword
_NOT_TEXT = {"exif", "icc_profile", "dpi", "gamma", "transparency", "aspect", "srgb", "chromaticity", *_XMP_KEYS}


class PrivacyError(ValueError):
    """An image that cannot be cleaned (not a PNG, JPEG or WebP, or corrupt); the message says which."""


@dataclass(frozen=True)
class MetadataFound:
    """The metadata blocks of a source image (all of them are removed but the ICC profile)."""

    exif_tags: tuple[str, ...] = ()  # the names of its EXIF tags (IFD0, the Exif IFD, GPSInfo), sorted
    gps: bool = False  # a GPS IFD with at least one entry
    orientation: int | None = None  # the EXIF orientation applied (1 = upright; None: none given)
    thumbnail: bool = False  # an embedded preview (EXIF IFD1)
    xmp: bool = False
    iptc: bool = False  # a Photoshop / IPTC block (JPEG APP13)
    comment: bool = False  # a JPEG COM segment
    png_text: tuple[str, ...] = ()  # the keys of PNG tEXt / zTXt / iTXt chunks (A1111's "parameters" too)
    icc: bool = False  # kept

    def removed(self) -> list[str]:
        """What was taken out, in words, e.g. `['EXIF (GPS, Make, Model)', 'XMP']`."""
        out = []
        if self.exif_tags:
            notable = ["GPS" if t == "GPSInfo" else t for t in self.exif_tags if t in NOTABLE_TAGS]
            others = len(self.exif_tags) - len(notable)
            names = notable + ([f"{others} more"] if others else [])
            out.append(f"EXIF ({', '.join(names)})")
        out += [label for flag, label in ((self.thumbnail, "thumbnail"), (self.xmp, "XMP"), (self.iptc, "IPTC"),
                                          (self.comment, "comment")) if flag]
        if self.png_text:
            out.append(f"PNG text ({', '.join(self.png_text)})")
        return out


@dataclass(frozen=True)
class PrivacyReport:
    """What `clean_image` / `clean_upload` found and did to one image."""

    metadata: MetadataFound
    faces: tuple[Box, ...] = ()  # in the pixels of the cleaned image (orientation applied)
    faces_blurred: bool = False
    faces_consent: bool = False
    size: tuple[int, int] = (0, 0)  # of the cleaned image

    def removed(self) -> list[str]:
        return self.metadata.removed()

    def to_dict(self) -> dict:
        """The report as JSON-ready data (privacy-report.json, a record's `extra`)."""
        m = self.metadata
        return {"removed": self.removed(), "exif_tags": list(m.exif_tags), "gps": m.gps,
                "orientation_applied": m.orientation if m.orientation not in (None, 1) else None,
                "thumbnail": m.thumbnail, "xmp": m.xmp, "iptc": m.iptc, "comment": m.comment,
                "png_text": list(m.png_text), "icc_kept": m.icc, "faces": [b.to_dict() for b in self.faces],
                "faces_blurred": self.faces_blurred, "faces_consent": self.faces_consent,
                "size": list(self.size)}


def find_metadata(image: Image.Image) -> MetadataFound:
    """The metadata blocks of an opened image (as `Image.open` gives it, before any transposing)."""
    exif = image.getexif()
    names = {ExifTags.TAGS.get(tag, f"0x{tag:04x}") for tag in exif}
    names |= {ExifTags.TAGS.get(tag, f"0x{tag:04x}") for tag in exif.get_ifd(ExifTags.IFD.Exif)}
    gps = bool(exif.get_ifd(ExifTags.IFD.GPSInfo))
    names.discard("ExifOffset")  # the pointer to the Exif IFD, not information
    if not gps:
        names.discard("GPSInfo")
    thumbnail = bool(exif.get_ifd(ExifTags.IFD.IFD1)) or bool(getattr(image, "info", {}).get("thumbnail"))
    info = image.info
    text = getattr(image, "text", None) if image.format == "PNG" else None  # PNG: reads chunks after the pixels too
    png_text = sorted(k for k in (text or {}) if k not in _NOT_TEXT)
    orientation = exif.get(ORIENTATION)
    return MetadataFound(
        exif_tags=tuple(sorted(names)), gps=gps, orientation=int(orientation) if orientation else None,
        thumbnail=thumbnail, xmp=any(info.get(k) for k in _XMP_KEYS) or any(k in (text or {}) for k in _XMP_KEYS),
        iptc=bool(info.get("photoshop")), comment=bool(info.get("comment")), png_text=tuple(png_text),
        icc=bool(info.get("icc_profile")))


def _open(data: bytes, field: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
        return image
    except UnidentifiedImageError:
        raise PrivacyError(f"{field}: not a readable PNG, JPEG or WebP image") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise PrivacyError(f"{field}: not a readable PNG, JPEG or WebP image ({e})") from None


def _pixels_only(image: Image.Image) -> Image.Image:
    """A new image with `image`'s pixels and nothing else (no `info`, no EXIF)."""
    mode = image.mode if image.mode in ("RGB", "RGBA", "L", "LA") else ("RGBA" if "A" in image.getbands()
                                                                         or "transparency" in image.info else "RGB")
    return Image.frombytes(mode, image.size, image.convert(mode).tobytes())


def anonymise(image: Image.Image, *, faces_consent: bool = False) -> tuple[Image.Image, tuple[Box, ...]]:
    """`image` with its faces blurred (unless `faces_consent`), and the faces found."""
    faces = detect_faces(image)
    return (blur_faces(image, faces) if faces and not faces_consent else image), faces


def clean_image(data: bytes, *, faces_consent: bool = False, field: str = "image") -> tuple[bytes, PrivacyReport]:
    """`data` (PNG, JPEG or WebP bytes) re-encoded in its own format with only its pixels and ICC profile, its
    orientation applied and its faces blurred unless `faces_consent`; and the report of what was done."""
    source = _open(data, field)
    found = find_metadata(source)
    upright = ImageOps.exif_transpose(source)
    image, faces = anonymise(_pixels_only(upright), faces_consent=faces_consent)
    fmt = source.format
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    options = {"quality": JPEG_QUALITY} if fmt in ("JPEG", "WEBP") else {}
    if found.icc:
        options["icc_profile"] = source.info["icc_profile"]
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue(), PrivacyReport(found, faces, bool(faces) and not faces_consent, faces_consent, image.size)


def clean_upload(data: bytes, image: Image.Image, *, faces_consent: bool = False) -> tuple[Image.Image, PrivacyReport]:
    """An upload's image ready for the upload store: `image` is `check_image(data)` (checked, decoded, its
    orientation applied); the report reads `data`'s metadata, which the store never keeps."""
    found = find_metadata(Image.open(io.BytesIO(data)))  # already checked by check_image: safe to open again
    clean, faces = anonymise(_pixels_only(image), faces_consent=faces_consent)
    return clean, PrivacyReport(found, faces, bool(faces) and not faces_consent, faces_consent, clean.size)
