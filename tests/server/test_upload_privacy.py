"""Every upload cleaned before it is stored: a phone JPEG with GPS and a face, sent to OpenAI's edits and A1111's
img2img of a real server, is kept without its metadata and with its face blurred unless `faces_consent`; the
image's record says what was done."""

from __future__ import annotations

import base64
import io

import httpx
import openai
from PIL import Image

from kaiga.metadata import read_metadata
from kaiga.provenance.faces import detect_faces
from tests.provenance.photos import drawn_face, phone_jpeg

FAST = {"steps": 2, "seed": 5, "strength": 0.5}


def _stored(server, sha: str) -> Image.Image:
    return Image.open(server.settings.uploads_dir() / sha[:2] / f"{sha}.png")


def test_an_openai_edit_stores_the_photo_without_metadata_and_blurs_its_face_unless_consent(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    photo = phone_jpeg(drawn_face(64))
    assert len(detect_faces(Image.open(io.BytesIO(photo)))) == 1
    records = {}
    for consent in (False, True):
        r = client.images.edit(image=("me.jpg", photo, "image/jpeg"), prompt="a red car", size="64x64",
                               response_format="b64_json", extra_body={**FAST, "faces_consent": consent})
        records[consent] = rec = read_metadata(base64.b64decode(r.data[0].b64_json)).record
        stored = (server.settings.uploads_dir() / rec.init_image[:2] / f"{rec.init_image}.png").read_bytes()
        assert b"Canon" not in stored and b"Exif" not in stored and b"xmpmeta" not in stored
        assert len(detect_faces(_stored(server, rec.init_image))) == (1 if consent else 0)
    blurred, kept = records[False].extra["init_image_privacy"], records[True].extra["init_image_privacy"]
    assert blurred["faces"] == 1 and blurred["faces_blurred"] and not blurred["faces_consent"]
    assert kept["faces"] == 1 and kept["faces_consent"] and not kept["faces_blurred"]
    assert blurred["removed"][0].startswith("EXIF (") and "GPS" in blurred["removed"][0]
    assert "thumbnail" in blurred["removed"] and "XMP" in blurred["removed"]


def test_an_a1111_img2img_blurs_the_face_of_its_init_image(server):
    photo = base64.b64encode(phone_jpeg(drawn_face(64))).decode()
    body = {"init_images": [photo], "prompt": "a red car", "steps": 2, "seed": 3, "width": 64, "height": 64,
            "denoising_strength": 0.5}
    r = httpx.post(server.url + "/sdapi/v1/img2img", json=body, timeout=120)
    assert r.status_code == 200, r.text
    rec = read_metadata(base64.b64decode(r.json()["images"][0])).record
    assert rec.extra["init_image_privacy"]["faces_blurred"]
    assert detect_faces(_stored(server, rec.init_image)) == ()
