#!/usr/bin/env bash
# From a trained one-Gaussian VAE, the two models it seeds: how scenes-vae v4 and scenes-gan v3 were made.
#   MINUTES=6.3 bash scripts/train_gpu.sh && bash scripts/finetune_vae_gan.sh    # the VAE on a GPU, then this
#   FROM=path/to/vae bash scripts/finetune_vae_gan.sh                             # any VAE with one prior component
# 1. vae: a mixture prior (PRIOR_COMPONENTS Gaussians, default 16) fitted on the VAE's latents, every other weight
#    frozen (`kaiga train vae --stage prior`): -> $RUNS/vae
# 2. gan: a generator that starts as the VAE's decoder (its prior as the mapping, its text encoder frozen), trained
#    against an untrained projection discriminator (`kaiga train gan --init VAE`): -> $RUNS/gan
# The two run one after the other (two cores do not run two trainings faster than one). The shipped v4 / v3 came
# from scenes-vae v3 (`git show 87fdfb0:kaiga/bundled/scenes-vae/kaiga.json`) on 2 CPU cores; each stage's
# minutes are VAE_MINUTES and GAN_MINUTES. Running it again continues both (--resume). Evaluate with
#   kaiga eval alignment --model "$RUNS/vae" ; kaiga eval alignment --model "$RUNS/gan"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
FROM=${FROM:-runs/gpu-from-scratch/vae}
RUNS=${RUNS:-runs/vae-gan}
DATA=${DATA:-data/scenes-40k-pairs}
K="$PY -m kaiga"
[ -f "$DATA/manifest.json" ] || $K data scenes --n 40000 --seed 3 --layouts 0.35,0.2,0.45 --captions 6 --out "$DATA"
common=(--data "$DATA" --init "$FROM" --sample-every 0 --checkpoint-every 250 --resume)
$K train vae "${common[@]}" --out "$RUNS/vae" --stage prior --prior-components "${PRIOR_COMPONENTS:-16}" \
  --batch-size 128 --lr 1e-3 --steps "${VAE_STEPS:-1500}" --max-minutes "${VAE_MINUTES:-15}"
$K train gan "${common[@]}" --out "$RUNS/gan" --batch-size 32 --lr 1e-4 \
  --steps "${GAN_STEPS:-100000}" --max-minutes "${GAN_MINUTES:-40}"
