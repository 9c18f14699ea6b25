"""Training and measuring the readout network on fresh renders (`kaiga train readout`).

Renders a pool of scenes once (every combination, held-out pairs included — see readout.py), then
runs the shared training loop with light degradations (blur, noise, a shift of a pixel or two) so
the judge reads soft, generated-looking images as well as crisp renders. Accuracy is measured on
renders from other seeds, both clean and blurred, per attribute.

Example:
    >>> pool = render_pool(4, seed=0)
    >>> pool.pixels.shape, len(pool.readings)
    ((4, 64, 64, 3), 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kaiga.data.render import render
from kaiga.data.world import Mix, sample_scene
from kaiga.eval.readout import HEADS, Reading, ReadoutConfig, ReadoutNet, read, readout_loss
from kaiga.train.loop import LoopConfig, TrainTask, train


@dataclass
class RenderPool:
    pixels: np.ndarray  # [N, 64, 64, 3] uint8
    readings: list[Reading]

    def labels(self) -> dict[str, torch.Tensor]:
        rows = [r.labels() for r in self.readings]
        return {h: torch.tensor([row[h] for row in rows]) for h in HEADS}


# The judge sees more pairs than the world's 20 %: two small objects are what it reads worst.
JUDGE_MIX = Mix(layouts=(0.3, 0.3, 0.4))


def render_pool(n: int, seed: int, split: str = "any", progress=None, mix: Mix = Mix()) -> RenderPool:
    """`n` scenes rendered from the stream `seed` (each index its own generator, as datasets do)."""
    pixels = np.empty((n, 64, 64, 3), np.uint8)
    readings = []
    for i in range(n):
        rng = np.random.default_rng([seed, i, 7])
        s = sample_scene(rng, split=split, mix=mix)
        pixels[i] = np.asarray(render(s, rng))
        readings.append(Reading.of_scene(s))
        if progress is not None:
            progress(i + 1, n)
    return RenderPool(pixels, readings)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(2 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    return k / k.sum()


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, H, W] (reflect padding); sigma 0 returns x."""
    if sigma <= 0:
        return x
    k = _gaussian_kernel(sigma).to(x)
    c, r = x.shape[1], (len(k) - 1) // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


BLUR_LEVELS = (0.0, 0.0, 0.6, 1.0, 1.5)  # half the batches about sharp, the rest progressively softer


def degrade(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random blur level per quarter-batch, Gaussian noise, and a shift of up to 2 pixels."""
    parts = []
    for chunk in x.chunk(4):
        level = BLUR_LEVELS[int(torch.randint(len(BLUR_LEVELS), (1,), generator=g))]
        parts.append(blur(chunk, level))
    x = torch.cat(parts)
    noise_std = torch.rand(len(x), 1, 1, 1, generator=g) * 0.1
    x = x + noise_std * torch.randn(x.shape, generator=g)
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    return x.clamp(-1, 1)


class _ReadoutModule(torch.nn.Module):
    def __init__(self, net: ReadoutNet):
        super().__init__()
        self.net = net

    def forward(self, batch):
        return readout_loss(self.net, batch["x"], batch["labels"])


class ReadoutTask(TrainTask):
    def __init__(self, pool: RenderPool, cfg: ReadoutConfig = ReadoutConfig(), batch_size: int = 64):
        self.pool, self.batch_size = pool, batch_size
        self.x = torch.from_numpy(pool.pixels)  # uint8; converted per batch to save memory
        self.y = pool.labels()
        self.net = ReadoutNet(cfg)
        self.module = _ReadoutModule(self.net)

    def batch(self, step, rank, generator):
        idx = torch.randint(0, len(self.x), (self.batch_size,), generator=generator)
        x = self.x[idx].permute(0, 3, 1, 2).float() / 127.5 - 1
        return {"x": degrade(x, generator), "labels": {h: v[idx] for h, v in self.y.items()}}

    def export(self, state_dict, out):
        self.module.load_state_dict(state_dict)
        self.net.eval().save(Path(out) / "readout")


ATTRIBUTES = {  # attribute → the heads that must all be right, and which images count
    "layout": (("layout",), None),
    "object": (("object_a", "object_b"), None),
    "colour": (("colour_a", "colour_b"), None),
    "count": (("count",), "count"),
    "relation": (("axis", "object_a", "object_b"), "pair"),
    "scene": (("scene",), None),
    "weather": (("weather",), None),
    "time": (("time",), None),
    "style": (("style",), None),
}


def accuracy(net: ReadoutNet, pool: RenderPool, sigma: float = 0.0) -> dict[str, float]:
    """Per-attribute accuracy of `net` on `pool` (optionally blurred), plus "all" (every head right).

    count is measured on count layouts, relation on pairs (both objects and the axis right).
    """
    pixels = pool.pixels
    if sigma > 0:
        x = blur(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1, sigma)
        pixels = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return score_readings(read(net.eval(), pixels), pool.readings)


def score_readings(got: list[Reading], truth: list[Reading]) -> dict[str, float]:
    """`accuracy` on readings already made, so one pass of the network serves several measures."""
    out = {}
    for attribute, (heads, layout) in ATTRIBUTES.items():
        pairs = [(g, t) for g, t in zip(got, truth) if layout is None or t.layout == layout]
        ok = [all(getattr(g, h) == getattr(t, h) for h in heads) for g, t in pairs]
        out[attribute] = round(float(np.mean(ok)), 4) if ok else math.nan
    out["all"] = round(float(np.mean([g == t for g, t in zip(got, truth)])), 4)
    return out


def breakdown(got: list[Reading], truth: list[Reading], field: str) -> dict[str, float]:
    """Share of images with every head right, per value of `field` (e.g. style, layout): where the judge is weak."""
    groups: dict[str, list[bool]] = {}
    for g, t in zip(got, truth):
        groups.setdefault(str(getattr(t, field)), []).append(g == t)
    return {k: round(float(np.mean(v)), 4) for k, v in sorted(groups.items())}


def train_readout(out: Path, loop: LoopConfig, n_train: int = 30000, seed: int = 100, n_test: int = 3000,
                  resume: bool = False, progress=None) -> dict:
    """Render, train, measure; writes `out/readout/` with the accuracies in its readout.json."""
    pool = render_pool(n_train, seed=seed, progress=progress, mix=JUDGE_MIX)
    task = ReadoutTask(pool, batch_size=loop.batch_size)
    state = train(task, loop, out, resume=resume)
    net = ReadoutNet.load(Path(out) / "readout")
    fresh = render_pool(n_test, seed=seed + 1)  # the world's own mix, unseen seeds
    got = read(net.eval(), fresh.pixels)
    measured = {
        "renders_any": score_readings(got, fresh.readings),
        "renders_heldout": accuracy(net, render_pool(n_test, seed=seed + 2, split="heldout")),
        "renders_blurred_1.0": accuracy(net, fresh, sigma=1.0),
        "all_right_by_style": breakdown(got, fresh.readings, "style"),
        "all_right_by_layout": breakdown(got, fresh.readings, "layout"),
        "n_test": n_test,
        "n_train": n_train,
        "steps": state["step"],
        "seconds": round(state["seconds"], 1),
    }
    cfg = ReadoutConfig(**{**net.cfg.__dict__, "accuracy": measured})
    net.cfg = cfg
    net.save(Path(out) / "readout")
    return measured
