"""The catalog refuses what a model cannot do before a job is queued, with kaiga.capabilities' one check."""

from __future__ import annotations

import shutil

import pytest

from kaiga.request import GenerationRequest, RequestError, Sampler
from kaiga.server.catalog import Catalog


def test_a_diffusers_folder_without_kaiga_json_is_checked_from_its_configs(tiny_model_dir, tmp_path):
    # kaiga's tiny model declares multiples of 16 in its kaiga.json (VAE and UNet of three levels each)
    catalog = Catalog(str(tiny_model_dir))
    assert catalog.capabilities(None).size_multiple == 16
    catalog.check(GenerationRequest(prompt="a red car", width=48))
    with pytest.raises(RequestError, match=r"width: must be a multiple of 16 for this model \(got 72\)"):
        catalog.check(GenerationRequest(prompt="a red car", width=72))
    # Without it, a folder as downloaded: read as Stable Diffusion's, sizes in multiples of the VAE's factor
    # (the UNet takes latents its downsampling does not divide), SD's defaults.
    bare = shutil.copytree(tiny_model_dir, tmp_path / "bare-diffusion")
    (bare / "kaiga.json").unlink()
    caps = Catalog(str(bare)).capabilities(None)
    assert (caps.size_multiple, caps.default["steps"], caps.default["guidance"]) == (4, 50, 7.5)
    Catalog(str(bare)).check(GenerationRequest(prompt="a red car", width=72))


def test_a_one_size_family_refuses_other_sizes_and_edits():
    catalog = Catalog("scenes-vae")
    with pytest.raises(RequestError, match="height: a vae model makes 64×64 images only"):
        catalog.check(GenerationRequest(prompt="a red car", height=128))
    with pytest.raises(RequestError, match="init_image: image edits need a diffusion model"):
        catalog.check(GenerationRequest(prompt="a red car", init_image="ab" * 32))
    with pytest.raises(RequestError, match="sampler: this model supports"):
        Catalog().check(GenerationRequest(prompt="a red car", sampler="lcm"))


def test_describe_says_what_each_model_offers(tiny_model_dir, tmp_path):
    """What GET /v1/models tells a client (the web UI's form): sizes, samplers, options, defaults, the default."""
    catalog = Catalog("scenes-diffusion")
    diffusion, gan = catalog.describe("scenes-diffusion"), catalog.describe("scenes-gan")
    assert diffusion["default"] and not gan["default"]
    assert (diffusion["native_size"], diffusion["max_size"], diffusion["size_multiple"]) == (64, 256, 16)
    assert "lcm" not in diffusion["samplers"] and diffusion["edits"] and diffusion["options"] == []
    assert diffusion["defaults"]["steps"] == 20 and diffusion["defaults"]["guidance"] == 3
    assert (gan["samplers"], gan["max_size"], gan["edits"], gan["options"]) == ([], 64, False, ["truncation"])
    # A diffusers folder that names no samplers (Stable Diffusion's layout) takes every one: all are offered.
    bare = shutil.copytree(tiny_model_dir, tmp_path / "bare-diffusion")
    (bare / "kaiga.json").unlink()
    assert Catalog(str(bare)).describe(None)["samplers"] == [s.value for s in Sampler]
