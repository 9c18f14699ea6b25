#!/usr/bin/env bash
# Every quality figure issue "Real-time generation" asks of the distilled student (M, default runs/fast, or the
# bundled scenes-fast) against its 20-step teacher (docs/eval/scenes-diffusion/) and the no-training baseline, the
# teacher itself at few DPM-Solver++ steps. Written where `kaiga eval report` reads them. Sequential, never beside
# a training run. About 20 minutes on 2 CPU cores.
#   M=runs/fast THREADS=2 bash scripts/eval_fast.sh
set -euo pipefail
cd "$(dirname "$0")/.."
K=.venv/bin/kaiga
M=${M:-runs/fast}
NAME=${NAME:-scenes-fast}
TEACHER=${TEACHER:-scenes-diffusion}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
# what:   MODEL SAMPLER STEPS FOLDER; every alignment first (the quicker figures), then every fidelity
runs=("$M lcm 4 $NAME" "$TEACHER dpm++2m 4 $TEACHER-dpm4" "$M lcm 1 $NAME-steps1" "$M lcm 2 $NAME-steps2"
      "$TEACHER dpm++2m 8 $TEACHER-dpm8")
for run in "${runs[@]}"; do
  read -r model sampler steps folder <<< "$run"
  mkdir -p "docs/eval/$folder"
  $K eval alignment --model "$model" --sampler "$sampler" --steps "$steps" --json "docs/eval/$folder/alignment.json" \
     --grid "docs/eval/$folder/alignment-worst.png" --threads "$THREADS"
done
for run in "${runs[@]}"; do
  read -r model sampler steps folder <<< "$run"
  $K eval fidelity --model "$model" --sampler "$sampler" --steps "$steps" --n 1000 \
     --json "docs/eval/$folder/fidelity.json" --threads "$THREADS"
done
