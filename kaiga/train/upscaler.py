"""Training of the learned 4× upscaler (`kaiga train upscaler`): 64² renders in, the same scenes at 256² out.

Each pair is one scene drawn twice by `kaiga.data.render.render` from the same generator state, at scale 1
and at scale 4, so the target holds the detail a 64² picture cannot (the sprites at their finer size, thin
edges) and the input is exactly what the models learned to draw, not a blurred downscale. Steps train on
random aligned crops (32² in, 128² out; whole pictures cost 16× more and teach the same filters) with an
L1 loss, on the common training loop (`kaiga.train.loop`): checkpoints, `--resume`, EMA, a time limit.
A third of the inputs are the 256² drawing shrunk to 64² (anti-aliased) and half are softened by a blur
(σ 0.3-0.8 px; stronger blurs taught it to sharpen soft images into a mesh), as the models' outputs are smoother than the 64² drawings.

Example (a few steps on a tiny pool):
    >>> import tempfile
    >>> from kaiga.train.loop import LoopConfig, train
    >>> task = UpscalerTask(UpscalerConfig(width=4, depth=2), pool=2, batch_size=2)
    >>> out = tempfile.mkdtemp()
    >>> train(task, LoopConfig(steps=2, batch_size=2, warmup_steps=0, progress=False, sample_every=0), out)["step"]
    2
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from kaiga.data.render import render
from kaiga.data.world import sample_scene
from kaiga.images import contact_sheet, gaussian_blur, to_pil
from kaiga.train.loop import TrainTask
from kaiga.upscaler import CONFIG_FILE, WEIGHTS_FILE, UpscalerConfig, UpscalerNet

CROP = 32  # low-resolution crop side in training
TRAIN_SEED, HELD_OUT_SEED = 41, 42  # the streams of training pairs and of the held-out pairs bench/upscaler.py reads


def render_pair(index: int, seed: int, split: str = "any") -> tuple[Image.Image, Image.Image]:
    """Scene `index` of stream `seed` drawn at 64² and at 256² (same scene, same random draws)."""
    rng = np.random.default_rng([seed, index])
    scene = sample_scene(rng, split=split)
    twin = copy.deepcopy(rng)
    return render(scene, rng), render(scene, twin, scale=4)


def render_pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n pairs as uint8 tensors: (n, 3, 64, 64) and (n, 3, 256, 256), rendered once (~15 ms a pair)."""
    lows, highs = zip(*(render_pair(i, seed) for i in range(n)))
    stack = lambda ims: torch.from_numpy(np.stack([np.asarray(im) for im in ims])).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return stack(lows), stack(highs)


class UpscalerLoss(torch.nn.Module):
    """The network and its training loss: L1 between its 4× result and the 256² render."""

    def __init__(self, cfg: UpscalerConfig):
        super().__init__()
        self.net = UpscalerNet(cfg)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        pred = self.net(batch["low"])
        loss = F.l1_loss(pred, batch["high"])
        base = F.l1_loss(F.interpolate(batch["low"], scale_factor=self.net.cfg.factor, mode="bicubic",
                                       align_corners=False), batch["high"])
        return loss, {"l1_vs_bicubic": round(loss.item() / max(base.item(), 1e-8), 4)}


class UpscalerTask(TrainTask):
    def __init__(self, cfg: UpscalerConfig = UpscalerConfig(), pool: int = 3000, seed: int = TRAIN_SEED,
                 batch_size: int = 32):
        self.cfg, self.batch_size = cfg, batch_size
        self.module = UpscalerLoss(cfg)
        self.low, self.high = render_pairs(pool, seed)
        self.preview = render_pairs(4, HELD_OUT_SEED)

    def batch(self, step: int, rank: int, generator: torch.Generator) -> dict:
        n, f = self.batch_size, self.cfg.factor
        idx = torch.randint(0, len(self.low), (n,), generator=generator)
        ys = torch.randint(0, 64 - CROP + 1, (n,), generator=generator).tolist()
        xs = torch.randint(0, 64 - CROP + 1, (n,), generator=generator).tolist()
        low = torch.stack([self.low[i, :, y : y + CROP, x : x + CROP] for i, y, x in zip(idx.tolist(), ys, xs)])
        high = torch.stack([self.high[i, :, y * f : (y + CROP) * f, x * f : (x + CROP) * f]
                            for i, y, x in zip(idx.tolist(), ys, xs)])
        low, high = low.float() / 127.5 - 1, high.float() / 127.5 - 1
        flip = torch.rand(n, generator=generator) < 0.5
        low[flip], high[flip] = low[flip].flip(3), high[flip].flip(3)
        # A third see the 256² drawing shrunk (anti-aliased, no stair-steps), as the models' smooth outputs are:
        # trained on the 64² drawings alone, the network printed their 4×4 steps onto smooth images as a grid.
        smooth = torch.rand(n, generator=generator) < 1 / 3
        low[smooth] = F.avg_pool2d(high[smooth], f)
        soft = torch.rand(n, generator=generator) < 0.5
        if soft.any():
            low[soft] = gaussian_blur(low[soft], 0.3 + 0.5 * torch.rand(int(soft.sum()), generator=generator))
        return {"low": low, "high": high}

    def sample_grid(self, module: torch.nn.Module, step: int):
        """Rows of held-out pairs: the 64² input (nearest), Lanczos, the network, the 256² render."""
        low, high = self.preview
        x = low.float() / 127.5 - 1
        with torch.no_grad():
            pred = to_pil(module.net(x))
        tiles = []
        for lo, p, hi in zip(to_pil(x), pred, to_pil(high.float() / 127.5 - 1)):
            tiles += [lo.resize((256, 256), Image.NEAREST), lo.resize((256, 256), Image.LANCZOS), p, hi]
        return contact_sheet(tiles, cols=4)

    def export(self, state_dict: dict[str, torch.Tensor], out: Path) -> None:
        write_upscaler(state_dict, self.cfg, out)


def write_upscaler(state_dict: dict[str, torch.Tensor], cfg: UpscalerConfig, out: Path) -> None:
    """The shipped form: the network's weights in fp16 (128 KB; against the fp32 EMA weights it cost 0.00005 dB
    PSNR on 64 held-out pairs; bench/upscaler.py measures the file as shipped) and the config beside them."""
    out = Path(out)
    weights = {k.removeprefix("net."): v.half().contiguous() for k, v in state_dict.items()}
    save_file(weights, out / WEIGHTS_FILE)
    (out / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
