"""Generation metadata: kaiga records, A1111 `parameters` text, ComfyUI graphs, PNG/JPEG round trips."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import struct

import pytest
from PIL import ExifTags, Image, PngImagePlugin

from kaiga.metadata import (
    A1111_SAMPLER_NAMES,
    SAMPLER_FROM_A1111,
    GenerationRecord,
    ImageMetadata,
    MetadataError,
    describe,
    parse_a1111_parameters,
    png_bytes,
    read_metadata,
    save_png,
    to_a1111_parameters,
)

# Copied from AUTOMATIC1111 modules/infotext_utils.py, to check our text against A1111's own parser.
A1111_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')

REAL_A1111 = (
    "masterpiece, 1girl\n"
    "Negative prompt: lowres, bad anatomy\n"
    "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 3478, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.9.4"
)


def make_record(**overrides) -> GenerationRecord:
    fields = dict(
        prompt="a red fox, in snow",
        negative_prompt="blurry, lowres",
        seed=123,
        sampler="euler-a",
        steps=20,
        guidance=7.0,
        width=64,
        height=64,
        model="scenes-diffusion",
        model_hash="abcdef0123",
        timings={"total_ms": 812.5},
        kaiga_version="0.1.0",
        created="2024-05-01T12:00:00+00:00",
    )
    fields.update(overrides)
    return GenerationRecord(**fields)


def small_image() -> Image.Image:
    return Image.new("RGB", (8, 8), (200, 40, 10))


# --- record --------------------------------------------------------------------------------


def test_record_json_round_trip():
    rec = make_record(upscale=4, extra={"strength": 0.6})
    back = GenerationRecord.from_json(rec.to_json())
    assert back == rec
    assert json.loads(rec.to_json())["timings"] == {"total_ms": 812.5}


def test_record_is_frozen_and_checks_hash():
    rec = make_record()
    with pytest.raises(ValueError):
        rec.seed = 5  # type: ignore[misc]
    with pytest.raises(ValueError):
        make_record(model_hash="not-a-hash")


def test_record_defaults_version_and_created():
    rec = GenerationRecord(prompt="p", seed=1, sampler="ddim", steps=1, guidance=1.0, width=8, height=8,
                           model="m", model_hash="0123456789")
    assert rec.kaiga_version and rec.created.endswith("+00:00")
    assert rec.family == "diffusion" and rec.upscale == 1 and rec.extra == {}


def test_sampler_names_are_a1111s_and_invertible():
    assert A1111_SAMPLER_NAMES == {"ddim": "DDIM", "euler": "Euler", "euler-a": "Euler a",
                                   "dpm++2m": "DPM++ 2M", "lcm": "LCM"}
    assert all(SAMPLER_FROM_A1111[v] == k for k, v in A1111_SAMPLER_NAMES.items())


# --- A1111 text ----------------------------------------------------------------------------


def test_a1111_layout():
    text = to_a1111_parameters(make_record(negative_prompt=""))
    assert text == (
        "a red fox, in snow\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7.0, Seed: 123, Size: 64x64, Model hash: abcdef0123, "
        "Model: scenes-diffusion, Version: kaiga 0.1.0"
    )
    text = to_a1111_parameters(make_record(upscale=4))
    assert text.split("\n")[1] == "Negative prompt: blurry, lowres"
    assert text.endswith(", Postprocess upscale by: 4, Postprocess upscaler: Lanczos, Version: kaiga 0.1.0")


def test_a1111_round_trip_with_commas_newlines_and_quoting():
    rec = make_record(prompt="a fox, in snow\nwide shot, (detailed:1.2)", negative_prompt="blurry,\nlowres",
                      model='odd, name: "v2"', upscale=2)
    parsed = parse_a1111_parameters(to_a1111_parameters(rec))
    assert parsed["prompt"] == rec.prompt
    assert parsed["negative_prompt"] == rec.negative_prompt
    assert parsed["Model"] == 'odd, name: "v2"'
    assert parsed["Sampler"] == "Euler a" and SAMPLER_FROM_A1111[parsed["Sampler"]] == "euler-a"
    assert parsed["Steps"] == "20" and parsed["Seed"] == "123" and parsed["Size"] == "64x64"
    assert parsed["Postprocess upscale by"] == "2" and parsed["Version"] == "kaiga 0.1.0"


def test_params_line_parses_with_a1111_regex():
    rec = make_record(model="name, with: colon")
    last = to_a1111_parameters(rec).split("\n")[-1]
    pairs = A1111_RE_PARAM.findall(last)
    assert [k for k, _ in pairs] == ["Steps", "Sampler", "CFG scale", "Seed", "Size", "Model hash", "Model", "Version"]
    values = {k: json.loads(v) if v.startswith('"') else v for k, v in pairs}
    assert values["Model"] == "name, with: colon"
    assert values["CFG scale"] == "7.0"


def test_parse_real_a1111_text():
    parsed = parse_a1111_parameters(REAL_A1111)
    assert parsed == {
        "prompt": "masterpiece, 1girl",
        "negative_prompt": "lowres, bad anatomy",
        "Steps": "20",
        "Sampler": "DPM++ 2M Karras",
        "CFG scale": "7",
        "Seed": "3478",
        "Size": "512x768",
        "Model hash": "6ce0161689",
        "Model": "v1-5-pruned-emaonly",
        "Version": "v1.9.4",
    }


def test_parse_prompt_only_text_has_no_params():
    parsed = parse_a1111_parameters("just a prompt: with a colon\nsecond line")
    assert parsed == {"prompt": "just a prompt: with a colon\nsecond line", "negative_prompt": ""}


# --- files ---------------------------------------------------------------------------------


def test_save_png_read_metadata_round_trip(tmp_path):
    rec = make_record(upscale=4, extra={"strength": 0.5})
    path = save_png(small_image(), rec, tmp_path / "out.png")
    assert path == tmp_path / "out.png"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp file left behind
    meta = read_metadata(path)
    assert meta.source == "kaiga"
    assert meta.record == rec
    assert meta.parameters["Seed"] == "123"
    assert meta.raw["parameters"] == to_a1111_parameters(rec)
    with Image.open(path) as im:
        assert im.size == (8, 8)
    assert "Prompt: a red fox, in snow" in describe(meta)


def test_png_bytes_matches_save_png_and_reads_back(tmp_path):
    rec = make_record(prompt="ünïcode prompt ✓")  # not Latin-1: goes into an iTXt chunk
    data = png_bytes(small_image(), rec)
    assert save_png(small_image(), rec, tmp_path / "a.png").read_bytes() == data
    meta = read_metadata(data)
    assert meta.source == "kaiga" and meta.record == rec
    with Image.open(io.BytesIO(data)) as im:
        assert read_metadata(im).record == rec


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask_as_open_would(tmp_path, umask, mode):
    """Not the temporary file's 0600: under umask 022 others may read an output PNG or an upload."""
    from kaiga.store.uploads import UploadStore

    old = os.umask(umask)
    try:
        png = save_png(small_image(), make_record(), tmp_path / "out.png")
        upload = UploadStore(tmp_path / "uploads")
        uploaded = upload.file(upload.add(small_image()))
    finally:
        os.umask(old)
    assert stat.S_IMODE(png.stat().st_mode) == mode
    assert stat.S_IMODE(uploaded.stat().st_mode) == mode


def test_an_exclusive_save_never_replaces_a_file(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"earlier work")
    with pytest.raises(FileExistsError):
        save_png(small_image(), make_record(), path, exclusive=True)
    assert path.read_bytes() == b"earlier work"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp file left behind
    fresh = save_png(small_image(), make_record(), tmp_path / "new.png", exclusive=True)
    assert read_metadata(fresh).record == make_record()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.png", "out.png"]


def test_png_with_only_parameters_is_a1111(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", REAL_A1111)
    path = tmp_path / "a1111.png"
    small_image().save(path, pnginfo=info)
    meta = read_metadata(path)
    assert meta.source == "a1111" and meta.record is None
    assert meta.parameters["Seed"] == "3478" and meta.parameters["prompt"] == "masterpiece, 1girl"
    assert "Sampler: DPM++ 2M Karras" in describe(meta)


def comfyui_graph() -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk, oil painting",
                                                         "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 42, "steps": 25, "cfg": 6.5, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    }


def test_png_with_comfyui_prompt_is_comfyui(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(comfyui_graph()))
    info.add_text("workflow", json.dumps({"last_node_id": 9, "nodes": []}))
    path = tmp_path / "comfy.png"
    small_image().save(path, pnginfo=info)
    meta = read_metadata(path)
    assert meta.source == "comfyui"
    p = meta.parameters
    assert p["seed"] == 42 and p["steps"] == 25 and p["cfg"] == 6.5
    assert p["sampler_name"] == "euler" and p["scheduler"] == "normal"
    assert p["positive"] == "a lighthouse at dusk, oil painting" and p["negative"] == "text, watermark"
    assert p["model"] == "sd_xl_base_1.0.safetensors"
    assert "Prompt: a lighthouse at dusk, oil painting" in describe(meta)


def test_comfyui_advanced_sampler_and_linked_text(tmp_path):
    graph = comfyui_graph()
    graph["3"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "noise_seed": 7, "steps": 30, "cfg": 5.0, "sampler_name": "dpmpp_2m", "scheduler": "karras",
        "positive": ["10", 0], "negative": ["7", 0]}}
    graph["10"] = {"class_type": "ConditioningSetArea", "inputs": {"conditioning": ["6", 0], "strength": 1.0,
                                                                   "width": 64, "height": 64, "x": 0, "y": 0}}
    graph["6"]["inputs"]["text"] = ["11", 0]
    graph["11"] = {"class_type": "PrimitiveString", "inputs": {"value": "linked prompt"}}
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(graph))
    path = tmp_path / "comfy2.png"
    small_image().save(path, pnginfo=info)
    p = read_metadata(path).parameters
    assert p["seed"] == 7 and p["positive"] == "linked prompt" and p["negative"] == "text, watermark"


def a1111_exif_bytes(comment: str) -> bytes:
    """EXIF as A1111 writes it: piexif.dump({"Exif": {UserComment: UserComment.dump(text, "unicode")}}).

    piexif writes a big-endian TIFF whose IFD0 only points at the Exif IFD, and the comment as type
    UNDEFINED (7). PIL's Image.Exif writes it as BYTE (1) instead, so build piexif's layout by hand.
    """
    payload = b"UNICODE\x00" + comment.encode("utf-16-be")
    exif_ifd_at = 8 + 2 + 12 + 4
    payload_at = exif_ifd_at + 2 + 12 + 4
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)
    tiff += struct.pack(">H", 1) + struct.pack(">HHII", 0x8769, 4, 1, exif_ifd_at) + struct.pack(">I", 0)
    tiff += struct.pack(">H", 1) + struct.pack(">HHII", 0x9286, 7, len(payload), payload_at) + struct.pack(">I", 0)
    return b"Exif\x00\x00" + tiff + payload


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_exif_user_comment_as_a1111_writes_it(tmp_path, fmt):
    comment = "café, night\nNegative prompt: blur\nSteps: 30, Sampler: Euler a, CFG scale: 5, Seed: 9, Size: 8x8"
    path = tmp_path / f"a1111.{fmt.lower()}"
    try:
        small_image().save(path, fmt, exif=a1111_exif_bytes(comment))
    except (OSError, KeyError) as e:  # a PIL built without WebP
        pytest.skip(f"PIL cannot write {fmt}: {e}")
    meta = read_metadata(path)
    assert meta.source == "a1111"
    assert meta.parameters["prompt"] == "café, night" and meta.parameters["negative_prompt"] == "blur"
    assert meta.parameters["Seed"] == "9"


def test_exif_user_comment_written_by_pil(tmp_path):
    comment = "a boat\nSteps: 12, Sampler: DDIM, CFG scale: 3, Seed: 1, Size: 8x8"
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"UNICODE\x00" + comment.encode("utf-16-be")
    path = tmp_path / "pil.jpg"
    small_image().save(path, "JPEG", exif=exif)
    meta = read_metadata(path)
    assert meta.source == "a1111" and meta.parameters["Sampler"] == "DDIM"


def test_exif_comment_without_params_is_not_a1111(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"ASCII\x00\x00\x00holiday snap"
    path = tmp_path / "camera.jpg"
    small_image().save(path, "JPEG", exif=exif)
    meta = read_metadata(path)
    assert meta.source == "none" and meta.raw["UserComment"] == "holiday snap"


def test_plain_image_has_no_metadata(tmp_path):
    path = tmp_path / "plain.png"
    small_image().save(path)
    meta = read_metadata(path)
    assert meta == ImageMetadata("none", None, {}, {})
    assert "No generation metadata found." in describe(meta)


def test_non_image_raises_metadata_error(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image")
    with pytest.raises(MetadataError, match="not an image"):
        read_metadata(path)
    with pytest.raises(ValueError):  # MetadataError is a ValueError
        read_metadata(b"\x00\x01garbage")
