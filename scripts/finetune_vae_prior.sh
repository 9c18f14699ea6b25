#!/usr/bin/env bash
# A mixture prior for a trained one-Gaussian VAE, then the whole VAE fine-tuned against it: the vae chain of
# scripts/finetune_vae_gan_gpu.sh (scenes-vae v4, on a GPU); alone, its defaults suit 2 CPU cores.
#   FROM=path/to/vae bash scripts/finetune_vae_prior.sh      # any VAE with one prior component
# 1. prior: PRIOR_COMPONENTS Gaussians (default 16) fitted on the VAE's latents, every other weight frozen
#    (`kaiga train vae --stage prior`; the components start as copies of the trained Gaussian): -> $RUNS/vae-prior
# 2. all: every weight, against that prior, at β = BETA (default 60), BATCH (64) and LR (2e-4): -> $RUNS/vae (the model)
# On 2 CPU cores, 1,500 prior steps (15 minutes) took scenes-vae v3 from 0.323 to 0.429 seen alignment.
# Running it again continues both stages (--resume). Evaluate with
#   kaiga eval alignment --model "$RUNS/vae"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
FROM=${FROM:-runs/gpu-from-scratch/vae}
RUNS=${RUNS:-runs/vae-mixture}
DATA=${DATA:-data/scenes-40k-pairs}
K="$PY -m kaiga"
[ -f "$DATA/manifest.json" ] || $K data scenes --n 40000 --seed 3 --layouts 0.35,0.2,0.45 --captions 6 --out "$DATA"
common=(--data "$DATA" --sample-every 0 --checkpoint-every 250 --resume)
$K train vae "${common[@]}" --init "$FROM" --out "$RUNS/vae-prior" --stage prior \
  --prior-components "${PRIOR_COMPONENTS:-16}" --batch-size 128 --lr 1e-3 --steps "${PRIOR_STEPS:-1500}" \
  --max-minutes "${PRIOR_MINUTES:-15}"
$K train vae "${common[@]}" --init "$RUNS/vae-prior" --out "$RUNS/vae" --beta "${BETA:-60}" --batch-size "${BATCH:-64}" \
  --lr "${LR:-2e-4}" --steps "${STEPS:-5000}" --max-minutes "${MINUTES:-30}"
