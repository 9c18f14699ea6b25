"""Memorisation: which generated images are near-copies of a training image, at a calibrated threshold.

Every image is embedded twice (kaiga.audit.distances): the judge's normalised features and its pixels
for the tiled distance. A pair's score is the larger of the two distances, each divided by its scale, so
a pair is near only when it is near in both: same kind of picture *and* the same pixels tile by tile
(features alone match two renders of "a red car in the city"; pixels alone can be fooled by a shared
background). The scales and the threshold come from calibration images the model never saw (fresh
renders): each distance's scale is the median of their nearest-training-neighbour distances, and the
threshold the `false_flag_rate` quantile of their nearest-neighbour scores, so about that share of
non-copies is flagged by construction; the result records how.

Example:
    >>> import numpy as np
    >>> from kaiga.data.dataset import scene_example
    >>> renders = [scene_example(i, seed=5)[0] for i in range(40)]
    >>> train, calibration = embed(renders[:20]), embed(renders[20:])
    >>> cal = calibrate(calibration, train, false_flag_rate=0.05)
    >>> copy = embed([renders[3].rotate(0)])  # an exact copy of training image 3
    >>> idx, scores = neighbours(copy, train, cal, k=2)
    >>> int(idx[0, 0]), bool(scores[0, 0] < cal.threshold)
    (3, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch

from kaiga.audit.distances import feature_distance, judge_embedding, pixels, tiled_distance

BLOCK = 64  # generated images per block of distances: 64 x 10k training images x 16 tiles = 40 MB


@dataclass
class Embedded:
    """Images as the audit compares them: judge features [N, 256] (unit length) and uint8 pixels [N, 3, 64, 64]."""

    features: torch.Tensor
    pixels: torch.Tensor

    def __len__(self) -> int:
        return self.features.shape[0]


def embed(images, judge=None, batch: int = 256, progress: Callable[[int], None] | None = None) -> Embedded:
    """Embed PIL images (any size: resized to the judge's 64×64), `batch` at a time; `progress(k)` after each."""
    from kaiga.eval.readout import ReadoutNet

    judge = judge or ReadoutNet.load()
    feats, pix = [], []
    for i in range(0, len(images), batch):
        part = images[i : i + batch]
        feats.append(judge_embedding(part, judge))
        pix.append(pixels(part))
        if progress is not None:
            progress(len(part))
    return Embedded(torch.cat(feats), torch.cat(pix))


@dataclass(frozen=True)
class Calibration:
    """How near is near: each distance's scale and the score below which a pair is flagged."""

    feature_scale: float  # median nearest-neighbour 1 - cosine of the calibration images
    pixel_scale: float  # median nearest-neighbour tiled distance of the calibration images (RMS, [0, 1] units)
    threshold: float  # a score below this is a near-copy
    false_flag_rate: float  # share of calibration images whose nearest score falls below the threshold (target)
    n_calibration: int
    source: str = ""  # what the calibration images were

    def to_dict(self) -> dict:
        return asdict(self)


def pair_distances(a: Embedded, b: Embedded) -> tuple[torch.Tensor, torch.Tensor]:
    """(feature, tiled pixel) distances [Na, Nb] between every a and every b."""
    return feature_distance(a.features, b.features), tiled_distance(a.pixels, b.pixels)


def score(feature: torch.Tensor, pixel: torch.Tensor, cal: Calibration) -> torch.Tensor:
    """The combined score: the larger of the two distances in units of their scales (near in both)."""
    return torch.maximum(feature / cal.feature_scale, pixel / cal.pixel_scale)


def _nearest_raw(a: Embedded, b: Embedded) -> tuple[torch.Tensor, torch.Tensor]:
    """Each a's smallest feature and smallest pixel distance to any b (each on its own): [Na], [Na]."""
    f_min, p_min = [], []
    for i in range(0, len(a), BLOCK):
        f, p = pair_distances(Embedded(a.features[i : i + BLOCK], a.pixels[i : i + BLOCK]), b)
        f_min.append(f.min(1).values)
        p_min.append(p.min(1).values)
    return torch.cat(f_min), torch.cat(p_min)


def calibrate(calibration: Embedded, train: Embedded, false_flag_rate: float = 0.01, source: str = "") -> Calibration:
    """Scales and threshold from images the model never saw, so that `false_flag_rate` of them would be flagged."""
    if not 0 < false_flag_rate < 1:
        raise ValueError(f"false_flag_rate must be in (0, 1), got {false_flag_rate}")
    f_min, p_min = _nearest_raw(calibration, train)
    scales = Calibration(float(f_min.median()) or 1e-6, float(p_min.median()) or 1e-6, 0.0, false_flag_rate,
                         len(calibration), source)
    _, nearest = neighbours(calibration, train, scales, k=1)
    threshold = float(torch.quantile(nearest[:, 0], false_flag_rate))
    return Calibration(scales.feature_scale, scales.pixel_scale, threshold, false_flag_rate, len(calibration), source)


def neighbours(queries: Embedded, train: Embedded, cal: Calibration, k: int = 3,
               progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's k nearest training images by combined score: (indices [Nq, k], scores [Nq, k]), nearest first."""
    k = min(k, len(train))
    idx, scores = [], []
    for i in range(0, len(queries), BLOCK):
        f, p = pair_distances(Embedded(queries.features[i : i + BLOCK], queries.pixels[i : i + BLOCK]), train)
        top = score(f, p, cal).topk(k, dim=1, largest=False)
        idx.append(top.indices)
        scores.append(top.values)
        if progress is not None:
            progress(min(BLOCK, len(queries) - i))
    return torch.cat(idx), torch.cat(scores)


def pair_parts(queries: Embedded, train: Embedded, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(feature, pixel) distances [Nq, k] of each query to the training images `idx` [Nq, k] names."""
    f = (1 - (queries.features[:, None, :] * train.features[idx]).sum(-1)).clamp_min(0)
    p = torch.stack([tiled_distance(queries.pixels[i : i + 1], train.pixels[idx[i]])[0] for i in range(len(queries))])
    return f, p


CALIBRATION_SEED = 987_654_321  # the renders the threshold is calibrated on: a stream no dataset is made from


def calibration_renders(n: int) -> list:
    """`n` fresh scenes renders (any split) from CALIBRATION_SEED: images no model was trained on."""
    from kaiga.data.dataset import scene_example

    return [scene_example(i, CALIBRATION_SEED, split="any")[0] for i in range(n)]


def audit(generated: Embedded, train: Embedded, cal: Calibration, k: int = 3,
          progress: Callable[[int], None] | None = None) -> dict:
    """Each generated image's k nearest training images and the flags: the `memorisation.json` body
    (less what names the model and the files, which the caller adds)."""
    idx, scores = neighbours(generated, train, cal, k=k, progress=progress)
    f, p = pair_parts(generated, train, idx)
    rows = [{"generated": i, "neighbours": [{"train": int(idx[i, j]), "score": round(float(scores[i, j]), 4),
                                             "feature_distance": round(float(f[i, j]), 4),
                                             "pixel_distance": round(float(p[i, j]), 4)} for j in range(idx.shape[1])],
             "flagged": bool(scores[i, 0] < cal.threshold)} for i in range(len(generated))]
    flagged = [r for r in rows if r["flagged"]]
    return {"calibration": cal.to_dict(), "k": idx.shape[1], "n_generated": len(generated), "n_train": len(train),
            "n_flagged": len(flagged), "flagged_share": len(flagged) / max(1, len(generated)),
            "flagged": flagged, "images": rows}


def pairs_grid(pairs: list[tuple], scale: int = 2):
    """(generated, training) PIL pairs as a sheet of rows "generated | nearest training image", enlarged `scale`×."""
    from kaiga.images import contact_sheet

    cells = [im.convert("RGB").resize((64 * scale, 64 * scale)) for pair in pairs for im in pair]
    return contact_sheet(cells, cols=min(8, 2 * max(1, len(pairs))), gap=4)
