"""Training of the invisible watermark (`kaiga train watermark`): encoder and decoder together, through attacks.

Each step marks a batch of images with random bits, attacks the marked batch (one attack drawn from
`kaiga.provenance.attacks.random_attack`: JPEG through the real codec, resize, crop, noise, blur), and
trains both networks on how well the decoder reads the bits back (binary cross-entropy). The residual's
strength is fixed by the encoder, so there is no image loss to balance. The images are scenes renders,
half of them blurred as the models' outputs are soft, and some flat colours, the hardest case (nothing to
hide the residual in, and white or saturated pixels clip half of it).

It runs on the common training loop (`kaiga.train.loop`): checkpoints, `--resume`, EMA, a time limit.

Example (a few steps of a tiny pair):
    >>> import tempfile
    >>> from kaiga.train.loop import LoopConfig, train
    >>> task = WatermarkTask(WatermarkConfig(width=4), pool=8, batch_size=4)
    >>> out = tempfile.mkdtemp()
    >>> train(task, LoopConfig(steps=2, batch_size=4, warmup_steps=0, progress=False, sample_every=0), out)["step"]
    2
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from kaiga.images import gaussian_blur
from kaiga.provenance.attacks import random_attack
from kaiga.provenance.watermark_net import WatermarkConfig, WatermarkNet
from kaiga.train.loop import TrainTask

CONFIG_FILE = "watermark.json"
WEIGHTS_FILE = "watermark.safetensors"


class WatermarkPair(torch.nn.Module):
    """The network and its training loss: mark, attack, read back."""

    def __init__(self, cfg: WatermarkConfig):
        super().__init__()
        self.net = WatermarkNet(cfg)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        x, bits = batch["images"], batch["bits"]
        marked = self.net.embed(x, bits)
        attacked = random_attack(marked, random.Random(batch["seed"]), batch.get("p_attack", 1.0))
        logits = self.net.read(attacked)
        loss = F.binary_cross_entropy_with_logits(logits, bits)
        accuracy = ((logits > 0).float() == bits).float().mean().item()
        return loss, {"bit_accuracy": round(accuracy, 4)}


def render_pool(n: int, seed: int = 20) -> torch.Tensor:
    """n scenes renders as uint8 (n, 3, 64, 64), rendered once (~5 ms each)."""
    from kaiga.data.dataset import scene_example

    images = [np.asarray(scene_example(i, seed)[0]) for i in range(n)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


class WatermarkTask(TrainTask):
    def __init__(self, cfg: WatermarkConfig = WatermarkConfig(), pool: int = 4000, seed: int = 20, batch_size: int = 32,
                 ramp_steps: int = 500):
        self.cfg, self.batch_size, self.ramp_steps = cfg, batch_size, ramp_steps
        self.module = WatermarkPair(cfg)
        self.pool = render_pool(pool, seed)

    def batch(self, step: int, rank: int, generator: torch.Generator) -> dict:
        size = self.batch_size
        idx = torch.randint(0, len(self.pool), (size,), generator=generator)
        x = self.pool[idx].float() / 127.5 - 1
        x = torch.where(torch.rand(size, 1, 1, 1, generator=generator) < 0.5, x.flip(3), x)
        soft = torch.rand(size, generator=generator) < 0.5  # the models' outputs are softer than renders
        if soft.any():
            n = int(soft.sum())
            x[soft] = gaussian_blur(x[soft], 0.5 + 1.5 * torch.rand(n, generator=generator))
        flat = torch.rand(size, generator=generator) < 0.08
        if flat.any():
            colours = torch.rand(int(flat.sum()), 3, 1, 1, generator=generator).round() * 2 - 1  # white, black, pure
            x[flat] = colours.expand(-1, -1, 64, 64)
        bits = torch.randint(0, 2, (size, self.cfg.bits), generator=generator).float()
        p_attack = min(0.9, 0.3 + 0.6 * step / self.ramp_steps)  # easy first steps, then mostly attacked
        return {"images": x, "bits": bits, "seed": int(torch.randint(0, 2**31, (1,), generator=generator)),
                "p_attack": p_attack}

    def export(self, state_dict: dict[str, torch.Tensor], out: Path) -> None:
        write_watermark(state_dict, self.cfg, out)


def write_watermark(state_dict: dict[str, torch.Tensor], cfg: WatermarkConfig, out: Path) -> None:
    """The shipped form: the network's weights (BatchNorm's counters dropped) and the config beside them.
    float32: the file is small (~0.8 MB) and fp16 carriers would move the decoder's correlations."""
    out = Path(out)
    weights = {k.removeprefix("net."): v.float().contiguous() for k, v in state_dict.items() if v.is_floating_point()}
    save_file(weights, out / WEIGHTS_FILE)
    (out / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
