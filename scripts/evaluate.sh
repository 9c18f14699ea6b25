#!/usr/bin/env bash
# Regenerate docs/EVAL.md: the judge's ceiling, every installed model's alignment and fidelity, speed.
# About 20 minutes per model on 2 CPU cores (alignment 5-8, fidelity 8, bench 3); run on an idle machine.
#   MODELS="scenes-diffusion my-model" N=1000 K=4 bash scripts/evaluate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
K_BIN=.venv/bin/kaiga
MODELS=${MODELS:-scenes-diffusion}
N=${N:-1000}
K=${K:-4}

$K_BIN eval alignment --model renders -k "$K"
for model in $MODELS; do
  $K_BIN eval alignment --model "$model" -k "$K"
  $K_BIN eval fidelity --model "$model" --n "$N"
done
$K_BIN bench
$K_BIN eval report
