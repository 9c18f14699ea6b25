#!/usr/bin/env bash
# The pictures of docs/PROMPTS.md and docs/CLI.md's grid section, made with `kaiga grid` itself (each cell an image
# with its record, under $OUT; the sheets copied into docs/prompts/). About 2 minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
K=.venv/bin/kaiga
OUT=${OUT:-$(mktemp -d)}
sheet() { grep '/grid-' | tail -1; }
cp "$($K grid "a red car in the city" --x prompt=red,blue,green --y 'style=plain,watercolor,"watercolor:0.5,neon:0.5"' \
      --seed 4 --upscale 2 --out "$OUT/grid" | sheet)" docs/prompts/grid.png
# the step at which the colour is settled: `when` as a fraction of the 20 steps
cp "$($K grid "a [red:blue:0] car in the city" --x prompt=0,0.1,0.15,0.2,0.25,0.5 --y seed=1,2 --upscale 2 \
      --out "$OUT/edit" | sheet)" docs/prompts/edit.png
# AND with a weight: snow rises with it
cp "$($K grid "a red car in the city AND snow :0" --x prompt=0,0.25,0.5,0.75,1 --y seed=1,2 --upscale 2 \
      --out "$OUT/and" | sheet)" docs/prompts/and.png
# vary, zoom out and pan of one image (kaiga/variations.py)
SRC=$($K generate "a red car in the city" --seed 4 --upscale 2 --out "$OUT/remix")
ROW=("$SRC")
ROW+=("$($K vary "$SRC" --subtle --n 1 --seed 11 --upscale 2 --out "$OUT/remix")")
ROW+=("$($K vary "$SRC" --strong --n 1 --seed 11 --upscale 2 --out "$OUT/remix")")
ROW+=("$($K zoom "$SRC" --factor 1.5 --n 1 --seed 11 --upscale 2 --out "$OUT/remix")")
ROW+=("$($K zoom "$SRC" --factor 2 --n 1 --seed 11 --upscale 2 --out "$OUT/remix")")
ROW+=("$($K pan "$SRC" --left --n 1 --seed 11 --upscale 2 --out "$OUT/remix")")
ROW+=("$($K pan "$SRC" --up --n 1 --seed 11 --upscale 2 --out "$OUT/remix")")
.venv/bin/python - "${ROW[@]}" <<'PY'
import sys
from PIL import Image
from kaiga.images import captioned_strip
frames = [Image.open(p).convert("RGB") for p in sys.argv[1:]]
labels = ["source", "vary --subtle", "vary --strong", "zoom 1.5", "zoom 2", "pan --left", "pan --up"]
captioned_strip(frames, labels, scale=1, title="a red car in the city").save("docs/prompts/remix.png")
PY
# blend of two images at three shares (kaiga/variations.py mix_latents, Studio.blend)
A=$($K generate "a red car in the city" --seed 4 --upscale 2 --out "$OUT/blend")
B=$($K generate "a yellow boat on the beach" --seed 5 --upscale 2 --out "$OUT/blend")
ROW=("$A")
for w in 3,1 1,1 1,3; do ROW+=("$($K blend "$A" "$B" --weights $w --n 1 --seed 11 --upscale 2 --out "$OUT/blend")"); done
ROW+=("$B")
.venv/bin/python - "${ROW[@]}" <<'PY'
import sys
from PIL import Image
from kaiga.images import captioned_strip
frames = [Image.open(p).convert("RGB") for p in sys.argv[1:]]
labels = ["A", "blend 3:1", "blend 1:1", "blend 1:3", "B"]
captioned_strip(frames, labels, scale=1, title="A: a red car in the city, B: a yellow boat on the beach").save(
    "docs/prompts/blend.png")
PY
echo "cells under $OUT"
