"""The `gan` family: loss and gradient routing, augmentation, seeds, truncation, files, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kaiga.families.gan.augment import AugmentConfig, diff_augment
from kaiga.families.gan.model import GANConfig, TextGAN
from kaiga.request import GenerationRequest, RequestError
from kaiga.train.loop import LoopConfig

PROMPT = "a red car to the left of a blue dog in the snow at night, watercolor"


@pytest.fixture(scope="module")
def model() -> TextGAN:
    torch.manual_seed(0)
    m = TextGAN.create(GANConfig.tiny())
    with torch.no_grad():  # FiLM starts as the identity; random FiLM weights make the seeds' images differ more
        for p in m.generator.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m.eval()


def _batch(m: TextGAN, n: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"pixels": torch.rand(n, 3, 64, 64, generator=g) * 2 - 1,
            "input_ids": m.tokenize([PROMPT] * n), "generator": g}


def _arrays(images) -> list[np.ndarray]:
    return [np.asarray(im, dtype=np.int16) for im in images]


def _grads(module: torch.nn.Module) -> float:
    """Sum of |grad| over the module's parameters (0 when none got a gradient)."""
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def test_loss_is_a_finite_scalar_with_float_logs():
    m = TextGAN.create(GANConfig.tiny()).train()
    loss, logs = m.loss(_batch(m))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(logs) == {"d_loss", "g_loss", "r1", "d_real", "d_fake"}
    assert all(isinstance(v, float) for v in logs.values())


@pytest.mark.parametrize("term", ["d", "g", "both"])
def test_each_player_gets_gradient_from_its_own_term_only(term):
    m = TextGAN.create(GANConfig.tiny()).train()
    loss_d, loss_g, _ = m.player_losses(_batch(m))
    {"d": loss_d, "g": loss_g, "both": loss_d + loss_g}[term].backward()
    g, d, text = _grads(m.generator), _grads(m.discriminator), _grads(m.text_encoder)
    if term == "g":
        assert g > 0 and d == 0 and text == 0  # D (and the text encoder, D's) are frozen in G's term
    elif term == "d":
        assert g == 0 and d > 0 and text > 0  # the fakes are detached in D's term
    else:
        assert g > 0 and d > 0 and text > 0


def test_a_matching_aware_d_counts_wrong_captions_as_fake():
    from kaiga.families.gan.losses import d_loss

    real, fake, wrong = torch.tensor([0.5]), torch.tensor([-0.5]), torch.tensor([0.0])
    assert d_loss("hinge", real, fake, wrong, mismatch=0.5).item() == pytest.approx(0.5 + 0.5 * 0.5 + 0.5 * 1.0)
    assert d_loss("hinge", real, fake, wrong, mismatch=0.0).item() == d_loss("hinge", real, fake).item()
    m = TextGAN.create(GANConfig(**{**GANConfig.tiny().__dict__, "mismatch": 0.5})).train()
    b = _batch(m)
    b["input_ids"] = m.tokenize(["a red car", "two dogs", "a cat at night", "a bird in the snow"])
    plain = TextGAN.create(GANConfig.tiny()).train()
    plain.load_state_dict(m.state_dict())
    with_wrong, without = m.player_losses(b)[0], plain.player_losses(_batch(m) | {"input_ids": b["input_ids"]})[0]
    assert torch.isfinite(with_wrong) and with_wrong.item() != pytest.approx(without.item())


def test_lazy_r1_runs_every_r1_every_steps():
    m = TextGAN.create(GANConfig.tiny()).train()  # tiny: r1_every = 2
    r1s = [m.loss(_batch(m, seed=i))[1]["r1"] for i in range(4)]
    assert r1s[0] == 0 and r1s[2] == 0 and r1s[1] > 0 and r1s[3] > 0


def test_param_groups_split_g_and_d_with_gan_betas():
    m = TextGAN.create(GANConfig.tiny())
    groups = m.param_groups(LoopConfig(lr=1e-3))
    ids = [id(p) for group in groups for p in group["params"]]
    assert sorted(ids) == sorted(id(p) for p in m.parameters())  # each parameter in exactly one group
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in m.generator.parameters()}
    assert all(g["betas"] == (0.0, 0.99) and g["weight_decay"] == 0.0 for g in groups)


def test_augment_keeps_shape_is_deterministic_and_differentiable():
    x = torch.rand(3, 3, 64, 64, requires_grad=True)
    c = AugmentConfig()
    a = diff_augment(x, c, torch.Generator().manual_seed(1))
    b = diff_augment(x, c, torch.Generator().manual_seed(1))
    other = diff_augment(x, c, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, other)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(diff_augment(x, AugmentConfig(color=False, translation=0, cutout=0), None), x)


def test_same_seed_same_image_whatever_the_batch_size(model):
    req = GenerationRequest(prompt=PROMPT)
    seeds = [5, 6, 7, 8, 9]
    together = _arrays(model.sample(req, seeds, batch_size=5))
    alone = _arrays(model.sample(req, seeds, batch_size=2))
    for a, b in zip(together, alone):
        assert np.abs(a - b).max() <= 1  # at most one level of rounding from a different conv batch
    assert np.abs(together[0] - together[1]).max() > 1  # and different seeds differ


def test_truncation_zero_gives_one_image_per_prompt(model):
    images = _arrays(model.sample(GenerationRequest(prompt=PROMPT, truncation=0.0), [1, 2, 3]))
    # z = 0 for every seed; threaded CPU convolutions may still round one pixel differently per batch row
    assert all(np.abs(images[0] - im).max() <= 1 for im in images[1:])


def test_refuses_other_sizes(model):
    with pytest.raises(RequestError, match="width"):
        model.sample(GenerationRequest(prompt=PROMPT, width=128), [0])


def test_explain_is_a_captioned_latent_walk(model):
    frames, captions = model.explain(PROMPT, seed=4)
    assert len(frames) == len(captions) == 8 and frames[0].size == (64, 64)
    [first] = _arrays(model.sample(GenerationRequest(prompt=PROMPT), [4]))
    assert np.abs(_arrays(frames[:1])[0] - first).max() <= 1  # the walk starts at the seed's own image


def test_save_load_round_trip_gives_identical_samples(model, tmp_path):
    req = GenerationRequest(prompt=PROMPT, truncation=0.7)
    before = _arrays(model.sample(req, [0, 1]))
    loaded = TextGAN.load(model.save(tmp_path / "gan"))
    assert loaded.config == model.config and loaded.info["family"] == "gan"
    after = _arrays(loaded.sample(req, [0, 1]))
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_config_refuses_mismatched_sizes():
    with pytest.raises(ValueError, match="g_channels"):
        GANConfig(g_channels=(8, 8, 8))


def test_short_training_writes_a_loadable_model(tmp_path):
    from kaiga.data.dataset import write_scenes
    from kaiga.train.family_task import FamilyTask
    from kaiga.train.loop import train

    data = write_scenes(tmp_path / "data", n=8)
    torch.manual_seed(0)
    task = FamilyTask(TextGAN.create(GANConfig.tiny()), data, batch_size=4)
    cfg = LoopConfig(steps=5, batch_size=4, warmup_steps=0, checkpoint_every=5, sample_every=5, progress=False)
    state = train(task, cfg, tmp_path / "run")
    assert state["step"] == 5 and np.isfinite(state["loss"])
    loaded = TextGAN.load(tmp_path / "run")
    [im] = loaded.sample(GenerationRequest(prompt=PROMPT), [0])
    assert im.size == (64, 64)
    assert (tmp_path / "run" / "samples" / "step0000005.png").is_file()
