"""A campaign made locally and on a local Ray cluster: images/s against the number of Ray workers, and whether
every cell has the same pixels however it was made.

Each run is `kaiga campaign run PLAN` in its own process, into its own fresh home (database and gallery), so no
run finds another's cells made:
- `local-1`: the local runner, torch on 1 thread (the baseline; every ratio is against it, in the same run);
- `local-2`: the local runner, torch on 2 threads (what one process gets from the same cores);
- `ray-N`: `--ray local --workers N --threads 1` (a local cluster of this machine's CPUs; N model-holding actors).

Two rates a run: `images_per_s` over the whole command (start-up, the cluster and each worker loading torch and
the model included) and `steady_images_per_s` between the first and the last image stored (the gallery's times),
which is what more workers buy once they run. `same_pixels`: each run's images, cell by cell (the cell key in the
record), against the baseline's, by the SHA-256 of their pixels (the PNG bytes differ in times and signatures).

Usage:
    OMP_NUM_THREADS=1 python bench/campaign_ray.py [--plan docs/campaigns/ad.yaml] [--workers 1,2]
                                                   [--json bench/results/campaign_ray.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "results" / "campaign_ray.json"


def run(plan: Path, home: Path, *args: str) -> dict:
    """One `kaiga campaign run` into `home`; its wall time, images, steady rate and pixels by cell key."""
    env = {**os.environ, "KAIGA_HOME": str(home), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kaiga.cli", "campaign", "run", str(plan), "--out",
                           str(home / "sheets"), *args], capture_output=True, text=True, env=env, cwd=home)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"campaign run {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    from kaiga.store.db import open_database
    from kaiga.store.tables import Image

    db = open_database(f"sqlite:///{home / 'kaiga.db'}")
    with db.session() as s:
        rows = [(i.record["extra"]["campaign"]["key"], i.path, i.created) for i in s.query(Image)]
    db.engine.dispose()
    times = sorted(created for _, _, created in rows)
    steady = (len(rows) - 1) / max(1e-9, (times[-1] - times[0]).total_seconds())
    pixels = {key: hashlib.sha256(np.asarray(PILImage.open(home / "gallery" / path)).tobytes()).hexdigest()
              for key, path, _ in rows}
    return {"args": list(args), "wall_s": round(wall, 2), "images": len(rows),
            "images_per_s": round(len(rows) / wall, 3), "steady_images_per_s": round(steady, 3),
            "said": done.stdout.strip().splitlines()[-1], "pixels": pixels}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", type=Path, default=Path("docs/campaigns/ad.yaml"))
    parser.add_argument("--workers", default="1,2", help="Ray worker counts, comma-separated")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    configs = {"local-1": ("--threads", "1"), "local-2": ("--threads", "2")}
    configs |= {f"ray-{n}": ("--ray", "local", "--workers", str(n), "--threads", "1") for n in counts}
    rows = {}
    with tempfile.TemporaryDirectory(prefix="kaiga-bench-ray-") as tmp:
        for name, flags in configs.items():
            home = Path(tmp) / name
            home.mkdir()
            rows[name] = run(args.plan.resolve(), home, *flags)
            print(f"{name}: {rows[name]['images']} images in {rows[name]['wall_s']} s, steady "
                  f"{rows[name]['steady_images_per_s']} images/s", file=sys.stderr)
    base = rows["local-1"]
    for row in rows.values():
        row["ratio_over_local_1"] = round(row["images_per_s"] / base["images_per_s"], 3)
        row["steady_ratio_over_local_1"] = round(row["steady_images_per_s"] / base["steady_images_per_s"], 3)
        row["same_pixels"] = row["pixels"] == base["pixels"]
    import ray

    result = {"settings": {"plan": str(args.plan), "cells": base["images"],
                           "database": "sqlite (WAL), a fresh one a run", "ray": ray.__version__},
              "environment": {"cpu": platform.machine(), "cores": os.cpu_count(),
                              "load_average_1min": round(os.getloadavg()[0], 2)},
              "runs": {name: {k: v for k, v in row.items() if k != "pixels"} for name, row in rows.items()}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["runs"], indent=1))
    return result


if __name__ == "__main__":
    main()
