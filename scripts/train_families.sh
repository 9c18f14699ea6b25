#!/usr/bin/env bash
# Train the gan, vae and transformer families on a CPU, by steps: one command per family.
# The bundled models were trained on a GPU with scripts/train_gpu.sh (all four families in ~7 minutes on one
# H100; the vae and gan then went on with scripts/finetune_vae_gan_gpu.sh); this script trains the
# train_gpu.sh architectures where there is no GPU (hours on 2 cores, and fewer steps).
#   bash scripts/train_families.sh vae           # -> $RUNS/vae (model folder)
#   bash scripts/train_families.sh gan           # -> $RUNS/gan
#   bash scripts/train_families.sh transformer   # -> $RUNS/transformer-{tokenizer,scorer,prior}; the last is the model
# Every stage resumes: run the same command again after an interruption and it continues.
# Steps are overridable (VAE_STEPS, VAE_BETA_STEPS, GAN_STEPS, VQ_STEPS, PRIOR_STEPS, SCORER_STEPS); the defaults are
# the CPU recipes of the previous bundled models (docs/EVAL.md: scenes-gan-v1, scenes-vae-v2, scenes-transformer-v2),
# which had the narrower architectures of their own kaiga.json.
set -euo pipefail
cd "$(dirname "$0")/.."
K=.venv/bin/kaiga
RUNS=${RUNS:-runs/families}
DATA=data/scenes-40k-pairs
[ -x "$K" ] || bash scripts/setup.sh
[ -f $DATA/manifest.json ] || $K data scenes --n 40000 --seed 3 --layouts 0.35,0.2,0.45 --captions 6 --out $DATA

case "${1:-}" in
  vae)
    # β = 1 first (sharp reconstructions), then β = 30 so the caption, not the latent, decides the picture.
    $K train vae --data $DATA --out "$RUNS/vae-beta1" --steps "${VAE_STEPS:-4000}" --lr 1e-3 --resume
    $K train vae --data $DATA --out "$RUNS/vae" --init "$RUNS/vae-beta1" --beta 30 \
      --steps "${VAE_BETA_STEPS:-2500}" --lr 5e-4 --resume ;;
  gan)
    $K train gan --data $DATA --out "$RUNS/gan" --steps "${GAN_STEPS:-10000}" --lr 2e-4 --resume ;;
  transformer)
    $K train transformer --stage tokenizer --data $DATA --out "$RUNS/transformer-tokenizer" \
      --steps "${VQ_STEPS:-2000}" --lr 1e-3 --resume
    # The scorer reads real images only, so it may come before the prior (whose sample grids it reranks).
    $K train transformer --stage scorer --data $DATA --out "$RUNS/transformer-scorer" \
      --init "$RUNS/transformer-tokenizer" --steps "${SCORER_STEPS:-1000}" --lr 1e-3 --resume
    $K train transformer --stage prior --data $DATA --out "$RUNS/transformer-prior" \
      --init "$RUNS/transformer-scorer" --steps "${PRIOR_STEPS:-7000}" --lr 5e-4 --resume ;;
  *)
    echo "usage: bash scripts/train_families.sh gan|vae|transformer" >&2; exit 2 ;;
esac
