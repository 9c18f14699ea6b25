"""Render the prompt × seed grid shown in the README (docs/default-model-grid.png).

Usage:
    .venv/bin/python scripts/make_docs_grid.py [--model NAME|PATH] [--steps 20] [--out docs/default-model-grid.png]

Each row is one prompt, each column one seed; every cell is the model's 64×64 output enlarged ×3
(nearest neighbour, so the pixels shown are the pixels made). The prompts cover object, colour,
count, relation, scene, weather, time of day and style; some are phrased unlike the training
templates, and two use attribute pairs held out of training (marked "held out").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from kaiga import Studio

PROMPTS = (
    "a red car in the city",
    "a yellow truck in the desert at sunset",
    "a white house in the mountains in the snow",
    "two green birds in the forest",
    "three orange flowers on the beach",
    "a black cat in the countryside at night",
    "a purple bicycle in the city in the rain",
    "a blue boat on the beach in the fog",
    "a pink dog to the left of a yellow tree",
    "pixel art of a red car in the desert",
    "watercolor painting of a green tree in the countryside",
    "neon, night, city street, blue automobile",
    "vintage photo of a white boat on the beach",
    "pencil sketch of a white dog in the snow",
    "a blue dog on the beach (held out)",
    "a pink car in the city (held out)",
)
SEEDS = (1, 2, 3, 4, 5)  # consecutive
SCALE = 3
LABEL_W = 360


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--out", type=Path, default=Path("docs/default-model-grid.png"))
    args = ap.parse_args()
    studio = Studio()
    cell = 64 * SCALE
    sheet = Image.new("RGB", (LABEL_W + len(SEEDS) * (cell + 4), len(PROMPTS) * (cell + 4) + 30), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=15)
    for j, seed in enumerate(SEEDS):
        draw.text((LABEL_W + j * (cell + 4) + 4, 6), f"seed {seed}", fill="black", font=font)
    for i, prompt in enumerate(PROMPTS):
        clean = prompt.replace(" (held out)", "")
        # Seeds are consecutive, so one request of n images gives exactly seeds SEEDS.
        images = studio.generate(clean, seed=SEEDS[0], n=len(SEEDS), steps=args.steps, guidance=args.guidance,
                                 model=args.model)
        y = 30 + i * (cell + 4)
        draw.multiline_text((6, y + cell // 2 - 10), _wrap(prompt, 40), fill="black", font=font)
        for j, img in enumerate(images):
            sheet.paste(img.image.resize((cell, cell), Image.NEAREST), (LABEL_W + j * (cell + 4), y))
        print(f"{i + 1}/{len(PROMPTS)} {prompt}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(args.out)


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join(lines + [line])


if __name__ == "__main__":
    main()
