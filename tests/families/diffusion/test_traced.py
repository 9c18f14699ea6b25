"""The jit backend (kaiga/families/diffusion/traced.py): the traced UNet predicts what diffusers' does, traces
again when its weights change, and steps aside where a frozen graph would be wrong."""

import torch

from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
from kaiga.families.diffusion.traced import TracedUNet, compute_backend, unet_for


def _model():
    torch.manual_seed(0)
    m = LatentDiffusion.create(tiny_config())
    m.unet.eval()
    return m


def _inputs(m, n=2):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(n, 4, 8, 8, generator=g),
            torch.randn(n, 8, m.unet.config.cross_attention_dim, generator=g))


def test_the_traced_unet_predicts_what_the_eager_one_does_at_every_timestep():
    m = _model()
    x, c = _inputs(m)
    traced = TracedUNet(m.unet)
    for t in (999, 500, 1):  # traced once, at the first; the timestep is an input, not a constant
        with torch.no_grad():
            want = m.unet(x, t, encoder_hidden_states=c).sample
        assert (traced(x, torch.tensor(t), encoder_hidden_states=c).sample - want).abs().max() < 1e-4
    assert len(traced._graphs) == 1


def test_a_change_to_the_weights_traces_again():
    m = _model()
    x, c = _inputs(m)
    traced = TracedUNet(m.unet)
    before = traced(x, torch.tensor(10), encoder_hidden_states=c).sample
    with torch.no_grad():
        next(m.unet.parameters()).add_(0.5)  # an in-place edit, as merging weights or an optimiser step makes
        want = m.unet(x, 10, encoder_hidden_states=c).sample
    after = traced(x, torch.tensor(10), encoder_hidden_states=c).sample
    assert (after - want).abs().max() < 1e-4 and (after - before).abs().max() > 1e-3
    assert len(traced._graphs) == 2


def test_eager_where_a_frozen_graph_would_be_wrong():
    m = _model()
    assert unet_for(m) is m.unet  # eager is the default
    with compute_backend("jit"):
        assert isinstance(unet_for(m), TracedUNet) and unet_for(m) is unet_for(m)  # one per model, reused
        m.unet.train()
        assert unet_for(m) is m.unet  # dropout, and weights about to change
        m.unet.eval()
        m.unet.peft_config = {"lora-x": object()}  # LoRA adapters: weights set per request
        assert unet_for(m) is m.unet
    assert unet_for(m) is m.unet  # the context ends with its block


def test_bf16_autocast_runs_the_unet_eagerly():
    m = _model()
    x, c = _inputs(m, n=1)
    traced = TracedUNet(m.unet)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        traced(x, torch.tensor(10), encoder_hidden_states=c)
    assert traced._graphs == {}
