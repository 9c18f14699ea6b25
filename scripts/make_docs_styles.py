"""The pictures of docs/STYLES.md: one prompt in each scenes style, and a mix swept from one style to another.

Usage:
    OMP_NUM_THREADS=2 .venv/bin/python scripts/make_docs_styles.py [--model scenes-diffusion] [--steps 20]

Writes docs/styles/presets.png (a row per seed, a column per style) and docs/styles/mix.png (watercolor:1-w,
neon:w for w = 0 … 1, plus stylize 0 / 100 / 400 / 1000 of neon). Each cell is the model's 64×64 image, ×3.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kaiga import Studio
from kaiga.images import captioned_strip

PROMPT = "a red car in the city"
SCENES_STYLES = ("plain", "watercolor", "pixel-art", "sketch", "neon", "vintage")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="scenes-diffusion")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("docs/styles"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    studio = Studio(watermark=False)

    def one(seed: int, **fields):
        return studio.generate(PROMPT, seed=seed, steps=args.steps, model=args.model, **fields)[0].image

    rows = [captioned_strip([one(seed, style=s) for s in SCENES_STYLES], list(SCENES_STYLES), title=f"seed {seed}")
            for seed in (1, 2)]
    shares = (0.0, 0.25, 0.5, 0.75, 1.0)
    rows.append(captioned_strip([one(1, style=f"watercolor:{1 - w:g},neon:{w:g}") for w in shares],
                                [f"neon {w:g}" for w in shares], title="watercolor:1-w,neon:w"))
    rows.append(captioned_strip([one(1, style="neon", stylize=s) for s in (0, 100, 400, 1000)],
                                [f"stylize {s}" for s in (0, 100, 400, 1000)], title="neon, stylize"))
    for name, picked in (("presets.png", rows[:2]), ("mix.png", rows[2:])):
        from PIL import Image

        sheet = Image.new("RGB", (max(r.width for r in picked), sum(r.height + 8 for r in picked)), "white")
        y = 0
        for r in picked:
            sheet.paste(r, (0, y))
            y += r.height + 8
        sheet.save(args.out / name)
        print(args.out / name)


if __name__ == "__main__":
    main()
