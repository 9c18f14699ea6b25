#!/usr/bin/env bash
# Carry a long training run from one session to the next on main, as a compact checkpoint.
#   bash scripts/carry_checkpoint.sh save [--lean] RUN PREFIX...
#                                                         RUN/checkpoint's trained parts (the weights under each
#                                                         PREFIX, e.g. vae. discriminator.) -> checkpoints/NAME/,
#                                                         with its train_config.json and log.jsonl; staged for commit.
#                                                         --lean: the EMA alone (fp16), the optimizer started afresh
#                                                         on resume (13 MB for v6's denoiser, against 68 MB)
#   bash scripts/carry_checkpoint.sh restore NAME [RUNS]  checkpoints/NAME -> RUNS/NAME (default runs/), unless that
#                                                         run is further along; then `--resume` continues it
# Why on main: only main lands; a session's other branches are gone with it (a `checkpoints` branch was lost
# that way at step 2,700). Why compact: kaiga.train.checkpoint.compact_checkpoint (the frozen parts are not
# carried; EMA fp16, moments bf16), 26 MiB for the v6 autoencoder stage against 98 MiB in full.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
cmd=${1:-}; shift || true
step_of() { "$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$1"; }
case "$cmd" in
  save)
    lean=False
    [ "${1:-}" = --lean ] && { lean=True; shift; }
    [ $# -ge 2 ] || { echo "usage: $0 save [--lean] RUN PREFIX..." >&2; exit 2; }
    run=$1; shift
    name=$(basename "$run")
    [ -f "$run/checkpoint/state.json" ] || { echo "$run: no checkpoint/state.json" >&2; exit 2; }
    mkdir -p "checkpoints/$name"
    "$PY" -c "import sys; from kaiga.train.checkpoint import compact_checkpoint as c; \
print(sum(c(sys.argv[2], sys.argv[3], tuple(sys.argv[4:]), lean=sys.argv[1] == 'True').values()) // 2**20, 'MB')" \
      "$lean" "$run/checkpoint" "checkpoints/$name/checkpoint" "$@"
    cp "$run/train_config.json" "$run/log.jsonl" "checkpoints/$name/"
    git add -A "checkpoints/$name"
    echo "checkpoints/$name at step $(step_of "checkpoints/$name/checkpoint/state.json"): staged; commit it"
    ;;
  restore)
    [ $# -ge 1 ] || { echo "usage: $0 restore NAME [RUNS]" >&2; exit 2; }
    name=$1; runs=${2:-runs}
    src=checkpoints/$name
    [ -f "$src/checkpoint/state.json" ] || { echo "$src: no checkpoint" >&2; exit 2; }
    if [ -f "$runs/$name/checkpoint/state.json" ] && \
       [ "$(step_of "$runs/$name/checkpoint/state.json")" -ge "$(step_of "$src/checkpoint/state.json")" ]; then
      echo "$runs/$name is at step $(step_of "$runs/$name/checkpoint/state.json") already; left as it is"; exit 0
    fi
    mkdir -p "$runs/$name"
    rm -rf "$runs/$name/checkpoint"
    cp -r "$src/checkpoint" "$runs/$name/checkpoint"
    cp "$src/train_config.json" "$src/log.jsonl" "$runs/$name/"
    echo "restored $runs/$name at step $(step_of "$runs/$name/checkpoint/state.json")"
    ;;
  *) echo "usage: $0 save [--lean] RUN PREFIX... | restore NAME [RUNS]" >&2; exit 2 ;;
esac
