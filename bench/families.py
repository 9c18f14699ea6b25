"""The four families side by side: ms/image at batch 16 and parameters, all timed in one run.

A thin wrapper of `kaiga eval families` (the measuring lives in kaiga/eval/families.py); without
--json it writes bench/results/families.json beside itself.

Usage:
    python bench/families.py [MODEL ...] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

from kaiga.cli import app

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "families.json"


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--json" or a.startswith("--json=") for a in args):
        args += ["--json", str(DEFAULT_JSON)]
    app(["eval", "families", *args], prog_name="bench/families.py")


if __name__ == "__main__":
    main()
