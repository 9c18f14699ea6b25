#!/usr/bin/env bash
# Keep long training runs across sessions without putting their checkpoints on main.
#   bash scripts/checkpoint_branch.sh save RUN...     commit RUN/checkpoint (+ its log and config) to the
#                                                     `checkpoints` branch; main's index and tree are untouched
#   bash scripts/checkpoint_branch.sh restore RUN...  write them back from that branch, then `--resume` continues
# Why a branch: a full checkpoint (weights, EMA, optimiser moments) is tens of MB; on main it would ship in every
# clone's working tree and in the tree a GPU machine receives (≤ 64 MiB), and a new one would replace it each
# session. The branch keeps only the newest state of each run (one commit per save, the parent kept for history).
set -euo pipefail
cd "$(dirname "$0")/.."
BRANCH=checkpoints
cmd=${1:-}; shift || true
[ $# -ge 1 ] || { echo "usage: $0 save|restore RUN..." >&2; exit 2; }
case "$cmd" in
  save)
    index=$(mktemp); trap 'rm -f "$index"' EXIT
    parent=$(git rev-parse -q --verify "refs/heads/$BRANCH" || true)
    if [ -n "$parent" ]; then GIT_INDEX_FILE=$index git read-tree "$parent"; else GIT_INDEX_FILE=$index git read-tree --empty; fi
    for run in "$@"; do
      [ -f "$run/checkpoint/state.json" ] || { echo "$run: no checkpoint/state.json" >&2; exit 2; }
      GIT_INDEX_FILE=$index git rm -r -q -f --cached --ignore-unmatch "$run" >/dev/null  # -f: the branch's copy is older
      GIT_INDEX_FILE=$index git add -f "$run/checkpoint" "$run/train_config.json" "$run/log.jsonl"
    done
    tree=$(GIT_INDEX_FILE=$index git write-tree)
    steps=$(for run in "$@"; do printf '%s at step %s; ' "$run" "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$run/checkpoint/state.json")"; done)
    commit=$(git commit-tree "$tree" ${parent:+-p "$parent"} -m "Checkpoints: $steps")
    git update-ref "refs/heads/$BRANCH" "$commit"
    echo "saved to $BRANCH ($commit): $steps"
    ;;
  restore)
    for run in "$@"; do
      git archive "$BRANCH" "$run" | tar -x
      echo "restored $run at step $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$run/checkpoint/state.json")"
    done
    ;;
  *) echo "usage: $0 save|restore RUN..." >&2; exit 2 ;;
esac
