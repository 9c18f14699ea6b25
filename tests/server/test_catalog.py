"""The catalog refuses what a model cannot do before a job is queued, with kaiga.capabilities' one check."""

from __future__ import annotations

import shutil

import pytest

from kaiga.request import GenerationRequest, RequestError
from kaiga.server.catalog import Catalog


def test_a_diffusers_folder_without_kaiga_json_is_checked_from_its_configs(tiny_model_dir, tmp_path):
    bare = shutil.copytree(tiny_model_dir, tmp_path / "bare-diffusion")
    (bare / "kaiga.json").unlink()
    for folder in (tiny_model_dir, bare):
        catalog = Catalog(str(folder))
        # the tiny model: a VAE and a UNet of three levels each, so sizes go in steps of 2**2 · 2**2 = 16
        assert catalog.capabilities(None).size_multiple == 16
        catalog.check(GenerationRequest(prompt="a red car", width=48))
        with pytest.raises(RequestError, match=r"width: must be a multiple of 16 for this model \(got 72\)"):
            catalog.check(GenerationRequest(prompt="a red car", width=72))


def test_a_one_size_family_refuses_other_sizes_and_edits():
    catalog = Catalog("scenes-vae")
    with pytest.raises(RequestError, match="height: a vae model makes 64×64 images only"):
        catalog.check(GenerationRequest(prompt="a red car", height=128))
    with pytest.raises(RequestError, match="init_image: image edits need a diffusion model"):
        catalog.check(GenerationRequest(prompt="a red car", init_image="ab" * 32))
    with pytest.raises(RequestError, match="sampler: this model supports"):
        Catalog().check(GenerationRequest(prompt="a red car", sampler="lcm"))
