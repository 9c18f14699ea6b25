#!/usr/bin/env bash
# Train the default model of every family at once on one GPU, each chain of stages under a time budget.
#   bash scripts/train_gpu.sh                 # -> runs/gpu-from-scratch/{diffusion,transformer,gan,vae} (model folders)
#   MINUTES=30 bash scripts/train_gpu.sh      # a longer budget per chain (default 7.5 minutes)
# The four chains share the GPU and run side by side (these models are small: one alone leaves most of
# an H100 idle). Each stage stops at its share of MINUTES (`--max-minutes`), checkpoints and exports;
# running the script again continues every stage (`--resume`) for another budget. Logs: RUNS/*.log.
# FROM=bundled continues the shipped models (kaiga/bundled) instead of starting from scratch: the denoiser,
# the transformer's prior, the gan and the vae (β = 30) train on for the whole budget.
# STEPS caps each stage's steps instead and SIZE=tiny picks the test-sized architectures (tests/train/
# test_train_gpu_script.py runs it so on a CPU); PY picks the Python.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
FROM=${FROM:-scratch}
case "$FROM" in scratch|bundled) ;; *) echo "FROM must be scratch or bundled, not $FROM" >&2; exit 2 ;; esac
RUNS=${RUNS:-runs/gpu-from-$FROM}
DATA=${DATA:-data/scenes-40k-pairs}
M=${MINUTES:-7.5}
STEPS=${STEPS:-1000000}
K="$PY -m kaiga"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-3} PYTHONUNBUFFERED=1
[ -f "$DATA/manifest.json" ] || $K data scenes --n 40000 --seed 3 --layouts 0.35,0.2,0.45 --captions 6 --out "$DATA" || exit
mkdir -p "$RUNS"
share() { python3 -c "print(round($M * $1, 2))"; }  # minutes of the chain's budget for one stage
common=(--data "$DATA" --steps "$STEPS" --size "${SIZE:-default}" --sample-every 0 --checkpoint-every 2000 --resume)

if [ "$FROM" = bundled ]; then
  B=kaiga/bundled
  $K train diffusion "${common[@]}" --out "$RUNS/diffusion" --init "$B/scenes-diffusion" --batch-size 256 --lr 3e-4 \
    --max-minutes "$(share 0.95)" > "$RUNS/diffusion.log" 2>&1 &
  $K train transformer --stage prior "${common[@]}" --out "$RUNS/transformer" --init "$B/scenes-transformer" \
    --batch-size 128 --lr 4e-4 --max-minutes "$(share 0.95)" > "$RUNS/transformer.log" 2>&1 &
  $K train gan "${common[@]}" --out "$RUNS/gan" --init "$B/scenes-gan" --batch-size 64 --lr 2e-4 \
    --max-minutes "$(share 0.95)" > "$RUNS/gan.log" 2>&1 &
  $K train vae "${common[@]}" --out "$RUNS/vae" --init "$B/scenes-vae" --beta 30 --batch-size 64 --lr 3e-4 \
    --max-minutes "$(share 0.95)" > "$RUNS/vae.log" 2>&1 &
else
  # diffusion: the autoencoder first (its latents are the denoiser's space), then the denoiser over them.
  ( $K train autoencoder "${common[@]}" --out "$RUNS/autoencoder" --batch-size 64 --lr 1e-3 --max-minutes "$(share 0.3)" &&
    $K train diffusion "${common[@]}" --out "$RUNS/diffusion" --vae "$RUNS/autoencoder" --batch-size 256 --lr 5e-4 \
      --max-minutes "$(share 0.62)" ) > "$RUNS/diffusion.log" 2>&1 &
  # transformer: VQ tokenizer, then the reranker (real images only), then the GPT prior over the VQ's codes.
  ( $K train transformer --stage tokenizer "${common[@]}" --out "$RUNS/transformer-tokenizer" --batch-size 64 --lr 1e-3 \
      --max-minutes "$(share 0.3)" &&
    $K train transformer --stage scorer "${common[@]}" --out "$RUNS/transformer-scorer" --init "$RUNS/transformer-tokenizer" \
      --batch-size 128 --lr 1e-3 --max-minutes "$(share 0.08)" &&
    $K train transformer --stage prior "${common[@]}" --out "$RUNS/transformer" --init "$RUNS/transformer-scorer" \
      --batch-size 128 --lr 6e-4 --max-minutes "$(share 0.5)" ) > "$RUNS/transformer.log" 2>&1 &
  # gan: one stage, both players in one step.
  $K train gan "${common[@]}" --out "$RUNS/gan" --batch-size 64 --lr 2e-4 --max-minutes "$(share 0.95)" \
    > "$RUNS/gan.log" 2>&1 &
  # vae: β = 1 (sharp reconstructions), then β = 30 (the caption, not the latent, decides the picture).
  ( $K train vae "${common[@]}" --out "$RUNS/vae-beta1" --batch-size 64 --lr 1e-3 --max-minutes "$(share 0.45)" &&
    $K train vae "${common[@]}" --out "$RUNS/vae" --init "$RUNS/vae-beta1" --beta 30 --batch-size 64 --lr 5e-4 \
      --max-minutes "$(share 0.45)" ) > "$RUNS/vae.log" 2>&1 &
fi

status=0
for job in $(jobs -p); do wait "$job" || status=1; done
for log in "$RUNS"/*.log; do echo "== $log"; grep -E "steps, loss|Error|error:" "$log" | tail -4; done
exit $status
