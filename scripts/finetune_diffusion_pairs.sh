#!/usr/bin/env bash
# Fine-tune the diffusion denoiser on pair-heavy renders: how scenes-diffusion v4 became v5 (the shipped model).
#   MINUTES=6.3 bash scripts/train_gpu.sh && bash scripts/finetune_diffusion_pairs.sh   # v4 on a GPU, then this
#   FROM=kaiga/bundled/scenes-diffusion MINUTES=30 bash scripts/finetune_diffusion_pairs.sh  # continue the shipped model
# FROM defaults to train_gpu.sh's diffusion model; DATA, RUNS, N (renders), STEPS, SIZE and PY can be set too.
# v4 (scripts/train_gpu.sh) drew single objects, counts and scenes well but two objects as blobs of the
# wrong kinds (pair categories 0.17-0.19). 20,000 fresh renders, 70% of them pairs, and 95 minutes of
# denoiser steps at batch 64 on 2 CPU cores (4,094 steps) took the pair categories to 0.75-0.98.
# Running it again continues the run (--resume) for another MINUTES. Evaluate with
#   kaiga eval alignment --model "$RUNS/diffusion"
# The autoencoder stays as it was, so the latents (cached in RUNS/diffusion/cache) keep their meaning.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
FROM=${FROM:-runs/gpu-from-scratch/diffusion}
RUNS=${RUNS:-runs/pairs}
DATA=${DATA:-data/scenes-20k-pairs7}
MINUTES=${MINUTES:-95}
K="$PY -m kaiga"
[ -f "$DATA/manifest.json" ] || $K data scenes --n "${N:-20000}" --seed 7 --layouts 0.15,0.15,0.7 --captions 6 --out "$DATA"
$K train diffusion --data "$DATA" --init "$FROM" --out "$RUNS/diffusion" --batch-size 64 --lr 2e-4 \
  --steps "${STEPS:-100000}" --max-minutes "$MINUTES" --sample-every 1000 --checkpoint-every 100 --seed 11 \
  --size "${SIZE:-default}" --resume
