"""Render speed of the scenes world: images/s of `render` alone and of a full dataset write.

Usage:
    python bench/render.py [--n 2000] [--json bench/results/render.json]

Both figures are single-process (the renderer is numpy + PIL, one core). "write" includes captions,
PNG encoding and metadata, i.e. what `kaiga data scenes` does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from kaiga.data.dataset import write_scenes
from kaiga.data.render import render
from kaiga.data.world import sample_scene


def render_rate(n: int) -> float:
    render(sample_scene(np.random.default_rng(0)), np.random.default_rng(0))  # warm the sprite caches
    t0 = time.perf_counter()
    for i in range(n):
        rng = np.random.default_rng(i)
        render(sample_scene(rng), rng)
    return n / (time.perf_counter() - t0)


def write_rate(n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        write_scenes(Path(d), n, seed=0)
        return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "render.json")
    args = ap.parse_args()
    result = {
        "render_images_per_s": round(render_rate(args.n), 1),
        "write_images_per_s": round(write_rate(args.n), 1),
        "n": args.n,
        "size": "64x64",
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
