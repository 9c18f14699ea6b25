"""The autoencoder's sharpening losses: a perceptual distance over the judge's trunk and a patch discriminator."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from kaiga.data.dataset import write_scenes
from kaiga.eval.readout import ReadoutNet
from kaiga.families.diffusion.config import VAEConfig, build_vae
from kaiga.families.diffusion.sharpening import (
    PatchDiscriminator,
    PerceptualDistance,
    SharpeningConfig,
    hinge_discriminator_loss,
    sharp_vae_loss,
)
from kaiga.train.commands import train_autoencoder
from kaiga.train.loop import LoopConfig


@pytest.fixture(scope="module")
def perceptual():
    return PerceptualDistance(ReadoutNet.load())


def _images(seed: int, n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_the_distance_is_zero_for_the_same_image_and_grows_with_the_difference(perceptual):
    x = _images(0)
    assert float(perceptual(x, x)) == pytest.approx(0.0, abs=1e-6)
    slightly, very = x + 0.05 * _images(1), _images(2)
    assert 0 < float(perceptual(slightly, x)) < float(perceptual(very, x))


def test_the_distance_trains_the_image_not_the_judge(perceptual):
    x = _images(0).requires_grad_(True)
    perceptual(x, _images(1)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in perceptual.readout.parameters())


def test_each_network_gets_only_its_own_gradient(perceptual):
    """One backward pass: the discriminator's gradient is its hinge loss's alone, the autoencoder's has no
    discriminator loss in it (it sees only the verdict on its reconstructions)."""
    torch.manual_seed(0)
    vae, disc = build_vae(VAEConfig(block_out_channels=(8, 8, 8), norm_num_groups=4)), PatchDiscriminator(8)
    cfg, x = SharpeningConfig(disc_start=0, disc_width=8), _images(3)

    def grads(module):
        return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]

    loss, logs = sharp_vae_loss(vae, disc, perceptual, x, step=5, cfg=cfg, kl_weight=1e-6,
                                generator=torch.Generator().manual_seed(1))
    loss.backward()
    assert {"g_adv", "d_loss"} <= logs.keys()
    d_joint, v_joint = grads(disc), grads(vae)

    vae.zero_grad(), disc.zero_grad()
    posterior = vae.encode(x).latent_dist
    x_hat = vae.decode(posterior.sample(torch.Generator().manual_seed(1))).sample
    hinge_discriminator_loss(disc(x), disc(x_hat.detach())).backward()
    for a, b in zip(d_joint, grads(disc)):
        torch.testing.assert_close(a, b)

    vae.zero_grad(), disc.zero_grad()
    posterior = vae.encode(x).latent_dist
    x_hat = vae.decode(posterior.sample(torch.Generator().manual_seed(1))).sample
    own = (torch.nn.functional.l1_loss(x_hat, x) + perceptual(x_hat, x)
           + 1e-6 * posterior.kl().mean() / x[0].numel() - cfg.adversarial_weight * disc(x_hat).mean())
    own.backward()
    for a, b in zip(v_joint, grads(vae)):
        torch.testing.assert_close(a, b)


def test_the_discriminator_waits_for_its_start(perceptual):
    vae, disc = build_vae(VAEConfig(block_out_channels=(8, 8, 8), norm_num_groups=4)), PatchDiscriminator(8)
    loss, logs = sharp_vae_loss(vae, disc, perceptual, _images(4), step=9, cfg=SharpeningConfig(disc_start=10),
                                kl_weight=1e-6)
    loss.backward()
    assert "d_loss" not in logs and all(p.grad is None for p in disc.parameters())


def test_a_sharp_run_checkpoints_the_discriminator_resumes_and_ships_without_it(perceptual, tmp_path):
    data = write_scenes(tmp_path / "data", n=8)
    loop = LoopConfig(steps=4, batch_size=2, lr=1e-3, warmup_steps=0, checkpoint_every=2, sample_every=0,
                      progress=False, log_every=1)
    cfg = SharpeningConfig(disc_start=2, disc_width=8)
    train_autoencoder(data, tmp_path / "run", loop, size="tiny", perceptual=perceptual, sharpening=cfg,
                      latent_channels=8)
    assert any(k.startswith("discriminator.") for k in load_file(tmp_path / "run" / "checkpoint" / "model.safetensors"))
    logs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert "d_loss" not in logs[1] and "d_loss" in logs[2]  # steps 1-2 without the discriminator, 3-4 with it
    state = train_autoencoder(data, tmp_path / "run", LoopConfig(**{**loop.__dict__, "steps": 6}), size="tiny",
                              resume=True, perceptual=perceptual, sharpening=cfg, latent_channels=8)
    assert state["step"] == 6
    vae_files = {p.name for p in (tmp_path / "run" / "vae").iterdir()}
    assert vae_files == {"config.json", "diffusion_pytorch_model.safetensors"}
    assert json.loads((tmp_path / "run" / "vae" / "config.json").read_text())["latent_channels"] == 8
    [run] = json.loads((tmp_path / "run" / "kaiga.json").read_text())["training"]["runs"]
    assert run["steps"] == 6 and run["recipe"]["disc_start"] == 2 and "perceptual" in run["recipe"]["losses"]
