"""The invisible watermark on every image kaiga makes: 32 bits naming its record, readable after JPEG,
resizing, crops and noise, at any size from 64×64 up.

The payload is the first 32 bits of a SHA-256 over the record's `pixels_fields` (the record less when and
how fast it was made), so the same request marks the same pixels, and the record says the payload it
carries (`extra.watermark`). The payload and a 4-bit version make the 36 data bits of a BCH(63, 36) codeword
(5 bit errors corrected), scrambled by a fixed key (so a blank or constant reading is not a codeword) and
written by the learned network of `watermark_net` at 64×64: a larger image gets the residual enlarged, so
an upscaled image keeps the mark it was given at native size.

Reading (`detect`) tries the whole image, then, if that finds nothing, the image as a crop of a larger one
(offsets and sizes searched). Its p-value is the chance that an unmarked image would decode as well: a
random 63-bit word lies within e bits of one of the 2^32 codewords of this version with probability
2^32·V(63, e)/2^63 (V: the Hamming ball's volume), times the number of placements tried (Bonferroni).
An image counts as marked at p ≤ 0.001. Given the payload it should carry (from its record), `detect`
also reports the exact binomial p-value of the bits that agree.

Example:
    >>> from PIL import Image
    >>> im = Image.new("RGB", (64, 64), (200, 60, 40))
    >>> marked = embed(im, 0xC0FFEE42)
    >>> found = detect(marked)
    >>> found.marked, hex(found.payload)
    (True, '0xc0ffee42')
    >>> detect(im).marked
    False
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from kaiga.paths import BUNDLED_DIR
from kaiga.provenance.bch import BCH
from kaiga.provenance.watermark_net import SIZE, WatermarkConfig, WatermarkNet

WATERMARK_DIR = BUNDLED_DIR / "watermark"
PAYLOAD_BITS = 32
VERSION = (1, 0, 1, 0)  # the 4 data bits besides the payload: which scheme wrote the mark
THRESHOLD = 1e-3  # p-value at or below which an image counts as marked
CROP_FRACTIONS = (0.05, 0.10, 0.15, 0.20)  # of each side, the crops the search undoes


def _key(n: int) -> np.ndarray:
    digest = hashlib.sha256(b"kaiga watermark v1").digest()
    return np.unpackbits(np.frombuffer(digest, np.uint8))[:n]


@lru_cache(maxsize=1)
def _code() -> BCH:
    return BCH(m=6, t=5)


@lru_cache(maxsize=2)
def load_network(folder: Path = WATERMARK_DIR) -> WatermarkNet:
    """The bundled watermark network (or one `kaiga train watermark` wrote), in eval mode."""
    folder = Path(folder)
    cfg = WatermarkConfig(**json.loads((folder / "watermark.json").read_text()))
    net = WatermarkNet(cfg)
    net.load_state_dict(load_file(folder / "watermark.safetensors"), strict=False)  # no BatchNorm counters
    return net.eval()


def payload_of(record) -> int:
    """The 32 bits that name `record` (a GenerationRecord): a SHA-256 of its pixels_fields."""
    text = json.dumps(record.pixels_fields(), sort_keys=True).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "big")


def codeword(payload: int) -> np.ndarray:
    """The 63 bits the network writes for `payload`: BCH-coded version + payload, scrambled."""
    if not 0 <= payload < 2**PAYLOAD_BITS:
        raise ValueError(f"payload: an integer in [0, 2^{PAYLOAD_BITS}), not {payload}")
    data = list(VERSION) + [payload >> (PAYLOAD_BITS - 1 - i) & 1 for i in range(PAYLOAD_BITS)]
    return np.array(_code().encode(data), np.uint8) ^ _key(_code().n)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), np.float32)).permute(2, 0, 1)[None] / 127.5 - 1


def _to_image(x: torch.Tensor) -> Image.Image:
    pixels = ((x[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    return Image.fromarray(pixels)


@torch.no_grad()
def embed(image: Image.Image, payload: int, network: WatermarkNet | None = None) -> Image.Image:
    """`image` with `payload` hidden in it (RGB, the same size; PSNR ≈ 38.4 dB)."""
    net = network or load_network()
    bits = torch.from_numpy(codeword(payload)).float()[None]
    x = _to_tensor(image)
    small = x if x.shape[-2:] == (SIZE, SIZE) else F.interpolate(x, size=(SIZE, SIZE), mode="bilinear",
                                                                  antialias=True, align_corners=False)
    residual = net.residual(small, bits)
    if residual.shape[-2:] != x.shape[-2:]:
        residual = F.interpolate(residual, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return _to_image((x + residual).clamp(-1, 1))


@dataclass(frozen=True)
class Detection:
    """What `detect` found. `p_value`: the chance of a reading this good from an unmarked image."""

    marked: bool
    payload: int | None  # the 32 bits, when a codeword was found
    p_value: float
    bit_errors: int | None  # bits the code corrected (of 63)
    placement: str  # "whole image" or the crop that was undone
    expected: int | None = None  # the payload the record says, when given
    expected_agreement: int | None = None  # of 63 bits, against the expected payload's codeword
    expected_p_value: float | None = None  # binomial: that many agreements or more by chance

    @property
    def payload_hex(self) -> str | None:
        return None if self.payload is None else f"{self.payload:08x}"

    def to_dict(self) -> dict:
        return {**asdict(self), "payload": self.payload_hex,
                "expected": None if self.expected is None else f"{self.expected:08x}"}


def _ball(n: int, radius: int) -> int:
    return sum(math.comb(n, i) for i in range(radius + 1))


def p_value(errors: int, tries: int = 1) -> float:
    """The chance that a random 63-bit reading decodes to a codeword of this version with ≤ `errors`
    corrections, in any of `tries` placements."""
    n = _code().n
    return min(1.0, tries * 2.0 ** (PAYLOAD_BITS - n) * _ball(n, errors))


def _binomial_tail(n: int, k: int) -> float:
    """P(X ≥ k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2.0**n


def _decode(bits: np.ndarray) -> tuple[int | None, int | None]:
    data, errors = _code().decode(list(np.asarray(bits, np.uint8) ^ _key(_code().n)))
    if data is None or tuple(data[: len(VERSION)]) != VERSION:
        return None, None
    return int("".join(map(str, data[len(VERSION):])), 2), errors


def _placements(x: torch.Tensor, step: int = 2, around: list[tuple[int, int, int]] | None = None
                ) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
    """The image put back as a crop of a larger one, at 64×64, the lost border filled from the image's edge (as
    training's crops are): for each fraction of CROP_FRACTIONS, the offsets `step` pixels apart, or (`around`) the
    offsets next to the given (fraction index, left, top) placements."""
    pieces = {}
    wanted: list[tuple[int, int, int]] = []
    for k, fraction in enumerate(CROP_FRACTIONS):
        side = round(SIZE * (1 - fraction))
        last = SIZE - side
        if around is None:
            offsets = sorted({*range(0, last + 1, step), last})
            wanted += [(k, left, top) for top in offsets for left in offsets]
        else:
            wanted += [(k, left + dx, top + dy) for kk, left, top in around if kk == k
                       for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                       if (dx or dy) and 0 <= left + dx <= last and 0 <= top + dy <= last]
    canvases = []
    for k, left, top in wanted:
        side = round(SIZE * (1 - CROP_FRACTIONS[k]))
        if k not in pieces:
            pieces[k] = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        canvases.append(F.pad(pieces[k], (left, SIZE - side - left, top, SIZE - side - top), mode="replicate"))
    return (torch.cat(canvases) if canvases else x[:0]), wanted


def _placement_name(placement: tuple[int, int, int]) -> str:
    k, left, top = placement
    return f"a {CROP_FRACTIONS[k]:.0%} crop at ({left}, {top})"


def _search(net: WatermarkNet, x: torch.Tensor) -> tuple[int, tuple | None]:
    """(placements read, (payload, errors, name, logits) of the best decodable one or None): every offset two
    pixels apart, then the neighbours of the most confident readings and of any that decoded."""
    canvases, placed = _placements(x)
    readings = torch.cat([net.read(batch) for batch in canvases.split(256)])
    confident = readings.abs().mean(1).argsort(descending=True)[:4].tolist()
    decoded = [(i, *_decode((r > 0).numpy())) for i, r in enumerate(readings)]
    hits = [i for i, payload, _ in decoded if payload is not None]
    finer, placed_finer = _placements(x, around=[placed[i] for i in dict.fromkeys(confident + hits)])
    if len(placed_finer):
        readings = torch.cat([readings, net.read(finer)])
        placed = placed + placed_finer
        decoded += [(len(decoded) + i, *_decode((r > 0).numpy())) for i, r in enumerate(readings[-len(placed_finer):])]
    found = [(errors, i, payload) for i, payload, errors in decoded if payload is not None]
    if not found:
        return len(placed), None
    errors, i, payload = min(found)
    return len(placed), (payload, errors, _placement_name(placed[i]), readings[i])


@torch.no_grad()
def detect(image: Image.Image, expected: int | None = None, network: WatermarkNet | None = None,
           search: bool = True) -> Detection:
    """Look for a watermark in `image`; `expected`: the payload its record names, to check against."""
    net = network or load_network()
    x = _to_tensor(image)
    logits = net.read(x)[0]
    payload, errors = _decode((logits > 0).numpy())
    placement, tries = "whole image", 1
    if payload is None and search:
        read, best = _search(net, x)
        tries += read
        if best is not None:
            payload, errors, placement, logits = best
    p = 1.0 if payload is None else p_value(errors, tries)
    result = dict(marked=payload is not None and p <= THRESHOLD, payload=payload, p_value=p, bit_errors=errors,
                  placement=placement)
    if expected is not None:
        agree = int(((logits > 0).numpy().astype(np.uint8) == codeword(expected)).sum())
        result.update(expected=expected, expected_agreement=agree,
                      expected_p_value=_binomial_tail(len(logits), agree))
    return Detection(**result)
