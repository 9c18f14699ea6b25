"""Render the pictures of the four families in docs/FAMILIES.md: one prompt grid and one `explain` strip each.

Usage:
    .venv/bin/python scripts/make_docs_families.py [--models scenes-diffusion scenes-gan ...] [--out docs/families]

Writes OUT/compare.png (one row per family, one column per prompt, seed 1, 64×64 outputs enlarged ×3
with nearest neighbour: the pixels shown are the pixels made) and OUT/explain-<family>.png (what
`kaiga explain` draws for that family).
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from kaiga import Studio
from kaiga.eval.families import DEFAULT_MODELS
from kaiga.images import captioned_strip

PROMPTS = (
    "a red car in the city",
    "a yellow dog on the beach at sunset",
    "two blue birds in the snow",
    "a white house in the mountains in the fog",
    "a purple cat to the left of an orange bicycle",
    "a pink flower in the forest, pixel art",
    "a green truck in the desert at night",
)
EXPLAIN_PROMPT = "a yellow dog on the beach at sunset"
SCALE, LABEL_W, HEAD = 3, 170, 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("docs/families"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    studio = Studio()
    cell = 64 * SCALE
    sheet = Image.new("RGB", (LABEL_W + len(PROMPTS) * (cell + 4), HEAD + len(args.models) * (cell + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    for j, prompt in enumerate(PROMPTS):
        lines = textwrap.wrap(prompt, 27)
        draw.multiline_text((LABEL_W + j * (cell + 4) + 2, 4), "\n".join(lines), fill="black", font=font)
    for i, name in enumerate(args.models):
        loaded = studio.load(name)
        draw.text((4, HEAD + i * (cell + 4) + cell // 2 - 8), f"{loaded.ref.family}\n{name}", fill="black", font=font)
        for j, prompt in enumerate(PROMPTS):
            [img] = studio.generate(prompt, model=name, seed=args.seed)
            sheet.paste(img.image.resize((cell, cell), Image.NEAREST), (LABEL_W + j * (cell + 4), HEAD + i * (cell + 4)))
        shown = studio.explain(EXPLAIN_PROMPT, model=name, seed=args.seed)
        strip = captioned_strip(shown.frames, shown.captions, scale=2, title=f"{name} ({loaded.ref.family}): {EXPLAIN_PROMPT!r}")
        strip.save(args.out / f"explain-{loaded.ref.family}.png")
    sheet.save(args.out / "compare.png")
    print(f"wrote {args.out}/compare.png and explain-*.png")


if __name__ == "__main__":
    main()
