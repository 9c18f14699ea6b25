"""Privacy at ingest on real files: a phone-style JPEG (EXIF with GPS, orientation 6, an IFD1 thumbnail, XMP,
a comment), a PNG with text chunks and an ICC profile, and a drawn face that the Haar cascade finds."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from kaiga.data.dataset import scene_example
from kaiga.provenance.faces import detect_faces
from kaiga.provenance.privacy import PrivacyError, clean_image, clean_upload
from kaiga.store.uploads import check_image
from tests.provenance.photos import XMP, drawn_face, phone_jpeg

# What the phone JPEG says about its owner, byte strings that must not survive cleaning.
IDENTIFYING = (b"Exif", b"Canon", b"SN-0042", b"2024:05:01", b"xmpmeta", b"Reykjavik", b"taken at home")


def _scene_with_face(size: int = 128, face: int = 48) -> Image.Image:
    image = scene_example(0, 0)[0].resize((size, size))
    image.paste(drawn_face(face), (size - face - 8, 16))
    return image


def test_the_drawn_face_is_a_face_to_the_cascade_and_a_scene_is_not():
    # The face tests below mean something only if the detector finds this face, at a 64² render's scale too.
    assert len(detect_faces(drawn_face(160))) == 1
    assert len(detect_faces(drawn_face(32))) == 1  # found only because small images are enlarged first
    assert detect_faces(scene_example(0, 0)[0]) == ()


def test_a_phone_jpeg_loses_its_exif_gps_thumbnail_xmp_and_comment():
    source = phone_jpeg(Image.new("RGB", (40, 30), (90, 120, 160)))
    assert all(s in source for s in IDENTIFYING) and Image.open(io.BytesIO(source)).getexif().get_ifd(ExifTags.IFD.IFD1)
    assert source.count(b"\xff\xd8\xff") == 2  # the picture and its thumbnail, each a JPEG
    data, report = clean_image(source)
    assert [s for s in IDENTIFYING if s in data] == [] and data.count(b"\xff\xd8\xff") == 1
    back = Image.open(io.BytesIO(data))
    assert back.format == "JPEG" and not back.getexif() and set(back.info) <= {"jfif", "jfif_version", "jfif_unit",
                                                                            "jfif_density", "dpi"}
    m = report.metadata
    assert m.gps and m.thumbnail and m.xmp and m.comment and not m.iptc
    assert {"GPSInfo", "Make", "Model", "DateTimeOriginal", "BodySerialNumber"} <= set(m.exif_tags)
    assert report.removed()[0].startswith("EXIF (") and "GPS" in report.removed()[0]
    assert {"thumbnail", "XMP", "comment"} <= set(report.removed())


def test_orientation_is_applied_before_the_exif_goes_so_a_sideways_portrait_stands_up_and_its_face_is_found():
    upright = _scene_with_face()
    stored = upright.rotate(90, expand=True)  # the sensor's pixels; orientation 6 says "turn 90° clockwise"
    assert detect_faces(stored) == ()  # sideways, the cascade sees no face: applying the tag first matters
    data, report = clean_image(phone_jpeg(stored, orientation=6))
    assert report.metadata.orientation == 6 and report.to_dict()["orientation_applied"] == 6
    assert len(report.faces) == 1 and report.faces_blurred
    back = Image.open(io.BytesIO(data))
    assert back.size == upright.size and 0x0112 not in back.getexif()
    # the unfaced part of the picture is the upright one (JPEG twice: a tolerance)
    corner = (0, 90, 60, 128)
    diff = np.abs(np.asarray(back.crop(corner), np.int16) - np.asarray(upright.crop(corner), np.int16))
    assert diff.mean() < 6


def test_a_face_is_blurred_beyond_detection_unless_consent_is_recorded():
    image = _scene_with_face()
    buf = io.BytesIO(); image.save(buf, "PNG")
    data, report = clean_image(buf.getvalue())
    (box,) = report.faces
    assert report.faces_blurred and not report.faces_consent
    cleaned = Image.open(io.BytesIO(data)).convert("RGB")
    assert detect_faces(cleaned) == ()
    region = (box.x, box.y, box.x + box.w, box.y + box.h)
    # the face's detail is gone: far less local contrast than before
    assert np.asarray(cleaned.crop(region).convert("L"), float).std() < 0.5 * np.asarray(
        image.crop(region).convert("L"), float).std()
    assert np.array_equal(np.asarray(cleaned)[100:, :40], np.asarray(image)[100:, :40])  # the rest untouched (PNG)
    kept, consented = clean_image(buf.getvalue(), faces_consent=True)
    assert consented.faces == report.faces and not consented.faces_blurred and consented.faces_consent
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(kept)).convert("RGB")), np.asarray(image))


def test_a_png_loses_its_text_chunks_and_xmp_but_keeps_its_icc_colour_profile():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a portrait of Jane Doe, Steps: 20")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), "teal").save(buf, "PNG", pnginfo=info, icc_profile=icc)
    data, report = clean_image(buf.getvalue())
    assert report.metadata.png_text == ("parameters",) and report.metadata.xmp and report.metadata.icc
    assert b"Jane Doe" not in data and b"xmpmeta" not in data
    back = Image.open(io.BytesIO(data))
    assert back.info.get("icc_profile") == icc and not getattr(back, "text", {})
    assert report.removed() == ["XMP", "PNG text (parameters)"]


def test_an_upload_is_cleaned_from_its_checked_image_and_reported_from_its_bytes():
    stored = _scene_with_face().rotate(90, expand=True)
    source = phone_jpeg(stored, orientation=6)
    image, report = clean_upload(source, check_image(source))
    assert report.metadata.gps and report.metadata.orientation == 6 and len(report.faces) == 1
    assert image.info == {} and not image.getexif() and detect_faces(image) == ()
    _, consented = clean_upload(source, check_image(source), faces_consent=True)
    assert consented.faces_consent and not consented.faces_blurred


@pytest.mark.parametrize("data", [b"GIF89a not ours", b"\x89PNG\r\n\x1a\n broken"])
def test_what_is_no_png_jpeg_or_webp_is_refused_naming_the_field(data):
    with pytest.raises(PrivacyError, match=r"^photo\.gif: not a readable PNG, JPEG or WebP image"):
        clean_image(data, field="photo.gif")


def test_face_free_scenes_renders_are_not_blurred():
    # The false-face rate that docs/trust/privacy.md reports on 200 renders (bench: scripts/privacy_figures.py);
    # here 20 of them, which must all come back untouched.
    for i in range(20):
        image = scene_example(i, 1234)[0]
        buf = io.BytesIO(); image.save(buf, "PNG")
        data, report = clean_image(buf.getvalue())
        assert report.faces == (), i
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), np.asarray(image))
