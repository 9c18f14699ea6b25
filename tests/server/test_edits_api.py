"""Image edits over HTTP: OpenAI's edits and variations (official `openai` client), A1111's img2img
(`webuiapi`), and the upload limits, against a real server on the tiny model."""

import base64
import io
import struct
import zlib

import httpx
import numpy as np
import openai
import pytest
import webuiapi
from PIL import Image, ImageDraw

from kaiga.metadata import read_metadata
from kaiga.server.body_limit import MAX_BODY_BYTES

FAST = {"steps": 2, "seed": 5}


def _png(image: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _init() -> Image.Image:
    im = Image.new("RGB", (64, 64), (40, 120, 200))
    ImageDraw.Draw(im).rectangle((10, 30, 50, 50), fill=(200, 30, 30))
    return im


def _left_half(mode: str, repaint, keep) -> Image.Image:
    """A 64×64 mask whose left half has the `repaint` value and right half the `keep` value."""
    mask = Image.new(mode, (64, 64), keep)
    ImageDraw.Draw(mask).rectangle((0, 0, 31, 63), fill=repaint)
    return mask


def _halves_changed(out: Image.Image, init: Image.Image) -> tuple[float, float]:
    diff = np.abs(np.asarray(out.convert("RGB"), np.int16) - np.asarray(init, np.int16))
    return diff[:, :32].mean(), diff[:, 32:].mean()


# What the invisible watermark changes in a kept area: a residual of RMS ~3 grey levels (PSNR 38.4 dB) over the
# whole image, so "unchanged" is within it; a repainted area moves far more.
KEPT = 4.0


def _bomb_png(width=30000, height=30000) -> bytes:
    """A ~70-byte PNG whose header claims width × height pixels."""
    data = bytearray(_png(Image.new("RGB", (1, 1))))
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def _uploads(server) -> list:
    folder = server.settings.uploads_dir()
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_openai_edit_repaints_only_the_transparent_area(client, server):
    init = _init()
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    ImageDraw.Draw(mask).rectangle((0, 0, 31, 63), fill=(0, 0, 0, 0))  # transparent = edit (OpenAI)
    r = client.images.edit(image=("init.png", _png(init), "image/png"), mask=("mask.png", _png(mask), "image/png"),
                           prompt="a red car", n=2, size="64x64", response_format="b64_json", extra_body=FAST)
    assert len(r.data) == 2
    outs = [Image.open(io.BytesIO(base64.b64decode(d.b64_json))) for d in r.data]
    for out in outs:
        inside, outside = _halves_changed(out, init)
        assert outside < KEPT and inside > 3 * KEPT
    rec = read_metadata(base64.b64decode(r.data[0].b64_json)).record
    assert (rec.seed, rec.strength, rec.prompt) == (5, 1.0, "a red car")
    stored = {p.stem for p in _uploads(server)}
    assert {rec.init_image, rec.mask} == stored  # the record names the stored uploads
    repaint = np.asarray(Image.open(server.settings.uploads_dir() / rec.mask[:2] / f"{rec.mask}.png"))
    assert repaint[:, :32].min() == 255 and repaint[:, 32:].max() == 0  # kept as white = repaint


def test_openai_edit_without_mask_edits_the_whole_image(client):
    init = _init()
    r = client.images.edit(image=("init.png", _png(init), "image/png"), prompt="a red car", size="64x64",
                           response_format="b64_json", extra_body={**FAST, "strength": 0.5, "steps": 4})
    png = base64.b64decode(r.data[0].b64_json)
    inside, outside = _halves_changed(Image.open(io.BytesIO(png)), init)
    assert inside > 1 and outside > 1
    rec = read_metadata(png).record
    assert (rec.strength, rec.mask) == (0.5, None) and rec.init_image


def test_openai_variation_reuses_the_prompt_in_the_image(client):
    made = client.images.generate(prompt="a blue boat", size="64x64", response_format="b64_json", extra_body=FAST)
    source = base64.b64decode(made.data[0].b64_json)
    r = client.images.create_variation(image=("boat.png", source, "image/png"), n=2, size="64x64",
                                       response_format="b64_json", extra_body=FAST)
    records = [read_metadata(base64.b64decode(d.b64_json)).record for d in r.data]
    assert [(rec.prompt, rec.seed, rec.strength) for rec in records] == [("a blue boat", 5, 0.6),
                                                                         ("a blue boat", 6, 0.6)]
    plain = client.images.create_variation(image=("plain.png", _png(_init()), "image/png"), size="64x64",
                                           response_format="url", extra_body={**FAST, "steps": 4})
    assert plain.data[0].url.endswith(".png")
    rec = read_metadata(httpx.get(plain.data[0].url).content).record
    assert rec.prompt == "" and rec.init_image


@pytest.mark.parametrize("data, message", [
    (_png(_init()) + b"\0" * (5 * 2**20), "image: at most 4 MiB"),
    (_bomb_png(), "image: at most 16,777,216 pixels"),
    (_bomb_png(5000, 5000), "image: at most 16,777,216 pixels (got 5000x5000)"),
    (b"GIF89a" + b"\0" * 100, "image: must be a PNG, JPEG or WebP file"),
    (_png(_init())[:60], "image: cannot be decoded"),
])
def test_bad_uploads_are_400_and_write_nothing(client, server, data, message):
    with pytest.raises(openai.BadRequestError) as e:
        client.images.edit(image=("x.png", data, "image/png"), prompt="a red car", extra_body=FAST)
    assert e.value.body["param"] == "image" and e.value.body["message"].startswith(message)
    assert _uploads(server) == [] and server.state.queue.depth() == 0


def test_bad_edit_fields_are_400_and_write_nothing(client, server):
    image = ("init.png", _png(_init()), "image/png")
    cases = [
        ({"mask": ("m.png", _png(Image.new("RGB", (64, 64))), "image/png")}, "mask", "alpha channel"),
        ({"mask": ("m.png", _png(Image.new("RGBA", (32, 32))), "image/png")}, "mask", "size 64x64"),
        ({"size": "60x64"}, "size", "multiple of 8"),
        ({"extra_body": {"strength": 1.5}}, "strength", "between 0.0 and 1.0"),
        ({"extra_body": {"colour": "red"}}, "colour", "Unrecognized"),
    ]
    for kwargs, param, text in cases:
        with pytest.raises(openai.BadRequestError) as e:
            client.images.edit(image=image, prompt="a red car", **kwargs)
        assert e.value.body["param"] == param and text in e.value.body["message"], e.value.body
    assert _uploads(server) == []


def test_a_body_over_the_cap_is_refused_while_it_arrives(server):
    big = b"\0" * (MAX_BODY_BYTES + 1)
    got = httpx.post(server.url + "/v1/images/edits", files={"image": ("x.png", big, "image/png")},
                     data={"prompt": "a car"})
    assert got.status_code == 413 and got.json()["error"]["code"] == "request_too_large"

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY_BYTES // 2**20 + 2):
            yield b"\0" * 2**20

    got = httpx.post(server.url + "/sdapi/v1/img2img", content=chunks(), headers={"content-type": "application/json"})
    assert got.status_code == 413 and _uploads(server) == []


def test_a1111_img2img_inpaints_white_and_answers_as_txt2img(server):
    api = webuiapi.WebUIApi(baseurl=server.url + "/sdapi/v1", sampler="Euler a", steps=2)
    init = _init()
    r = api.img2img(images=[init], mask_image=_left_half("L", 255, 0), mask_blur=0, denoising_strength=1.0,
                    prompt="a red car", seed=9, width=64, height=64, batch_size=2, cfg_scale=4)
    assert [im.size for im in r.images] == [(64, 64), (64, 64)]
    assert not r.json["images"][0].startswith("data:") and isinstance(r.json["info"], str)
    assert (r.info["denoising_strength"], r.info["all_seeds"], r.info["sampler_name"]) == (1.0, [9, 10], "Euler a")
    assert "Denoising strength: 1.0" in r.info["infotexts"][0]
    assert r.parameters["init_images"] is None  # as A1111 without include_init_images
    inside, outside = _halves_changed(r.images[0], init)
    assert outside < KEPT and inside > 3 * KEPT
    rec = read_metadata(r.images[1]).record
    assert (rec.seed, rec.sampler, rec.strength) == (10, "euler-a", 1.0) and rec.mask

    inverted = api.img2img(images=[init], mask_image=_left_half("L", 255, 0), mask_blur=0, inpainting_mask_invert=1,
                           denoising_strength=1.0, prompt="a red car", seed=9, width=64, height=64)
    inside, outside = _halves_changed(inverted.images[0], init)
    assert inside < KEPT and outside > 3 * KEPT


def test_blend_through_openai_and_a1111(client, server):
    """Two images to OpenAI's edits (`image[]`, as for gpt-image-1) or to A1111's img2img with kaiga's `blend: true`
    are blended: one job whose records name both stored uploads and their shares; a mask is refused beside them."""
    a, b = _init(), Image.new("RGB", (64, 64), (200, 40, 40))
    r = client.images.edit(image=[("a.png", _png(a), "image/png"), ("b.png", _png(b), "image/png")],
                           prompt="a red car", size="64x64", response_format="b64_json",
                           extra_body={**FAST, "steps": 4, "blend_weights": "3,1"})
    rec = read_metadata(base64.b64decode(r.data[0].b64_json)).record
    assert rec.extra["remix"] == "blend" and rec.extra["blend"]["weights"] == [0.75, 0.25]
    assert set(rec.extra["blend"]["images"]) == {p.stem for p in _uploads(server)} and rec.strength == 0.6
    with pytest.raises(openai.BadRequestError, match="mask: a blend repaints the whole mix"):
        client.images.edit(image=[("a.png", _png(a), "image/png"), ("b.png", _png(b), "image/png")],
                           mask=("m.png", _png(a.convert("RGBA")), "image/png"), prompt="a red car", extra_body=FAST)
    body = {"init_images": [base64.b64encode(_png(im)).decode() for im in (a, b, a)], "prompt": "a red car",
            "steps": 4, "width": 64, "height": 64, "seed": 1, "blend": True}
    got = httpx.post(server.url + "/sdapi/v1/img2img", json=body, timeout=60)
    assert got.status_code == 200, got.text
    rec = read_metadata(base64.b64decode(got.json()["images"][0])).record
    assert rec.extra["blend"]["weights"] == [0.333, 0.333, 0.333] and rec.strength == 0.6
    refused = httpx.post(server.url + "/sdapi/v1/img2img", json={**body, "init_images": body["init_images"][:1]})
    assert refused.status_code == 422 and refused.json()["detail"].startswith("init_images: a blend takes 2 to 4")


def test_vary_pan_and_zoom_through_openai_and_a1111(client, server):
    """Midjourney's vary, pan and zoom out reach OpenAI's variations (`extra_body`) and A1111's img2img (kaiga's
    fields): each makes the plan the gallery's remix endpoints make, from the prompt the image's metadata holds."""
    made = client.images.generate(prompt="a blue boat", size="64x64", response_format="b64_json", extra_body=FAST)
    source = base64.b64decode(made.data[0].b64_json)
    image = ("boat.png", source, "image/png")
    records = {}
    for extra in ({"zoom": 2}, {"vary": "subtle"}, {"pan": "left", "pan_amount": 0.25}):
        r = client.images.create_variation(image=image, response_format="b64_json", extra_body={**FAST, "steps": 4, **extra})
        records[next(iter(extra.items()))] = rec = read_metadata(base64.b64decode(r.data[0].b64_json)).record
        assert rec.prompt == "a blue boat" and rec.init_image, rec
    assert [(r.extra["remix"], r.strength, bool(r.mask)) for r in records.values()] == [
        ("zoom-2", 1.0, True), ("vary-subtle", 0.35, False), ("pan-left", 1.0, True)]
    zoomed = client.images.create_variation(image=image, response_format="b64_json",
                                            extra_body={**FAST, "zoom": 2, "steps": 3})
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(zoomed.data[0].b64_json))).convert("RGB"), np.int16)
    kept = np.asarray(Image.open(io.BytesIO(source)).convert("RGB").resize((32, 32), Image.LANCZOS), np.int16)
    assert np.abs(out[24:40, 24:40] - kept[8:24, 8:24]).mean() < KEPT  # the middle is the image, shrunk
    for extra, param in (({"vary": "subtle", "zoom": 2}, "zoom"), ({"pan_amount": 0.3}, "pan_amount"),
                         ({"zoom": 9}, "zoom"), ({"pan": "sideways"}, "pan")):
        with pytest.raises(openai.BadRequestError) as e:
            client.images.create_variation(image=image, extra_body={**FAST, **extra})
        assert e.value.body["param"] == param, e.value.body

    body = {"init_images": [base64.b64encode(source).decode()], "steps": 4, "seed": 3}
    region = base64.b64encode(_png(_left_half("L", 255, 0))).decode()
    got = httpx.post(server.url + "/sdapi/v1/img2img", json={**body, "vary": "strong", "mask": region}, timeout=60)
    assert got.status_code == 200, got.text
    rec = read_metadata(base64.b64decode(got.json()["images"][0])).record
    assert (rec.prompt, rec.extra["remix"], rec.strength, bool(rec.mask)) == ("a blue boat", "vary-strong-region",
                                                                               1.0, True)
    got = httpx.post(server.url + "/sdapi/v1/img2img", json={**body, "zoom": 1.5, "prompt": "a boat at sea"},
                     timeout=60)
    rec = read_metadata(base64.b64decode(got.json()["images"][0])).record
    assert (rec.prompt, rec.extra["remix"]) == ("a boat at sea", "zoom-1.5")
    before = len(_uploads(server))
    refused = httpx.post(server.url + "/sdapi/v1/img2img", json={**body, "pan": "up", "mask": region})
    assert refused.status_code == 422 and refused.json()["detail"].startswith("mask: pan takes no mask"), refused.text
    assert len(_uploads(server)) == before


def test_a1111_img2img_without_mask_or_prefix(server):
    body = {"init_images": [base64.b64encode(_png(_init())).decode()], "prompt": "", "denoising_strength": 0.5,
            "steps": 4, "width": 64, "height": 64, "seed": 1}
    got = httpx.post(server.url + "/sdapi/v1/img2img", json=body, timeout=60)
    assert got.status_code == 200, got.text
    rec = read_metadata(base64.b64decode(got.json()["images"][0])).record
    assert (rec.prompt, rec.strength, rec.mask) == ("", 0.5, None)


@pytest.mark.parametrize("change, status, start", [
    ({"init_images": []}, 422, "init_images: exactly one image"),
    ({"blend": True, "blend_weights": [1]}, 422, "init_images: a blend takes 2 to 4 images"),
    ({"denoising_strength": 0.1, "steps": 2}, 422, "strength: 0.1 × 2 steps runs no step"),
    ({"resize_mode": 1}, 422, "resize_mode"),
    ({"mask": "not base64!"}, 400, "mask: not valid base64"),
    ({"init_images": [base64.b64encode(_bomb_png()).decode()]}, 400, "init_images: at most"),
    ({"width": 60}, 422, "width: must be a multiple of 8"),
])
def test_a1111_img2img_refusals_name_the_field(server, change, status, start):
    body = {"init_images": [base64.b64encode(_png(_init())).decode()], "prompt": "a car", "steps": 2,
            "width": 64, "height": 64, **change}
    got = httpx.post(server.url + "/sdapi/v1/img2img", json=body)
    assert got.status_code == status and got.json()["detail"].startswith(start), got.text
    assert _uploads(server) == []


def test_an_upload_over_the_limit_is_told_in_mebibytes(server):
    """The size said is the upload's own (4.3 MiB), not the byte count read before refusing it."""
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    big = b"\x89PNG" + b"\0" * (int(4.3 * 2**20) - 4)
    with pytest.raises(openai.BadRequestError) as e:
        client.images.edit(image=("big.png", big, "image/png"), prompt="a red car")
    assert (e.value.body["param"], e.value.body["message"]) == ("image", "image: at most 4 MiB (got 4.3 MiB)")
    got = httpx.post(server.url + "/sdapi/v1/img2img", json={"init_images": [base64.b64encode(big).decode()]})
    assert got.status_code == 400 and got.json()["detail"] == "init_images: at most 4 MiB (got 4.3 MiB)"
