"""Generation speed of kaiga against stock diffusers, on the same weights, in one run.

A thin wrapper of `kaiga bench`: the measuring lives in `kaiga/eval/speed.py` (what is measured and
how), the options in `kaiga bench --help`, every JSON field in bench/README.md. The one difference:
without --json this script writes bench/results/generate.json beside itself, wherever it is run from.

Usage:
    python bench/generate.py [--model NAME|PATH] [--repeats 3] [--json bench/results/generate.json]
    python bench/generate.py --quick        # smoke run: 2 steps, batch 1 and 2, 1 repeat
    python bench/generate.py --threads 1    # on a busy machine: bound the cores used
"""

from __future__ import annotations

import sys
from pathlib import Path

from kaiga.cli import app

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "generate.json"


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--json" or a.startswith("--json=") for a in args):
        args += ["--json", str(DEFAULT_JSON)]
    app(["bench", *args], prog_name="bench/generate.py")


if __name__ == "__main__":
    main()
