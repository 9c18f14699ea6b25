#!/usr/bin/env bash
# scenes-vae v4 and scenes-gan v3 from a trained one-Gaussian VAE (scenes-vae v3), on one GPU, as they were made:
#   MINUTES=6.3 bash scripts/train_gpu.sh && bash scripts/finetune_vae_gan_gpu.sh
#   FROM=path/to/vae bash scripts/finetune_vae_gan_gpu.sh          # any VAE with one prior component
# Two chains share the GPU (these models leave most of an H100 idle):
# - vae: scripts/finetune_vae_prior.sh at GPU sizes: a 16-Gaussian prior fitted for 1.08 minutes, then every
#   weight against it (β 60, batch 128, lr 3e-4) for 3.87 minutes -> $RUNS/vae-mix/vae
# - gan: `kaiga train gan --init VAE` (the VAE's decoder as generator, its prior as the text-to-latent mapping,
#   its text encoder frozen) with a matching-aware D (--mismatch 0.5, D at 4x the lr) for 5.22 minutes beside
#   the vae chain, then 3.2 minutes more with the GPU alone -> $RUNS/gan
# STEPS caps every stage instead (tests/train/test_train_gpu_script.py runs it so, tiny, on a CPU); PY picks
# the Python. Running it again continues every stage (--resume). Logs: $RUNS/vae.log, $RUNS/gan.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
FROM=${FROM:-runs/gpu-from-scratch/vae}
RUNS=${RUNS:-runs/gpu-vae-gan}
DATA=${DATA:-data/scenes-40k-pairs}
STEPS=${STEPS:-1000000}
K="$PY -m kaiga"
export PYTHONUNBUFFERED=1
[ -f "$DATA/manifest.json" ] ||
  $K data scenes --n 40000 --seed 3 --layouts 0.35,0.2,0.45 --captions 6 --out "$DATA" --workers "${WORKERS:-8}"
mkdir -p "$RUNS"
FROM="$FROM" RUNS="$RUNS/vae-mix" DATA="$DATA" PY="$PY" PRIOR_STEPS="$STEPS" PRIOR_MINUTES=1.08 STEPS="$STEPS" \
  MINUTES=3.87 BATCH=128 LR=3e-4 bash scripts/finetune_vae_prior.sh > "$RUNS/vae.log" 2>&1 &
vae=$!
gan=(--data "$DATA" --steps "$STEPS" --sample-every 0 --checkpoint-every 1000 --resume --mismatch 0.5 --d-lr-ratio 4
     --batch-size 128 --lr 1e-4)
$K train gan "${gan[@]}" --init "$FROM" --out "$RUNS/gan-shared" --max-minutes 5.22 > "$RUNS/gan.log" 2>&1
wait "$vae"
$K train gan "${gan[@]}" --init "$RUNS/gan-shared" --out "$RUNS/gan" --max-minutes 3.2 >> "$RUNS/gan.log" 2>&1
grep -hE "steps, loss" "$RUNS/vae.log" "$RUNS/gan.log"
