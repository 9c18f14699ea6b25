"""Styles: named prompt templates, kaiga's own presets plus the user's, in one documented JSON format.

A style is a prompt template holding `{prompt}` and a negative prompt (docs/STYLES.md). kaiga ships
35 presets written for this project (`presets.json`: the scenes world's six styles, then moods,
lighting, palettes, eras and media); a user adds styles as files in `$KAIGA_HOME/styles/`:

- kaiga's format (`*.json`): `{"format": "kaiga-styles/1", "styles": [{"name", "prompt", "negative",
  "description", "group"}]}`;
- AUTOMATIC1111's `styles.csv` (`*.csv`, columns `name,prompt,negative_prompt`);
- Fooocus's style files (`*.json` holding a list of `{"name", "prompt", "negative_prompt"}`).

The formats are read, never their contents copied: A1111's and Fooocus's own style lists are GPL and
are not shipped. `kaiga styles --import FILE` converts a file the user owns into kaiga's format there.
A template without `{prompt}` is applied as A1111 applies it: the prompt, a comma, the style's text. A
user style whose name is a preset's replaces the preset.

Example:
    >>> s = Style(name="watercolor", prompt="watercolor painting of {prompt}", negative="neon")
    >>> s.apply("a red car", "blurry")
    ('watercolor painting of a red car', 'blurry, neon')
    >>> Style(name="tag", prompt="masterpiece").apply("a dog", "")
    ('a dog, masterpiece', '')
    >>> len(bundled_styles()) >= 30
    True
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from kaiga.paths import model_home

FORMAT = "kaiga-styles/1"
PRESETS = Path(__file__).resolve().parent / "presets.json"
PLACEHOLDER = "{prompt}"


class StyleError(ValueError):
    """A style file or a style name that cannot be used; the message names the file or the name."""


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str  # a template holding {prompt}; without it, appended after the prompt
    negative: str = ""
    description: str = ""
    group: str = ""
    source: str = "kaiga"  # "kaiga" for a preset, else the file it came from

    def apply(self, prompt: str, negative: str = "") -> tuple[str, str]:
        """The styled prompt and negative prompt (the style's negative after the user's, or around it)."""
        return _fill(self.prompt, prompt), _fill(self.negative, negative)

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "source"}


def _join(*parts: str) -> str:
    return ", ".join(p.strip().strip(",").strip() for p in parts if p and p.strip().strip(","))


def _fill(template: str, text: str) -> str:
    if PLACEHOLDER in template:  # spaces and commas left dangling by an empty text are dropped
        return " ".join(template.replace(PLACEHOLDER, text).split()).strip(" ,")
    return _join(text, template)


def styles_dir() -> Path:
    """Where a user's style files live: $KAIGA_HOME/styles/."""
    return model_home() / "styles"


def bundled_styles() -> dict[str, Style]:
    return {s.name: s for s in read_styles_file(PRESETS, source="kaiga")}


def load_library(user_dir: Path | None = None) -> dict[str, Style]:
    """Every style by name: the presets, then the user's files (sorted by file name), a later one replacing."""
    library = bundled_styles()
    folder = styles_dir() if user_dir is None else Path(user_dir)
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in (".json", ".csv") and path.is_file():
                library.update({s.name: s for s in read_styles_file(path)})
    return library


def find_style(name: str, library: dict[str, Style]) -> Style:
    """The style called `name` (case-insensitive), or a StyleError naming the nearest names."""
    if name in library:
        return library[name]
    folded = {k.lower(): v for k, v in library.items()}
    if name.lower() in folded:
        return folded[name.lower()]
    near = difflib.get_close_matches(name.lower(), list(folded), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(folded[n].name for n in near)}?)" if near else ""
    raise StyleError(f"style: no style named {name!r}{hint}; `kaiga styles` lists the {len(library)} there are")


def read_styles_file(path: Path, source: str | None = None) -> list[Style]:
    """The styles of a kaiga JSON, A1111 CSV or Fooocus JSON file; StyleError naming the file and what is wrong."""
    path = Path(path)
    source = str(path) if source is None else source
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise StyleError(f"{path}: cannot read it ({e})") from None
    if path.suffix.lower() == ".csv":
        return _from_a1111_csv(text, path, source)
    try:
        data = json.loads(text)
    except ValueError as e:
        raise StyleError(f"{path}: not valid JSON ({e})") from None
    if isinstance(data, list):  # Fooocus: a bare list of {"name", "prompt", "negative_prompt"}
        return [_style(item, path, i, source, negative_key="negative_prompt") for i, item in enumerate(data)]
    if isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("styles"), list):
        return [_style(item, path, i, source) for i, item in enumerate(data["styles"])]
    raise StyleError(f"{path}: not a styles file: expected {{\"format\": \"{FORMAT}\", \"styles\": [...]}} (kaiga), "
                     f"a list of {{\"name\", \"prompt\", \"negative_prompt\"}} (Fooocus) or a .csv (A1111)")


def _style(item, path: Path, index: int, source: str, negative_key: str = "negative") -> Style:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
        raise StyleError(f"{path}: style {index + 1} needs a \"name\" (text)")
    name = item["name"].strip()
    for key in ("prompt", negative_key, "description", "group"):
        if key in item and not isinstance(item[key], str):
            raise StyleError(f"{path}: style {name!r}: \"{key}\" must be text")
    if "," in name or ":" in name:
        raise StyleError(f"{path}: style {name!r}: a name may not hold ',' or ':' (they separate a mix's parts)")
    return Style(name=name, prompt=item.get("prompt", ""), negative=item.get(negative_key, item.get("negative", "")),
                 description=item.get("description", ""), group=item.get("group", ""), source=source)


def _from_a1111_csv(text: str, path: Path, source: str) -> list[Style]:
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows and "name" not in rows[0]:
        raise StyleError(f"{path}: an A1111 styles.csv has the columns name,prompt,negative_prompt")
    return [_style({"name": r.get("name") or "", "prompt": r.get("prompt") or "",
                    "negative_prompt": r.get("negative_prompt") or ""}, path, i, source, negative_key="negative_prompt")
            for i, r in enumerate(rows) if (r.get("name") or "").strip()]


def import_styles(path: Path, user_dir: Path | None = None) -> tuple[Path, int]:
    """Convert a user's style file (any readable format) to kaiga's format in the styles folder; (written file, count).

    An existing file of the same name is replaced only by writing a new one next to it first (atomic)."""
    styles = read_styles_file(path)
    folder = styles_dir() if user_dir is None else Path(user_dir)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{Path(path).stem}.json"
    tmp = dest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"format": FORMAT, "about": f"imported from {Path(path).name}",
                               "styles": [s.to_json() for s in styles]}, indent=2) + "\n")
    tmp.replace(dest)
    return dest, len(styles)
