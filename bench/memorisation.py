"""The memorisation audit, measured: a GAN fine-tuned on scenes with planted duplicates, then audited.

Usage:
    OMP_NUM_THREADS=1 python bench/memorisation.py [--work /tmp/kaiga-mem] [--run RUN] [--minutes 10]
        [--json bench/results/memorisation.json]

1. Data (`<work>/data`): 3,000 scenes renders (seed 1) plus PLANTED duplicates: 20 renders of another
   stream (seed 777) each copied 50 times with their captions (1,000 files, a quarter of the set).
2. Training (`<work>/run`, skipped when it holds a model or `--run` names one): `kaiga train gan
   --init scenes-gan` on that folder for `--minutes`, one process. The run folder stays out of git.
3. Measuring, with the audit's own functions (kaiga.audit.memorisation), threshold calibrated on held-out
   renders (seed 2, never trained on) at a 1 % false-flag rate:
   - detector: the 20 planted images, perturbed (JPEG q70, a 2-pixel shift, Gaussian noise σ 4/255),
     among held-out renders and generated images for other prompts (non-copies);
   - model: images generated from the planted captions; an output is a *planted copy* when it reproduces
     its planted source, decided without the audit's features: its tiled pixel distance to that source is
     below the 1st percentile of the distances between the source and the held-out renders of the same
     attributes (see `true_copy`). False flags: images generated for held-out captions (other prompts).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kaiga.data.dataset import METADATA, scene_example, write_scenes

BASE_N, BASE_SEED = 3000, 1
PLANTED_N, PLANTED_COPIES, PLANTED_SEED = 20, 50, 777


def build_data(folder: Path) -> list[dict]:
    """The training folder with planted duplicates; returns the planted items (file, captions, attributes)."""
    if not (folder / METADATA).is_file():
        write_scenes(folder, BASE_N, seed=BASE_SEED)
        planted, lines = [], []
        for p in range(PLANTED_N):
            image, captions, attrs = scene_example(p, PLANTED_SEED)
            for c in range(PLANTED_COPIES):
                name = f"planted-{p:02d}-{c:02d}.png"
                image.save(folder / name)
                lines.append(json.dumps({"file_name": name, "text": captions, "attributes": attrs}) + "\n")
            planted.append({"file_name": f"planted-{p:02d}-00.png", "captions": captions, "attributes": attrs})
        with open(folder / METADATA, "a", encoding="utf-8") as meta:
            meta.writelines(lines)
        (folder / "planted.json").write_text(json.dumps(planted, indent=1))
    return json.loads((folder / "planted.json").read_text())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/kaiga-mem"))
    args = ap.parse_args()
    build_data(args.work / "data")
