"""Rewrite the docs' measured tables from the result JSON, so that they never drift from what was measured.

Each table sits between `<!-- table: NAME -->` and `<!-- /table -->` in a docs/*.md page; the lines between
the markers are replaced by what `kaiga.eval.report.docs_tables` makes of:
    families   docs/FAMILIES.md   bench/results/families.json (kaiga eval families) + docs/eval/<model>/*.json
    alignment  docs/QUALITY.md    docs/eval/<folder>/alignment.json (kaiga eval alignment), rows in ALIGNMENT_ROWS
    speed      docs/QUALITY.md    bench/results/generate.json (kaiga bench)
docs/EVAL.md is not touched: `kaiga eval report` writes all of it. tests/test_docs_tables.py fails when a
page differs from what this script would write.

Usage:
    .venv/bin/python scripts/make_docs_tables.py           # rewrite the pages in place
    .venv/bin/python scripts/make_docs_tables.py --check   # exit 1 and name the pages that are out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kaiga.eval.report import docs_tables, fill_tables

ROOT = Path(__file__).resolve().parent.parent


def stale_pages(root: Path = ROOT, write: bool = False) -> list[Path]:
    """The docs pages whose marked tables differ from the JSON; with `write`, rewrite them."""
    tables = docs_tables(root)
    stale = []
    for page in sorted((root / "docs").glob("*.md")):
        text = page.read_text()
        filled = fill_tables(text, tables)
        if filled != text:
            stale.append(page)
            if write:
                page.write_text(filled)
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report the pages that are out of date")
    args = parser.parse_args()
    stale = stale_pages(write=not args.check)
    for page in stale:
        print(f"{'out of date' if args.check else 'rewrote'}: {page.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
