#!/usr/bin/env bash
# Every figure issue 17 ("A default model people would show") asks of v6, for a model folder M (default: the run's
# export, runs/v6), written where `kaiga eval report` reads them. Sequential, on THREADS threads: never beside a
# training run (two cores: a busy neighbour makes every number wrong). About 15 minutes on 2 CPU cores.
#   M=runs/v6 NAME=scenes-diffusion-v6 THREADS=2 bash scripts/eval_v6.sh
set -euo pipefail
cd "$(dirname "$0")/.."
K=.venv/bin/kaiga
M=${M:-runs/v6}
NAME=${NAME:-scenes-diffusion-v6}
THREADS=${THREADS:-2}
OUT=docs/eval/$NAME
mkdir -p "$OUT"
export OMP_NUM_THREADS=$THREADS
$K eval alignment --model "$M" --json "$OUT/alignment.json" --grid "$OUT/alignment-worst.png" --threads "$THREADS"
$K eval alignment --model "$M" --suite everyday --json "$OUT/alignment-everyday.json" \
   --grid "$OUT/alignment-everyday-worst.png" --threads "$THREADS"
$K eval fidelity --model "$M" --n 1000 --json "$OUT/fidelity.json" --threads "$THREADS"
.venv/bin/python bench/variety.py "$M" --json "bench/results/variety-$NAME.json"
.venv/bin/python scripts/make_docs_grid.py --model "$M" --out "$OUT/grid.png"
