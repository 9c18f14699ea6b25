"""The VAE's mixture prior and prior stage, and the GAN that starts from a VAE's decoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kaiga.families.gan.model import TextGAN
from kaiga.families.vae.model import ConditionalVAE, Prior, VAEFamilyConfig
from kaiga.request import GenerationRequest

REQUEST = GenerationRequest(prompt="a red car to the left of a blue dog")


def tiny_vae(components: int = 1) -> ConditionalVAE:
    torch.manual_seed(0)
    return ConditionalVAE.create(VAEFamilyConfig(**{**VAEFamilyConfig.tiny().__dict__, "prior_components": components}))


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im, np.int16) for im in images])


def batch(model):
    g = torch.Generator().manual_seed(0)
    ids = model.tokenize(["a red car", "two dogs on the beach", "a cat at night"])
    return {"pixels": torch.rand(3, 3, 64, 64, generator=g) * 2 - 1, "input_ids": ids, "generator": g}


def test_mixture_log_prob_is_the_gaussian_one_for_equal_components():
    z, mean, logvar = torch.randn(5, 4), torch.randn(5, 1, 4), torch.randn(5, 1, 4) * 0.3
    gaussian = torch.distributions.Normal(mean[:, 0], (0.5 * logvar[:, 0]).exp()).log_prob(z).sum(1)
    assert torch.allclose(Prior.log_prob(z, torch.zeros(5, 1), mean, logvar), gaussian, atol=1e-5)
    twice = Prior.log_prob(z, torch.randn(5, 2), mean.repeat(1, 2, 1), logvar.repeat(1, 2, 1))
    assert torch.allclose(twice, gaussian, atol=1e-5)  # two copies of one Gaussian are that Gaussian


def test_the_sampled_kl_of_a_mixture_averages_to_the_closed_form():
    one, two = tiny_vae(1), tiny_vae(2)
    two.prior_net.net.load_state_dict({k: v.repeat(2, *[1] * (v.ndim - 1)) if k.startswith("2.") else v
                                       for k, v in one.prior_net.net.state_dict().items()})
    text = torch.randn(1, one.config.text.hidden_size).repeat(20000, 1)
    mean, logvar = torch.randn(1, 8).repeat(20000, 1), torch.full((20000, 8), -0.5)
    eps = torch.randn(20000, 8)
    z = mean + eps * (0.5 * logvar).exp()
    closed = one.kl(z, eps, mean, logvar, text)  # one Gaussian: the closed form, the same for every draw
    sampled = two.kl(z, eps, mean, logvar, text)  # two equal components: log q − log p at each draw
    assert torch.allclose(closed, closed[:1]) and not torch.allclose(sampled, sampled[:1])
    assert math.isclose(sampled.mean().item(), closed[0].item(), rel_tol=0.03, abs_tol=0.05)


def test_the_seed_picks_the_component():
    logits = torch.tensor([[0.0, 0.0, 0.0]]).repeat(3, 1)
    mean = torch.arange(3.0)[None, :, None].repeat(3, 1, 2)  # component k has mean k
    noise = torch.tensor([[0.0, 0.0, -5.0], [0.0, 0.0, 0.0], [0.0, 0.0, 5.0]])  # last value: which component
    assert Prior.draw(noise, logits, mean, torch.zeros(3, 3, 2))[:, 0].tolist() == [0.0, 1.0, 2.0]
    heavy = torch.tensor([[-20.0, 20.0, -20.0]]).repeat(3, 1)  # all the weight on component 1
    assert Prior.draw(noise, heavy, mean, torch.zeros(3, 3, 2))[:, 0].tolist() == [1.0, 1.0, 1.0]


def test_a_mixture_vae_samples_by_seed_and_round_trips(tmp_path):
    model = tiny_vae(3).eval()
    assert model.noise_dim == model.config.latent_dim + 1
    alone, together = model.sample(REQUEST, [5], batch_size=1), model.sample(REQUEST, [4, 5, 6], batch_size=2)
    assert np.abs(pixels(alone) - pixels(together[1:2])).max() <= 1
    loaded = ConditionalVAE.load(model.save(tmp_path / "mix"))
    assert loaded.config.prior_components == 3
    assert np.abs(pixels(loaded.sample(REQUEST, [1, 2])) - pixels(model.sample(REQUEST, [1, 2]))).max() <= 1


def test_the_prior_stage_trains_a_new_prior_and_nothing_else():
    model = tiny_vae(1).set_stage("prior", prior_components=4)
    assert model.config.prior_components == 4 and model.info["config"]["prior_components"] == 4
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"prior_net"}
    loss, logs = model.loss(batch(model))
    loss.backward()
    assert set(logs) == {"kl"} and torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.prior_net.parameters())
    assert [group["params"] for group in model.param_groups(type("Cfg", (), {"lr": 1e-3}))] == [
        list(model.prior_net.parameters())]
    model.set_stage("all")
    assert all(p.requires_grad for p in model.parameters())


def test_a_gan_from_a_vae_draws_the_vaes_images_and_freezes_its_text_encoder():
    vae = tiny_vae(1).eval()
    gan = TextGAN.from_vae(vae).eval()
    assert gan.config.g_mapping and gan.config.freeze_text and gan.config.z_dim == vae.config.latent_dim
    assert np.abs(pixels(gan.sample(REQUEST, [1, 2, 3])) - pixels(vae.sample(REQUEST, [1, 2, 3]))).max() <= 1
    g_params, d_params = (group["params"] for group in gan.param_groups(type("Cfg", (), {"lr": 1e-3})))
    text_params = {id(p) for p in gan.text_encoder.parameters()}
    assert not text_params & {id(p) for p in g_params + d_params}
    with pytest.raises(ValueError, match="one-Gaussian prior"):
        TextGAN.from_vae(tiny_vae(2))


def test_a_new_mixture_starts_as_copies_of_the_trained_gaussian():
    model = tiny_vae(1)
    b = batch(model)
    text = model.encode_text(b["input_ids"])
    _, mean_1, logvar_1 = model.prior_net(text)
    model.set_stage("prior", prior_components=3)
    logits, mean_3, logvar_3 = model.prior_net(text)
    assert torch.allclose(logvar_3, logvar_1.expand(-1, 3, -1)) and torch.allclose(logits, torch.zeros(3, 3))
    shift = (mean_3 - mean_1).detach()
    assert 0 < shift.abs().max() < 1 and not torch.allclose(shift[:, 0], shift[:, 1])
    assert torch.allclose(shift, shift[:1].expand(3, -1, -1))  # the same shift (a bias) for every caption


def test_the_config_says_what_no_truncation_means():
    model = tiny_vae(1).eval()
    model.config = VAEFamilyConfig(**{**model.config.__dict__, "truncation": 0.0})
    same = pixels(model.sample(REQUEST, [1, 2]))
    assert np.abs(same[0] - same[1]).max() == 0  # truncation 0: one image per prompt
    varied = pixels(model.sample(REQUEST.model_copy(update={"truncation": 1.0}), [1, 2]))
    assert np.abs(varied[0] - varied[1]).max() > 0
    with pytest.raises(ValueError, match="truncation"):
        VAEFamilyConfig(truncation=1.5)
