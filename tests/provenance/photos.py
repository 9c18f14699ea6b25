"""Test photos made here, offline: a shaded face the Haar cascade finds, and a JPEG carrying what a phone writes.

`drawn_face` paints a frontal face with numpy: a lit oval, dark eye sockets and brows over brighter cheeks,
a bright nose bridge, nostril and mouth shadows: the light-dark pattern the Haar features of a face
measure (tests check that the cascade really finds it, so the face tests cannot pass on a blank).
`phone_jpeg` writes a real EXIF block with PIL: camera make and model, dates, a GPS IFD (0x8825),
the orientation tag (0x0112), a thumbnail in IFD1, and an XMP packet and a comment beside it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import ExifTags, Image

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:City="Reykjavik"/>'
       b"</rdf:RDF></x:xmpmeta>")


def drawn_face(size: int = 160) -> Image.Image:
    """A grey-brown frontal face filling a `size`² RGB image."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size

    def blob(cx, cy, sx, sy, amp):
        return amp * np.exp(-(((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))

    oval = (((x - .5) / .34) ** 2 + ((y - .52) / .44) ** 2) < 1
    img = np.where(oval, 0.72 + blob(.5, .45, .3, .35, .12) - blob(.5, .95, .5, .2, .1), 0.35)
    img -= blob(.5, .08, .4, .12, .4) * (y < .2)  # hair
    for cx in (.36, .64):
        img -= blob(cx, .27, .09, .025, .35)  # brow
        img -= blob(cx, .38, .08, .04, .45)  # eye socket
        img -= blob(cx, .39, .025, .025, .3)  # pupil
    img += blob(.5, .42, .04, .12, .08)  # nose bridge, lit
    img -= blob(.5, .62, .07, .025, .25)  # nostrils
    img -= blob(.5, .74, .13, .03, .45)  # mouth
    img = np.clip(img, 0, 1)
    return Image.fromarray((np.stack([img, img * .85, img * .72], -1) * 255).astype(np.uint8))


def phone_exif(orientation: int = 1) -> Image.Exif:
    """EXIF as a phone writes it: who, when, where (GPS IFD), and how to turn the picture."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = "Canon EOS 5D"  # Model
    exif[0x0132] = "2024:05:01 12:00:00"  # DateTime
    exif[ORIENTATION] = orientation
    exif.get_ifd(ExifTags.IFD.Exif)[0x9003] = "2024:05:01 12:00:00"  # DateTimeOriginal
    exif.get_ifd(ExifTags.IFD.Exif)[0xA431] = "SN-0042"  # BodySerialNumber
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[1], gps[2] = "N", (64.0, 8.0, 24.0)  # GPSLatitudeRef, GPSLatitude
    gps[3], gps[4] = "W", (21.0, 56.0, 0.0)  # GPSLongitudeRef, GPSLongitude
    return exif


ORIENTATION = 0x0112


def with_thumbnail(exif_bytes: bytes, picture: Image.Image) -> bytes:
    """`exif_bytes` (a TIFF block from `Exif.tobytes()`) with IFD1 added, holding a JPEG thumbnail of `picture`,
    as cameras write it (PIL reads IFD1 but does not write one)."""
    import struct

    thumb = io.BytesIO()
    picture.resize((16, 16)).save(thumb, "JPEG", quality=60)
    thumb = thumb.getvalue()
    head, tiff = exif_bytes[:6], bytearray(exif_bytes[6:])  # b"Exif\0\0", then the TIFF structure
    e = {b"II": "<", b"MM": ">"}[bytes(tiff[:2])]  # the TIFF block's byte order
    ifd0 = struct.unpack_from(e + "I", tiff, 4)[0]
    n = struct.unpack_from(e + "H", tiff, ifd0)[0]
    next_at = ifd0 + 2 + 12 * n  # the IFD0 "next IFD" offset, 0 now
    ifd1 = len(tiff) + (len(tiff) % 2)
    tiff += b"\0" * (ifd1 - len(tiff))
    data_at = ifd1 + 2 + 2 * 12 + 4
    tiff += struct.pack(e + "H", 2)
    tiff += struct.pack(e + "HHII", 0x0201, 4, 1, data_at)  # JPEGInterchangeFormat: where the thumbnail starts
    tiff += struct.pack(e + "HHII", 0x0202, 4, 1, len(thumb))  # JPEGInterchangeFormatLength
    tiff += struct.pack(e + "I", 0) + thumb
    struct.pack_into(e + "I", tiff, next_at, ifd1)
    return head + bytes(tiff)


def phone_jpeg(picture: Image.Image, orientation: int = 1, thumbnail: bool = True) -> bytes:
    """`picture` as a phone's JPEG: EXIF with GPS and `orientation`, an IFD1 thumbnail, XMP and a comment."""
    exif = phone_exif(orientation).tobytes()
    if thumbnail:
        exif = with_thumbnail(exif, picture)
    buf = io.BytesIO()
    picture.save(buf, "JPEG", quality=92, exif=exif, xmp=XMP, comment=b"taken at home")
    return buf.getvalue()
