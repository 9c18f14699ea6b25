"""The opt-out list's match threshold (kaiga/data/optout.py MAX_DISTANCE), measured on scenes renders.

Measured 2026-12-01 (n 2000, 300 copies): see docs/trust/lineage.md.

Usage:
    OMP_NUM_THREADS=1 python bench/phash_optout.py [--n 2000] [--copies 300] [--json bench/results/phash_optout.json]

Two distributions of the Hamming distance between 256-bit pHashes:
- copies: a render against the same render re-encoded or resized (JPEG at quality 90/75/50, WebP 80,
  0.5× and 4× resizes as kaiga's `--upscale 4` makes, a 5 % crop, Gaussian noise σ 0.02): the distances a
  threshold must accept;
- strangers: every pair of `n` different renders (seed 0, the training mix), which must stay above it,
  since an opt-out must never take out somebody else's image. Pixel-identical renders (the world can draw the
  same scene twice) are counted apart: they are the same picture, not a false match.
"""

from __future__ import annotations

import argparse
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from kaiga.data.dataset import scene_example
from kaiga.data.optout import HASH_BITS, MAX_DISTANCE, as_bytes, distance, image_hash


def _reencoded(im: Image.Image, fmt: str, **kw) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _noise(im: Image.Image, sigma: float, seed: int) -> Image.Image:
    x = np.asarray(im, np.float32) / 255 + np.random.default_rng(seed).normal(0, sigma, (*im.size[::-1], 3))
    return Image.fromarray((x.clip(0, 1) * 255).round().astype(np.uint8))


def _crop(im: Image.Image, share: float) -> Image.Image:
    w, h = im.size
    dx, dy = round(w * share / 2), round(h * share / 2)
    return im.crop((dx, dy, w - dx, h - dy)).resize((w, h), Image.BICUBIC)


ATTACKS = {
    "png (lossless)": lambda im, i: _reencoded(im, "PNG"),
    "jpeg q90": lambda im, i: _reencoded(im, "JPEG", quality=90),
    "jpeg q75": lambda im, i: _reencoded(im, "JPEG", quality=75),
    "jpeg q50": lambda im, i: _reencoded(im, "JPEG", quality=50),
    "webp q80": lambda im, i: _reencoded(im, "WEBP", quality=80),
    "resize 0.5x": lambda im, i: im.resize((im.width // 2, im.height // 2), Image.BICUBIC),
    "upscale 4x (lanczos)": lambda im, i: im.resize((im.width * 4, im.height * 4), Image.LANCZOS),
    "upscale 4x + jpeg q75": lambda im, i: _reencoded(im.resize((im.width * 4, im.height * 4), Image.LANCZOS),
                                                      "JPEG", quality=75),
    "crop 5% + resize back": lambda im, i: _crop(im, 0.05),
    "noise sigma 0.02": lambda im, i: _noise(im, 0.02, i),
}


def measure(n: int, copies: int) -> dict:
    images = [scene_example(i, seed=0, n_captions=1)[0] for i in range(n)]
    hashes = [image_hash(im) for im in images]
    rows = {}
    for name, attack in ATTACKS.items():
        d = np.array([distance(hashes[i], image_hash(attack(images[i], i))) for i in range(copies)])
        rows[name] = {"max": int(d.max()), "p99": float(np.percentile(d, 99)), "mean": round(float(d.mean()), 2),
                      f"matched_at_{MAX_DISTANCE}": round(float((d <= MAX_DISTANCE).mean()), 4)}
    pixels = [np.asarray(im).tobytes() for im in images]
    h = as_bytes(hashes)
    strangers, identical = [], 0
    for i in range(n - 1):  # every pair once, row by row (n² / 2 xors, vectorised per row)
        d = np.unpackbits(np.bitwise_xor(h[i], h[i + 1:]), axis=1).sum(1)
        same = np.array([pixels[i] == pixels[j] for j in range(i + 1, n)]) if (d == 0).any() else np.zeros(len(d), bool)
        identical += int(same.sum())
        strangers.append(d[~same])
    s = np.concatenate(strangers)
    hist = {int(k): int((s == k).sum()) for k in range(0, 61)}
    return {
        "what": f"Hamming distance between {HASH_BITS}-bit pHashes (imagehash.phash) of scenes renders",
        "threshold": MAX_DISTANCE,
        "renders": n, "copies_per_attack": copies,
        "copies": rows,
        "strangers": {"pairs": int(len(s)), "min": int(s.min()), "p0.1": float(np.percentile(s, 0.1)),
                      "mean": round(float(s.mean()), 2), f"false_matches_at_{MAX_DISTANCE}": int((s <= MAX_DISTANCE).sum()),
                      "pixel_identical_pairs_left_out": identical, "histogram_0_to_60": hist},
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--copies", type=int, default=300)
    p.add_argument("--json", type=Path, default=Path("bench/results/phash_optout.json"))
    a = p.parse_args()
    result = measure(a.n, a.copies)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
