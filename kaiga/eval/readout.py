"""The readout network: a small multi-head CNN that reads every scenes attribute back from an image.

It is the judge of the evaluation suite (alignment scores what it reads; fidelity uses its
penultimate features instead of Inception's, which cannot be downloaded here), so it is trained on
fresh renders of every combination — held-out pairs included, since those are held out from the
*generators*, not from the judge — and its own accuracy is reported beside every score.

Hand-written because no library knows our world. Objects are read by *slot*, not by list position:
slot a is the object on the left (or on top), slot b the one on the right (or below), so "a dog left
of a car" and "a car right of a dog" have the same ground truth, as they draw the same picture.

Example:
    >>> from kaiga.data.world import Layout, Scene, SceneObject
    >>> s = Scene((SceneObject("dog", "blue"), SceneObject("car", "red")), Layout.PAIR,
    ...           "city", "rain", "night", "neon", relation="right of")
    >>> r = Reading.of_scene(s)
    >>> (r.object_a, r.object_b, r.axis, r.relation_of("car", "dog"))
    ('car', 'dog', 'horizontal', 'left of')
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from kaiga.data.world import COLOURS, OBJECTS, SCENES, STYLES, TIMES, WEATHERS, Layout, Scene

NONE = "none"
LAYOUTS = tuple(layout.value for layout in Layout)
AXES = (NONE, "horizontal", "vertical")

# Every head and its classes, in the order of the logits.
HEADS: dict[str, tuple] = {
    "layout": LAYOUTS,
    "count": (1, 2, 3),
    "axis": AXES,
    "object_a": OBJECTS,
    "colour_a": COLOURS,
    "object_b": (NONE,) + OBJECTS,
    "colour_b": (NONE,) + COLOURS,
    "scene": SCENES,
    "weather": WEATHERS,
    "time": TIMES,
    "style": STYLES,
}

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "readout.json"


@dataclass(frozen=True)
class Reading:
    """What an image shows, in slot form (see the module docstring); also the training labels."""

    layout: str
    count: int
    axis: str
    object_a: str
    colour_a: str
    object_b: str
    colour_b: str
    scene: str
    weather: str
    time: str
    style: str

    @classmethod
    def of_scene(cls, s: Scene) -> "Reading":
        """The ground truth of a rendered scene."""
        a, b = s.objects[0], None
        axis = NONE
        if s.layout is Layout.PAIR:
            first, second = s.objects
            axis = "horizontal" if s.relation in ("left of", "right of") else "vertical"
            # slot a is left / on top: objects[0] when the relation says so, else objects[1]
            a, b = (first, second) if s.relation in ("left of", "above") else (second, first)
        return cls(
            layout=s.layout.value, count=len(s.objects) if s.layout is Layout.COUNT else 1, axis=axis,
            object_a=a.name, colour_a=a.colour,
            object_b=b.name if b else NONE, colour_b=b.colour if b else NONE,
            scene=s.scene, weather=s.weather, time=s.time, style=s.style,
        )

    def labels(self) -> dict[str, int]:
        return {head: classes.index(getattr(self, head)) for head, classes in HEADS.items()}

    @property
    def objects(self) -> dict[str, str]:
        """Object name → colour of every object read (one entry for single and count layouts)."""
        out = {self.object_a: self.colour_a}
        if self.object_b != NONE:
            out[self.object_b] = self.colour_b
        return out

    def relation_of(self, first: str, second: str) -> str | None:
        """Where `first` is relative to `second` ("left of", "above", ...), or None if not both read."""
        if self.axis == NONE or {first, second} != {self.object_a, self.object_b} or first == second:
            return None
        a_first = first == self.object_a
        if self.axis == "horizontal":
            return "left of" if a_first else "right of"
        return "above" if a_first else "below"


@dataclass(frozen=True)
class ReadoutConfig:
    widths: tuple[int, ...] = (16, 32, 64, 128)  # one stage per halving: 64 → 32 → 16 → 8 → 4
    feature_dim: int = 256
    image_size: int = 64
    accuracy: dict = field(default_factory=dict)  # measured after training, per attribute

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class ReadoutNet(nn.Module):
    """Conv stages to a 4×4 map, flattened (so *where* things are survives), a feature layer, heads.

    Takes images as [N, 3, 64, 64] floats in [-1, 1].
    """

    def __init__(self, cfg: ReadoutConfig = ReadoutConfig()):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = 3
        for width in cfg.widths:
            layers += [
                nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            ]
            c_in = width
        self.trunk = nn.Sequential(*layers)
        side = cfg.image_size // 2 ** len(cfg.widths)
        self.to_features = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, cfg.feature_dim), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({name: nn.Linear(cfg.feature_dim, len(classes)) for name, classes in HEADS.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, feature_dim]: the embedding used for FID / KID / precision-recall."""
        return self.to_features(self.trunk(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {name: head(f) for name, head in self.heads.items()}

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(self.cfg.to_json() + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path | None = None) -> "ReadoutNet":
        """The readout at `folder`, or the bundled one; returned in eval mode."""
        folder = Path(folder) if folder is not None else bundled_readout()
        raw = json.loads((folder / CONFIG_FILE).read_text())
        cfg = ReadoutConfig(**{**raw, "widths": tuple(raw["widths"])})
        net = cls(cfg)
        net.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        return net.eval()


def fingerprint(net: ReadoutNet) -> str:
    """First 10 hex digits of SHA-256 over the weights: which judge gave a score."""
    h = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:10]


def bundled_readout() -> Path:
    return Path(__file__).resolve().parent.parent / "bundled" / "scenes-readout"


@lru_cache(maxsize=1)
def bundled_judge() -> ReadoutNet:
    """The bundled readout, loaded once a process (describe and the taste models read with it)."""
    return ReadoutNet.load()


def to_input(images) -> torch.Tensor:
    """PIL images, or a uint8 array [N, H, W, 3], as the network's [N, 3, 64, 64] input in [-1, 1]."""
    if isinstance(images, np.ndarray):
        arr = images
    else:
        rgb = [im.convert("RGB") for im in images]
        arr = np.stack([np.asarray(im if im.size == (64, 64) else im.resize((64, 64), Image.BICUBIC)) for im in rgb])
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1


@torch.no_grad()
def read(net: ReadoutNet, images, batch_size: int = 256) -> list[Reading]:
    """What the network reads in each image (argmax of every head)."""
    x = to_input(images)
    out: list[Reading] = []
    for i in range(0, len(x), batch_size):
        logits = net(x[i : i + batch_size])
        idx = {name: v.argmax(-1).tolist() for name, v in logits.items()}
        for j in range(len(idx["layout"])):
            out.append(Reading(**{name: HEADS[name][idx[name][j]] for name in HEADS}))
    return out


@torch.no_grad()
def features(net: ReadoutNet, images, batch_size: int = 256) -> torch.Tensor:
    """[N, feature_dim] features of PIL images or a uint8 [N, H, W, 3] array."""
    x = to_input(images)
    return torch.cat([net.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def readout_loss(net: ReadoutNet, x: torch.Tensor, labels: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """Sum of the heads' cross-entropies; logs each head's batch accuracy."""
    logits = net(x)
    loss = sum(F.cross_entropy(logits[h], labels[h]) for h in HEADS)
    logs = {f"acc_{h}": (logits[h].argmax(-1) == labels[h]).float().mean().item() for h in ("object_a", "colour_a", "style")}
    return loss, logs
