"""The README and docs/ stay true: every measured table in docs/*.md is what scripts/make_docs_tables.py makes
from the result JSON, every relative link and picture resolves (to a file, and to a heading where it names
one), and the README's Quick start test command is the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from kaiga.eval.report import docs_tables, fill_tables

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_every_docs_table_is_made_from_its_json():
    tables = docs_tables(ROOT)
    stale = [p.name for p in PAGES if fill_tables(p.read_text(), tables) != p.read_text()]
    assert not stale, f"tables out of date with the JSON in {stale}: run python scripts/make_docs_tables.py"


def test_every_table_the_json_makes_is_in_a_page():
    text = "".join(p.read_text() for p in PAGES)
    missing = [name for name in docs_tables(ROOT) if f"<!-- table: {name} -->" not in text]
    assert not missing, f"no page shows the tables {missing}"


def test_fill_tables_replaces_only_between_the_markers():
    text = "keep\n<!-- table: speed -->\n| old |\n<!-- /table -->\nkeep too\n"
    assert fill_tables(text, {"speed": ["| new |", "|---|"]}) == (
        "keep\n<!-- table: speed -->\n| new |\n|---|\n<!-- /table -->\nkeep too\n")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, each space a hyphen."""
    heads = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_every_relative_link_and_picture_resolves():
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)  # code is not links
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, f"links to nothing: {broken}"


def test_the_quick_start_tests_are_what_ci_runs():
    quick = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in re.findall(r"```bash\n(.*?)\n```", quick, re.DOTALL)
