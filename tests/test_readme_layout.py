"""The project layout (docs/LAYOUT.md, linked from the README's "Project layout") matches the code: every path
it names exists, and every top-level part of the package (each module and folder under kaiga/) is named there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = ROOT / "docs" / "LAYOUT.md"


def _layout_paths() -> list[str]:
    section = LAYOUT.read_text().split("# Project layout", 1)[1].split("```", 2)[1]
    return [m.group(1) for line in section.splitlines() if (m := re.match(r"(\S+/\S*|\S+\.py)\s", line + " "))]


def test_the_readme_links_the_layout():
    readme = (ROOT / "README.md").read_text()
    assert "](docs/LAYOUT.md)" in readme.split("## Project layout", 1)[1]


def test_every_path_in_the_layout_exists():
    missing = [p for p in _layout_paths() if not (ROOT / p).exists()]
    assert not missing, f"docs/LAYOUT.md names paths that do not exist: {missing}"


def test_every_top_level_part_is_in_the_layout():
    named = {p.rstrip("/") for p in _layout_paths()}
    parts = {f"kaiga/{p.name}" for p in (ROOT / "kaiga").iterdir()
             if p.name not in ("__init__.py", "__main__.py", "__pycache__", "safetensors_header.py")
             and (p.suffix == ".py" or p.is_dir())}
    covered = {p for p in parts if p in named or any(n.startswith(p + "/") for n in named)}
    assert parts == covered, f"parts of kaiga/ that docs/LAYOUT.md does not name: {sorted(parts - covered)}"
