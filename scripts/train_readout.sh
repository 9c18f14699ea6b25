#!/usr/bin/env bash
# Reproduce the bundled judge (kaiga/bundled/scenes-readout): about 45 minutes on 2 CPU cores.
# Two stages of one run: 3,000 steps at 2e-3, then on to 7,000 at 5e-4 (the loop keeps the rate
# constant, so the decay is a second command). Each stage resumes after an interruption.
# The shipped judge's first stage drew the world's layout mix (20 % pairs); this script draws the
# pair-heavy JUDGE_MIX throughout, as `kaiga train readout` now does.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/readout}
.venv/bin/kaiga train readout --out "$RUN" --steps 3000 --lr 2e-3 --resume
.venv/bin/kaiga train readout --out "$RUN" --steps 7000 --lr 5e-4 --resume
echo "judge in $RUN/readout; copy it to kaiga/bundled/scenes-readout to ship it"
