#!/usr/bin/env bash
# Everything kaiga needs on a fresh Debian/Ubuntu machine, idempotent: a second run takes seconds.
#   - the emoji font the scenes renderer draws objects with (Debian package fonts-noto-color-emoji)
#   - a virtual environment in .venv with torch 2.13.0 (the CPU wheel on disk; naming it on the same
#     pip line as kaiga stops pip from resolving a multi-GB CUDA build) and kaiga with its test extras
set -euo pipefail
cd "$(dirname "$0")/.."

FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
if [ ! -f "$FONT" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: please install the Debian package fonts-noto-color-emoji (needs root)" >&2; exit 1; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fonts-noto-color-emoji >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import kaiga, torch, torchmetrics, pytest, fastapi, uvicorn, sqlalchemy, alembic, openai, webuiapi, httpx" 2>/dev/null; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==2.13.0" -e ".[test]"
fi
echo "setup: ready (.venv/bin/kaiga)" >&2
