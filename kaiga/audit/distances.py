"""The two distances of the memorisation audit: the judge's features, and a tiled pixel distance.

- `judge_embedding`: the readout network's penultimate features (kaiga.eval.readout), L2-normalised, so
  the distance between two images is 1 - cosine, in [0, 2]. It says "same kind of picture".
- `tiled_distance`: the image cut into 4×4 tiles; the RMS difference of each tile; tiles flat in *both*
  images left out; then a high percentile of what is left. A copy is near in nearly every tile, so a high
  percentile stays small for it, while one differing sprite is enough to make it large; and two different
  sprites on one white background do not match, since the background tiles they share do not count.

Pixels are compared at 32×32 (2×2 averaged), where a JPEG of a copy changes little, and with the query
shifted by up to SHIFT pixels each way at 64×64 (the smallest distance kept), so a copy moved by a pixel
or two (a crop, a generator's jitter) still matches tile by tile.

Example:
    >>> import numpy as np
    >>> white = np.full((2, 64, 64, 3), 255, np.uint8)
    >>> white[0, 8:24, 8:24] = (200, 0, 0)   # a red square on white
    >>> white[1, 40:56, 40:56] = (0, 0, 200)  # a blue one elsewhere, same white background
    >>> d = tiled_distance(pixels(white[:1]), pixels(white))
    >>> round(float(d[0, 0]), 2), bool(d[0, 1] > 0.3)
    (0.0, True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TILES = 4  # tiles per side: 4×4 tiles of 8×8 pixels at the compared 32×32
COMPARED_SIDE = 32  # pixels compared per side (images are 2×2 averaged from 64)
FLAT_STD = 0.02  # a tile whose pixels vary less than this (std, in [0, 1] units, ~5/255) is flat
PERCENTILE = 0.9  # of the per-tile distances kept: about the second-worst of 16 tiles
SHIFT = 2  # query shifts tried, in pixels of the 64×64 image each way: 25 shifts


def pixels(images) -> torch.Tensor:
    """PIL images or uint8 [N, H, W, 3] as uint8 [N, 3, 64, 64] (a quarter of float's memory)."""
    from kaiga.eval.readout import to_input  # the judge's own resize to 64×64, so both distances see one image

    return ((to_input(images) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _compared(x: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, 64, 64] -> float [N, 3, COMPARED_SIDE, COMPARED_SIDE] in [0, 1]."""
    return F.adaptive_avg_pool2d(x.float() / 255, COMPARED_SIDE)


def tiles(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, 3, S, S] -> (tile vectors [T, N, 3·(S/TILES)²], flat [N, T] bool), T = TILES²."""
    n, c, s, _ = x.shape
    t = s // TILES
    v = x.reshape(n, c, TILES, t, TILES, t).permute(2, 4, 0, 1, 3, 5).reshape(TILES * TILES, n, c * t * t)
    flat = v.std(dim=-1) < FLAT_STD  # [T, N]
    return v.contiguous(), flat.T.contiguous()


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """[N, 3, S, S] (float) moved by (dy, dx) pixels, the edge repeated into the gap."""
    s, p = x.shape[-1], max(abs(dy), abs(dx))
    if p == 0:
        return x
    padded = F.pad(x, (p, p, p, p), mode="replicate")
    return padded[..., p - dy : p - dy + s, p - dx : p - dx + s]


def tiled_distance(a: torch.Tensor, b: torch.Tensor, block: int = 64, shift: int = SHIFT) -> torch.Tensor:
    """[Na, Nb]: the smallest, over shifts of a by up to `shift` pixels, of the PERCENTILE of per-tile RMS
    differences between a and b (both from `pixels`), tiles flat in both left out (all kept when every
    tile is flat in both)."""
    moves = [(dy, dx) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)]
    a, b = a.float(), _compared(b)
    return torch.stack([_tiled_distance(_compared(shifted(a, dy, dx)), b, block) for dy, dx in moves]).amin(0)


def _tiled_distance(a: torch.Tensor, b: torch.Tensor, block: int) -> torch.Tensor:
    va, fa = tiles(a)
    vb, fb = tiles(b)
    dim = va.shape[-1]
    nb = (vb * vb).sum(-1)  # [T, Nb]
    out = torch.empty(a.shape[0], b.shape[0])
    for i in range(0, a.shape[0], block):
        qa = va[:, i : i + block]  # [T, n, D]
        # |x - y|² = |x|² + |y|² - 2 x·y, one matmul per tile
        sq = (qa * qa).sum(-1)[:, :, None] + nb[:, None, :] - 2 * torch.bmm(qa, vb.transpose(1, 2))
        rms = (sq.clamp_min(0) / dim).sqrt().permute(1, 2, 0)  # [n, Nb, T]
        both_flat = fa[i : i + block, None, :] & fb[None, :, :]  # [n, Nb, T]
        both_flat &= ~both_flat.all(-1, keepdim=True)  # nothing but flat tiles: compare them all
        out[i : i + block] = _masked_quantile(rms, both_flat, PERCENTILE)
    return out


def _masked_quantile(x: torch.Tensor, masked: torch.Tensor, q: float) -> torch.Tensor:
    """The q-quantile over the last axis of `x`, entries where `masked` left out (nearest rank)."""
    kept = (~masked).sum(-1)  # [..] ≥ 1
    ordered = x.masked_fill(masked, float("inf")).sort(-1).values
    rank = (q * (kept - 1)).round().long()
    return ordered.gather(-1, rank[..., None])[..., 0]


@torch.no_grad()
def judge_embedding(images, judge=None) -> torch.Tensor:
    """[N, 256] L2-normalised readout features of PIL images or a uint8 [N, H, W, 3] array."""
    from kaiga.eval.readout import ReadoutNet, features

    judge = judge or ReadoutNet.load()
    return F.normalize(features(judge, images), dim=-1)


def feature_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[Na, Nb]: 1 - cosine between L2-normalised embeddings."""
    return (1 - a @ b.T).clamp_min(0)


