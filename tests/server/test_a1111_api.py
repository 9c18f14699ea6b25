"""The A1111-compatible API, called with the `webuiapi` package against a real server."""

import base64
import io
import json

import httpx
import pytest
import webuiapi
from PIL import Image

from kaiga.metadata import read_metadata


def _api(server, **auth) -> webuiapi.WebUIApi:
    return webuiapi.WebUIApi(baseurl=server.url + "/sdapi/v1", sampler="Euler a", steps=2, **auth)


def test_txt2img_answers_as_a1111_does(server):
    api = _api(server)
    r = api.txt2img(prompt="a red car in the snow", negative_prompt="fog", seed=5, width=64, height=64,
                    batch_size=2, cfg_scale=4)
    assert [im.size for im in r.images] == [(64, 64), (64, 64)]
    raw = r.json
    assert isinstance(raw["info"], str) and not raw["images"][0].startswith("data:")
    info = r.info  # webuiapi parsed the JSON string
    assert (info["seed"], info["all_seeds"], info["sampler_name"], info["steps"]) == (5, [5, 6], "Euler a", 2)
    assert info["width"] == 64 and info["cfg_scale"] == 4 and info["sd_model_name"] == "tiny-diffusion"
    assert "Negative prompt: fog" in info["infotexts"][0] and "Seed: 6" in info["infotexts"][1]
    assert r.parameters["prompt"] == "a red car in the snow" and r.parameters["batch_size"] == 2
    rec = read_metadata(r.images[1]).record
    assert (rec.seed, rec.sampler, rec.negative_prompt) == (6, "euler-a", "fog")


def test_bad_values_are_422_naming_the_field(server):
    got = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a car", "steps": 500})
    assert got.status_code == 422 and got.json()["detail"].startswith("steps: must be between 1 and 150")
    got = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a car", "enable_hr": True})
    assert got.status_code == 422 and "enable_hr" in got.json()["detail"]
    got = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a car", "sampler_name": "PLMS"})
    assert got.status_code == 422 and got.json()["detail"].startswith("sampler")
    got = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a car", "batch_size": -1, "n_iter": -1})
    assert got.status_code == 422 and {e["loc"][-1] for e in got.json()["detail"]} == {"batch_size", "n_iter"}


def test_models_samplers_and_options(server):
    api = _api(server)
    models = api.get_sd_models()
    tiny = next(m for m in models if m["model_name"] == "tiny-diffusion")
    assert tiny["title"] == f"tiny-diffusion [{tiny['hash']}]" and len(tiny["hash"]) == 10
    assert {"Euler a", "DDIM", "DPM++ 2M"} <= {s["name"] for s in api.get_samplers()}
    assert api.get_options()["sd_model_checkpoint"] == tiny["title"]
    api.set_options({"sd_model_checkpoint": "scenes-diffusion"})
    assert api.get_options()["sd_model_checkpoint"].startswith("scenes-diffusion [")
    bad = httpx.post(server.url + "/sdapi/v1/options", json={"sd_model_checkpoint": "nope"})
    assert bad.status_code == 422 and "nope" in bad.json()["detail"]


def test_progress_and_interrupt_shapes(server):
    api = _api(server)
    p = api.get_progress()
    assert p["progress"] == 0.0 and {"job_count", "sampling_step", "sampling_steps"} <= set(p["state"])
    assert api.interrupt() == {}


def test_png_info_reads_kaiga_and_a1111_metadata(server):
    api = _api(server)
    r = api.txt2img(prompt="a red car", seed=3, width=64, height=64)
    buf = io.BytesIO()
    r.images[0].save(buf, format="PNG", pnginfo=_pnginfo(r.images[0]))
    got = httpx.post(server.url + "/sdapi/v1/png-info",
                     json={"image": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}).json()
    assert got["info"].startswith("a red car\nSteps: 2, Sampler: Euler a") and got["parameters"]["Seed"] == "3"
    assert json.loads(got["items"]["kaiga"])["seed"] == 3
    bad = httpx.post(server.url + "/sdapi/v1/png-info", json={"image": "bm90IGFuIGltYWdl"})
    assert bad.status_code == 422


def _pnginfo(image: Image.Image):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for k, v in image.text.items():
        info.add_text(k, v)
    return info


def test_api_auth_like_a1111(serve):
    from kaiga.store.keys import create_key

    server = serve(api_auth=("ann:s3cret",))
    assert httpx.get(server.url + "/sdapi/v1/samplers").status_code == 401
    assert httpx.get(server.url + "/sdapi/v1/samplers", auth=("ann", "wrong")).status_code == 401
    assert _api(server, username="ann", password="s3cret").get_samplers()
    key = create_key(server.state.db, name="krita")  # any user name with an API key as the password
    assert httpx.get(server.url + "/sdapi/v1/samplers", auth=("me", key)).status_code == 200
    with pytest.raises(RuntimeError):
        _api(server, username="ann", password="wrong").txt2img(prompt="a car", width=64, height=64)


def test_info_names_the_words_the_model_ignored(server):
    r = _api(server).txt2img(prompt="a zebra car", negative_prompt="okapi fog", width=64, height=64)
    assert r.info["unknown_words"] == ["zebra", "okapi"]
    assert _api(server).txt2img(prompt="a red car", width=64, height=64).info["unknown_words"] == []


def test_webuiapi_defaults_512_and_an_empty_prompt_are_made_and_enlarged(server):
    """webuiapi (as Krita and SillyTavern) asks for 512×512 with an empty prompt; the tiny model makes at most 256."""
    r = webuiapi.WebUIApi(baseurl=server.url + "/sdapi/v1").txt2img()
    assert [im.size for im in r.images] == [(512, 512)]
    assert r.info["kaiga_note"] == "made at 64x64 (the model's native size) and enlarged to 512x512 with kaiga-4x"
    assert (r.info["width"], r.info["height"], r.info["prompt"]) == (64, 64, "")
    rec = read_metadata(r.images[0]).record
    assert (rec.prompt, rec.width, rec.upscale) == ("", 64, 8)


def test_a_size_off_the_integer_factors_is_resized_to_the_one_asked_for(server):
    r = _api(server).txt2img(prompt="a red car", seed=1, width=600, height=400)
    assert [im.size for im in r.images] == [(600, 400)]
    assert r.info["kaiga_note"] == ("made at 80x48 (the model makes 64x64 natively, at most 256x256) and "
                                    "enlarged to 600x400 with kaiga-4x")
    assert read_metadata(r.images[0]).record.seed == 1  # the record survives the resize
    made = _api(server).txt2img(prompt="a red car", width=128, height=64)  # a size it can make: as asked
    assert [im.size for im in made.images] == [(128, 64)] and "kaiga_note" not in made.info


def test_img2img_with_webuiapi_defaults_is_enlarged_too(server):
    init = Image.new("RGB", (100, 80), "blue")
    r = webuiapi.WebUIApi(baseurl=server.url + "/sdapi/v1", steps=4).img2img(images=[init], prompt="a red car")
    assert [im.size for im in r.images] == [(512, 512)] and "enlarged to 512x512" in r.info["kaiga_note"]


def test_a_weighted_prompt_has_no_unknown_words(server):
    r = _api(server).txt2img(prompt="a (red:1.3) car, [snow], ((night))", width=64, height=64)
    assert r.info["unknown_words"] == []  # not `( : 1 . 3 )`, nor 3 as a count
    assert r.info["ignored_fields"] == []


def test_info_names_what_the_model_does_not_read(server):
    r = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a car", "steps": 2, "truncation": 0.5})
    assert r.status_code == 200 and json.loads(r.json()["info"])["ignored_fields"] == ["truncation"]


def test_the_same_size_error_is_400_from_txt2img_and_img2img(server):
    png = io.BytesIO()
    Image.new("RGB", (64, 64), "blue").save(png, format="PNG")
    body = {"prompt": "a car", "steps": 2, "width": 72, "height": 64}  # the tiny model's sizes divide by 16
    txt = httpx.post(server.url + "/sdapi/v1/txt2img", json=body)
    img = httpx.post(server.url + "/sdapi/v1/img2img",
                     json={**body, "init_images": [base64.b64encode(png.getvalue()).decode()]})
    assert txt.status_code == img.status_code == 400
    assert txt.json() == img.json() == {"detail": "width: must be a multiple of 16 for this model (got 72)"}


def test_upscalers_loras_cmd_flags_and_schedulers(server):
    api = _api(server)
    assert [(u["name"], u["scale"]) for u in api.get_upscalers()] == [("None", 1), ("kaiga-4x", 4), ("Lanczos", 8)]
    assert set(api.get_upscalers()[0]) == {"name", "model_name", "model_path", "model_url", "scale"}
    assert api.get_loras() == []
    flags = api.get_cmd_flags()
    assert (flags["api"], flags["nowebui"], flags["listen"], flags["port"]) == (True, False, False, server.port)
    assert flags["api_auth"] is None and flags["disable_safe_unpickle"] is False
    assert api.get_schedulers() == [{"name": "automatic", "label": "Automatic", "aliases": None, "default_rho": -1,
                                     "need_inner_model": False}]
    assert api.util_get_scheduler_names() == ["automatic"]
    got = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a car", "scheduler": "karras"})
    assert got.status_code == 422 and got.json()["detail"].startswith("scheduler: kaiga's samplers run")


@pytest.mark.parametrize("info, size, made, factor, note_end", [
    ({"family": "gan", "native_size": 64}, (512, 768), (64, 64), 8, "enlarged to 512x768 with kaiga-4x"),
    ({"family": "gan", "native_size": 64}, (32, 32), (64, 64), 1, "resized to 32x32 with kaiga-4x"),
    ({"native_size": 64, "max_size": 256, "size_multiple": 16}, (2048, 2048), (256, 256), 8, "to 2048x2048 with kaiga-4x"),
    ({"native_size": 512}, (512, 512), (512, 512), None, None),  # Stable Diffusion makes it as asked
])
def test_fit_size_makes_what_the_model_can_and_enlarges_it(info, size, made, factor, note_end):
    from kaiga.capabilities import Capabilities
    from kaiga.request import GenerationRequest
    from kaiga.server.a1111_api import fit_size

    gen, enlarged = fit_size(GenerationRequest(prompt="", width=size[0], height=size[1]), Capabilities.from_info(info))
    assert (gen.width, gen.height, gen.upscale) == (*made, factor)
    assert (enlarged.note.endswith(note_end) and enlarged.size == size) if note_end else enlarged is None


def test_an_upscale_beside_a_size_the_model_cannot_make_is_refused(server):
    got = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a car", "width": 512, "height": 512,
                                                             "upscale": 2})
    assert got.status_code == 422 and got.json()["detail"].startswith("upscale: this model cannot make 512x512")


def test_styles_on_txt2img_and_the_prompt_styles_list(server):
    api = _api(server)
    listed = {s["name"]: s for s in api.get_prompt_styles()}
    assert set(listed["watercolor"]) == {"name", "prompt", "negative_prompt"} and len(listed) >= 30
    r = api.txt2img(prompt="a red car", seed=5, width=64, height=64, styles=["watercolor", "neon"])
    assert r.info["styles"] == ["watercolor", "neon"]
    assert read_metadata(r.images[0]).record.extra["style"]["mix"] == "watercolor:0.5,neon:0.5"
    weighted = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a red car", "steps": 2,
                                                                   "style": "watercolor:0.8", "stylize": 300})
    assert weighted.status_code == 200 and json.loads(weighted.json()["info"])["styles"] == ["watercolor"]
    got = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a car", "styles": ["watercolour"]})
    assert got.status_code == 400 and "did you mean watercolor" in got.json()["detail"]


def test_the_prompt_syntax_through_txt2img(server):
    r = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a {red|blue} car AND snow :0.5", "steps": 2,
                                                           "seed": 4, "width": 64, "height": 64}, timeout=120)
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    assert len(r.json()["images"]) == 2 and info["all_seeds"] == [4, 4]
    assert info["all_prompts"] == ["a red car AND snow :0.5", "a blue car AND snow :0.5"]
    bad = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a [red:blue:soon] car"})
    assert bad.status_code == 422 and "at character 13" in bad.json()["detail"]
    listed = httpx.get(server.url + "/v1/wildcards").json()["data"]
    assert {w["name"] for w in listed} >= {"colour", "object", "weather"}


def test_interrogate_describes_an_image_with_the_scenes_judge(server):
    import numpy as np

    from kaiga.data.render import render
    from kaiga.data.world import Layout, Scene, SceneObject

    image = render(Scene((SceneObject("dog", "yellow"),), Layout.SINGLE, "beach", "clear", "sunset", "plain"),
                   np.random.default_rng(1))
    result = _api(server).interrogate(image)
    assert result.info == "a yellow dog on the beach, at sunset"  # webuiapi reads `caption` into info
    r = httpx.post(server.url + "/sdapi/v1/interrogate", json={"image": "not base64!"})
    assert r.status_code == 400 and "image: not valid base64" in r.json()["detail"]


def test_extra_single_image_enlarges_with_the_learned_upscaler(server):
    """A1111's Extras tab through webuiapi: kaiga-4x or Lanczos by name; a kaiga image sent as its PNG keeps its
    record, which then says the enlargement; what kaiga lacks (face restoration, a second upscaler) is a 422."""
    import base64
    import io

    from PIL import Image

    from kaiga.metadata import read_metadata

    made = _api(server).txt2img(prompt="a red car", width=64, height=64, seed=3)
    assert made.image.size == (64, 64)
    r = _api(server).extra_single_image(made.image, upscaler_1="kaiga-4x", upscaling_resize=4)
    assert r.image.size == (256, 256) and "kaiga-4x x4" in r.info
    png = base64.b64decode(made.json["images"][0])
    raw = httpx.post(server.url + "/sdapi/v1/extra-single-image",
                     json={"image": base64.b64encode(png).decode(), "upscaler_1": "Lanczos", "upscaling_resize": 2})
    assert raw.status_code == 200, raw.text
    enlarged = base64.b64decode(raw.json()["image"])
    record = read_metadata(enlarged).record
    assert Image.open(io.BytesIO(enlarged)).size == (128, 128)
    assert (record.upscale, record.extra["upscaler"], record.seed) == (2, "Lanczos", 3)
    odd = _api(server).extra_single_image(made.image, upscaler_1="kaiga-4x", resize_mode=1, upscaling_resize_w=200,
                                          upscaling_resize_h=100)
    assert odd.image.size == (200, 100) and "then Lanczos to 200x100" in odd.info
    for body, field in (({"gfpgan_visibility": 0.5}, "gfpgan_visibility"), ({"upscaler_1": "ESRGAN_4x"}, "upscaler_1"),
                        ({"upscaling_resize": 9}, "upscaling_resize"), ({"resize_mode": 2}, "resize_mode")):
        bad = httpx.post(server.url + "/sdapi/v1/extra-single-image",
                         json={"image": made.json["images"][0], "upscaler_1": "kaiga-4x", **body})
        assert bad.status_code == 422 and bad.json()["detail"].startswith(field + ":"), bad.text


def test_sref_on_txt2img_takes_the_style_of_an_image(server, watercolor_png):
    r = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a red car", "width": 64, "height": 64,
                                                           "steps": 1, "sref": watercolor_png})
    assert r.status_code == 200, r.text
    record = read_metadata(base64.b64decode(r.json()["images"][0])).record
    assert record.extra["sref"]["read"] == "watercolor" and record.extra["style"]["mix"].startswith("watercolor")


def test_xyz_plot_script_runs_as_kaigas_grid(server):
    """A1111's X/Y/Z plot through webuiapi (`script_name`, positional `script_args` as A1111 takes them): the
    labelled grid first, then each cell (include_lone_images), every cell a gallery image whose record says its place;
    an axis kaiga lacks is a 422 naming the argument."""
    api = _api(server)
    args = [4, "1-2", [], "Prompt S/R", "red, blue", [], 0, "", [], True, True, False, False, 0]
    r = api.txt2img(prompt="a red car", seed=3, width=64, height=64, script_name="X/Y/Z plot", script_args=args)
    grid, *cells = r.images
    assert len(cells) == 4 and all(c.size == (64, 64) for c in cells) and grid.width > 2 * 64
    records = [read_metadata(c).record for c in cells]
    assert [(rec.steps, rec.prompt, rec.seed) for rec in records] == [
        (1, "a red car", 3), (2, "a red car", 3), (1, "a blue car", 3), (2, "a blue car", 3)]
    assert records[3].extra["grid"] == {"x": "steps=1,2", "y": "prompt=red,blue", "cell": [1, 1]}
    assert r.info["index_of_first_image"] == 1 and r.info["all_prompts"][2] == "a blue car"
    assert read_metadata(grid).record.extra["grid"]["x"] == "steps=1,2"
    only_grid = api.txt2img(prompt="a red car", width=64, height=64, script_name="X/Y/Z plot",
                            script_args=["Sampler", "", ["Euler a", "DDIM"]], steps=1)
    assert len(only_grid.images) == 1
    for args, start in (([5, "1,2"], "script_args[0]: kaiga's X/Y/Z plot has the axes"),
                        ([4, "1-500 (+1)"], "script_args[1]: the range '1-500 (+1)' makes more than 64"),
                        ([99, "1"], "script_args[0]: an index into A1111's txt2img axes")):
        got = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a car", "script_name": "X/Y/Z plot",
                                                                 "script_args": args})
        assert got.status_code == 422 and got.json()["detail"].startswith(start), got.text
    got = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a car", "script_name": "Loopback"})
    assert got.status_code == 422 and got.json()["detail"].startswith("script_name: kaiga runs one of A1111's")


def test_the_loras_in_kaiga_home_are_listed(server, monkeypatch, tmp_path):
    from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    from kaiga.finetune.lora import add_lora, lora_layers, save_lora

    monkeypatch.setenv("KAIGA_HOME", str(tmp_path))
    assert httpx.get(server.url + "/sdapi/v1/loras").json() == []
    unet = LatentDiffusion.create(tiny_config()).unet
    add_lora(unet, rank=2, alpha=2)
    save_lora(lora_layers(unet), tmp_path / "loras" / "toy.safetensors", rank=2, alpha=2, metadata={"method": "lora"})
    listed = httpx.get(server.url + "/sdapi/v1/loras").json()
    assert [(lo["name"], lo["alias"], lo["metadata"]["rank"]) for lo in listed] == [("toy", "toy", 2)]
    assert listed[0]["path"].endswith("toy.safetensors")


def test_the_embeddings_in_kaiga_home_are_listed(server, monkeypatch, tmp_path):
    import torch

    from kaiga.finetune.embedding import save_embedding

    monkeypatch.setenv("KAIGA_HOME", str(tmp_path))
    assert httpx.get(server.url + "/sdapi/v1/embeddings").json() == {"loaded": {}, "skipped": {}}
    save_embedding(torch.zeros(1, 384), tmp_path / "embeddings" / "sks-toy.safetensors",
                   {"base": {"model": "scenes-diffusion", "model_hash": "0123456789"}})
    (tmp_path / "embeddings" / "broken.safetensors").write_bytes(b"not a file")
    listed = httpx.get(server.url + "/sdapi/v1/embeddings").json()
    assert listed["loaded"] == {"sks-toy": {"step": None, "sd_checkpoint": "0123456789",
                                            "sd_checkpoint_name": "scenes-diffusion", "shape": 384, "vectors": 1}}
    assert list(listed["skipped"]) == ["broken"]


def test_a_lora_by_prompt_tag_or_field_in_both_apis(server, monkeypatch, tmp_path):
    from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    from kaiga.finetune.lora import add_lora, lora_layers, save_lora

    monkeypatch.setenv("KAIGA_HOME", str(tmp_path))
    unet = LatentDiffusion.create(tiny_config()).unet
    add_lora(unet, rank=2, alpha=2)
    save_lora(lora_layers(unet), tmp_path / "loras" / "toy.safetensors", rank=2, alpha=2, metadata={"method": "lora"})
    r = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a red car <lora:toy:0.5>", "steps": 1,
                                                           "width": 64, "height": 64}, timeout=120)
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    assert info["prompt"] == "a red car"
    job = server.wait_for_job(httpx.post(server.url + "/v1/jobs", json={"prompt": "a red car", "lora": "toy:0.7",
                                                                        "steps": 1}).json()["id"])
    assert job["images"][0]["record"]["extra"]["loras"][0]["weight"] == 0.7
    bad = httpx.post(server.url + "/v1/jobs", json={"prompt": "a red car", "lora": "nope", "steps": 1})
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("lora: no LoRA 'nope'")
