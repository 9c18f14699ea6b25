"""The diffusion family's losses: v-prediction with min-SNR weighting, held to seeded golden values."""

from __future__ import annotations

import pytest
import torch

from kaiga.families.diffusion.losses import diffusion_loss, min_snr_weight, v_target
from kaiga.families.diffusion.model import DiffusionStage, LatentDiffusion, tiny_config
from kaiga.families.diffusion.schedulers import alphas_cumprod


def test_v_target_is_alpha_noise_minus_sigma_x0():
    x0, noise = torch.tensor([1.0]), torch.tensor([2.0])
    alpha, sigma = torch.tensor(0.6), torch.tensor(0.8)
    assert v_target(x0, noise, alpha, sigma).item() == pytest.approx(0.6 * 2 - 0.8 * 1)


def test_min_snr_weight_caps_easy_steps():
    assert min_snr_weight(torch.tensor([0.0, 1.0, 5.0, 100.0]), gamma=5.0).tolist() == pytest.approx(
        [0.0, 0.5, 5 / 6, 5 / 101])


def test_zero_terminal_snr_schedule():
    abar = alphas_cumprod({})
    assert len(abar) == 1000 and abar[-1].item() == pytest.approx(0.0, abs=1e-6) and abar[0].item() > 0.99


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LatentDiffusion.create(tiny_config())


def _batch(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    return {"pixels": pixels, "input_ids": model.tokenize(["a red car", "a blue dog"]), "generator": g}


def test_v_prediction_loss_golden_value(model):
    model.set_stage(DiffusionStage.DENOISER)
    loss, _ = model.loss(_batch(model))
    assert loss.item() == pytest.approx(0.0558412, rel=1e-4)


def test_the_loss_is_a_pure_function_of_its_inputs(model):
    abar = alphas_cumprod(model.scheduler_config)
    g = torch.Generator().manual_seed(1)
    latents, noise = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 4, 16, 16, generator=g)
    states = model.encode_text(model.tokenize(["a", "b"]))
    t = torch.tensor([10, 900])
    a = diffusion_loss(model.unet, abar, latents, states, noise, t)
    b = diffusion_loss(model.unet, abar, latents, states, noise, t)
    assert a.item() == b.item()
    assert diffusion_loss(model.unet, abar, latents, states, noise, torch.tensor([999, 999])).item() > 0  # floor at t=T


def test_autoencoder_stage_loss_golden_value(model):
    model.set_stage(DiffusionStage.AUTOENCODER)
    loss, logs = model.loss(_batch(model))
    assert set(logs) == {"rec", "kl"}
    assert loss.item() == pytest.approx(0.982160, rel=1e-4) and logs["kl"] == pytest.approx(0.0051955, rel=1e-3)
    model.set_stage(DiffusionStage.DENOISER)
