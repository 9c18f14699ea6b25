#!/usr/bin/env bash
# The CPU recipe of scenes-diffusion v3, by steps (about 4.5 hours on 2 idle cores). The shipped v4 came from
# scripts/train_gpu.sh on a GPU; this script trains today's default architecture (autoencoder channels
# 32/64/128; v3 had 16/32/64) with v3's steps, so expect a model like v3, not the same weights.
# Every stage resumes: run the script again after an interruption and it continues.
#   VAE_STEPS, DIFFUSION_STEPS, DECODER_STEPS, FINETUNE_STEPS override the recipe below.
# The renders are the same for a seed; the captions are not those v1/v2 saw: since commit 0d91cf6 some
# captions leave colour, context or a pair's relation unsaid, which only the v3 fine-tune was trained with.
set -euo pipefail
cd "$(dirname "$0")/.."
K=.venv/bin/kaiga
RUNS=${RUNS:-runs/default}
VAE_STEPS=${VAE_STEPS:-700}
DIFFUSION_STEPS=${DIFFUSION_STEPS:-5000}
DECODER_STEPS=${DECODER_STEPS:-2000}
FINETUNE_STEPS=${FINETUNE_STEPS:-2000}

[ -f data/scenes-vae/manifest.json ] || $K data scenes --n 4000 --seed 1 --out data/scenes-vae
[ -f data/scenes-30k/manifest.json ] || $K data scenes --n 30000 --seed 2 --out data/scenes-30k
[ -f data/scenes-40k-pairs/manifest.json ] || $K data scenes --n 40000 --seed 3 --layouts 0.35,0.2,0.45 \
   --captions 6 --out data/scenes-40k-pairs

# 1. The autoencoder: 64×64×3 <-> 16×16×4.
$K train autoencoder --data data/scenes-vae --out "$RUNS/vae" --steps "$VAE_STEPS" --lr 1e-3 --resume
# 2. The denoiser and text encoder, over the frozen autoencoder's latents.
$K train diffusion --data data/scenes-30k --vae "$RUNS/vae" --out "$RUNS/diffusion" \
   --steps "$DIFFUSION_STEPS" --lr 5e-4 --batch-size 32 --resume
# 3. Sharpen the decoder alone (encoder fixed, so the denoiser's latents stay valid). The shipped
#    decoder did its first 300 steps on data/scenes-vae, the rest on data/scenes-30k.
$K train autoencoder --data data/scenes-30k --out "$RUNS/decoder" --init "$RUNS/vae" --decoder-only \
   --steps "$DECODER_STEPS" --lr 5e-4 --resume
# 4. Assemble v2: the diffusion run's model with the sharpened decoder.
rm -rf "$RUNS/model-v2" && cp -r "$RUNS/diffusion" "$RUNS/model-v2"
rm -rf "$RUNS/model-v2/checkpoint" "$RUNS/model-v2/samples" "$RUNS/model-v2/cache" "$RUNS/model-v2/vae"
cp -r "$RUNS/decoder/vae" "$RUNS/model-v2/vae"
# 5. v3: fine-tune denoiser and text encoder on pair-heavy renders (45 % pairs, not 20 %) whose captions
#    sometimes name no colour, no context or no relation ("a dog, a cat").
$K train diffusion --init "$RUNS/model-v2" --data data/scenes-40k-pairs --out "$RUNS/finetune" \
   --steps "$FINETUNE_STEPS" --lr 3e-4 --batch-size 32 --resume
rm -rf "$RUNS/model" && cp -r "$RUNS/finetune" "$RUNS/model"
rm -rf "$RUNS/model/checkpoint" "$RUNS/model/samples" "$RUNS/model/cache" "$RUNS/model/log.jsonl" "$RUNS/model/train_config.json"
echo "model in $RUNS/model; copy its model files to kaiga/bundled/scenes-diffusion to ship it"
