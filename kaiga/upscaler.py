"""Enlargement for viewing: the learned 4× upscaler (the default) or Lanczos.

The learned upscaler is a small ESPCN-style network (Shi et al. 2016: convolutions at the low resolution,
then a pixel shuffle to the high one) that predicts what a bicubic enlargement misses: its output is
bicubic(x) + the network's residual, so an untrained network is already bicubic and training only adds
detail. It is trained here (`kaiga train upscaler`, `kaiga.train.upscaler`) on the scenes world drawn at
256² against the same scenes drawn at 64² (`kaiga.data.render.render(..., scale=4)`): the emoji sprites
and edges at their real finer size, not a blurred copy. 63,696 parameters: a 64² → 256² enlargement
costs 4.3 ms on two cores, 6.9× Lanczos; 27.39 dB against Lanczos's 26.01 on held-out renders
(`bench/upscaler.py`, docs/CONTROLS.md).

Why hand-written: the maintained super-resolution packages (Real-ESRGAN, SwinIR via spandrel, OpenCV's
dnn_superres) all need weights from a hub, trained on photographs; a network this small is a few lines
of torch, and it is trained on what our models draw.

Factors other than 4 use the network's 4× result resized with Lanczos (down for 2 and 3, up for 5–8), so
every factor gets the learned detail. `method="lanczos"` keeps the old enlargement.

Example:
    >>> from PIL import Image
    >>> [big] = upscale([Image.new("RGB", (16, 16), (200, 30, 30))], 4)
    >>> big.size
    (64, 64)
    >>> upscale([Image.new("RGB", (16, 16))], 2, method="lanczos")[0].size
    (32, 32)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from kaiga.images import to_pil, to_tensor
from kaiga.request import UpscaleMethod

UPSCALER_DIR = Path(__file__).parent / "bundled" / "upscaler"
CONFIG_FILE, WEIGHTS_FILE = "upscaler.json", "upscaler.safetensors"
METHODS = tuple(m.value for m in UpscaleMethod)
DEFAULT_METHOD = UpscaleMethod.LEARNED.value
BATCH = 16  # images per forward pass
MAX_SIDE = 4096  # `kaiga upscale` and the A1111 extras endpoint make nothing larger a side


@dataclass(frozen=True)
class UpscalerConfig:
    width: int = 48  # channels of every hidden convolution
    depth: int = 4  # convolutions in all (the last makes factor² × 3 channels for the shuffle)
    factor: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


class UpscalerNet(nn.Module):
    """[N, 3, H, W] in [-1, 1] -> [N, 3, 4H, 4W]: bicubic plus a learned residual."""

    def __init__(self, cfg: UpscalerConfig = UpscalerConfig()):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c = 3
        for _ in range(cfg.depth - 1):
            layers += [nn.Conv2d(c, cfg.width, 3, 1, 1), nn.LeakyReLU(0.1)]
            c = cfg.width
        layers += [nn.Conv2d(c, 3 * cfg.factor**2, 3, 1, 1)]
        self.body = nn.Sequential(*layers)
        self.shuffle = nn.PixelShuffle(cfg.factor)
        nn.init.zeros_(layers[-1].weight)  # start as exactly bicubic
        nn.init.zeros_(layers[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.cfg.factor, mode="bicubic", align_corners=False)
        return base + self.shuffle(self.body(x))


def upscaler_folder() -> Path:
    """The upscaler in use: `$KAIGA_UPSCALER` (a folder `kaiga train upscaler` wrote) or the bundled one."""
    return Path(os.environ.get("KAIGA_UPSCALER") or UPSCALER_DIR)


def load_upscaler(folder: Path | None = None) -> UpscalerNet:
    """The upscaler of `folder` (default: `upscaler_folder()`), in eval mode; loaded once per folder."""
    return _load(Path(folder or upscaler_folder()).resolve())


@lru_cache(maxsize=2)
def _load(folder: Path) -> UpscalerNet:
    cfg = UpscalerConfig(**json.loads((folder / CONFIG_FILE).read_text()))
    net = UpscalerNet(cfg)
    net.load_state_dict({k: v.float() for k, v in load_file(folder / WEIGHTS_FILE).items()})
    return net.eval()


def check_method(method: str | UpscaleMethod) -> UpscaleMethod:
    """`method` as an UpscaleMethod, or a ValueError naming the ones allowed."""
    try:
        return UpscaleMethod(method)
    except ValueError:
        raise ValueError(f"upscale_method must be one of {', '.join(METHODS)} (got {method!r})") from None


def upscale(images: list[Image.Image], factor: int, method: str = DEFAULT_METHOD,
            network: UpscalerNet | None = None) -> list[Image.Image]:
    """Each image enlarged `factor`× by `method` ("learned" or "lanczos"); factor 1 returns them unchanged."""
    method = check_method(method)
    if factor <= 1:
        return images
    if method is UpscaleMethod.LANCZOS:
        return [im.resize((im.width * factor, im.height * factor), Image.LANCZOS) for im in images]
    net = network or load_upscaler()
    out: list[Image.Image | None] = [None] * len(images)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        by_size.setdefault(im.size, []).append(i)
    with torch.inference_mode():
        for (w, h), idx in by_size.items():
            for start in range(0, len(idx), BATCH):
                chunk = idx[start : start + BATCH]
                x = torch.cat([to_tensor(images[i].convert("RGB")) for i in chunk])
                for i, big in zip(chunk, to_pil(net(x))):
                    size = (w * factor, h * factor)
                    out[i] = big if big.size == size else big.resize(size, Image.LANCZOS)
    return out


def upscaled_record(record, factor: int, method: str, size: tuple[int, int]):
    """The GenerationRecord of an image of `size` (native or already enlarged) enlarged `factor`× by `method`:
    `upscale` over the native size, `extra.upscaler` the methods in the order they ran."""
    name = check_method(method).label
    before = size[0] // max(record.width, 1)  # the enlargement the image already had
    chain = record.extra.get("upscaler", "Lanczos") if before > 1 else None  # Lanczos: before the learned one
    extra = {**record.extra, "upscaler": f"{chain}, then {name}" if chain else name}
    return record.model_copy(update={"upscale": max(before, 1) * factor, "extra": extra})
