"""Shared fixtures: tiny models saved in the real formats, and an isolated KAIGA_HOME."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("KAIGA_HOME", str(tmp_path_factory.mktemp("kaiga_home")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random latent diffusion model in the diffusers folder layout."""
    from kaiga.families.diffusion.model import LatentDiffusion, tiny_config

    torch.manual_seed(0)
    return LatentDiffusion.create(tiny_config()).save(tmp_path_factory.mktemp("models") / "tiny-diffusion")


@pytest.fixture(scope="session")
def tiny_scenes(tmp_path_factory):
    """16 scenes renders in the training dataset format."""
    from kaiga.data.dataset import write_scenes

    return write_scenes(tmp_path_factory.mktemp("data") / "scenes", n=16, seed=3)
