"""Wildcard lists: `__colour__` in a prompt draws a line of `colour.txt`, per image, from the image's seed.

kaiga ships a few lists of the scenes world's words (`wildcard_lists/`: colour, object, place, weather,
time, and scene, whose lines name the others); a user's lists are text files in `$KAIGA_HOME/wildcards/`
(one option a line, `#` starts a comment, blank lines skipped; a file in a subfolder is named with it,
`__animals/birds__`), and a user's list replaces a bundled one of the same name. The draw itself is
`kaiga.prompt_syntax.fill_wildcards`.

Example:
    >>> lists = load_wildcards()
    >>> sorted(lists)[:3], "red" in lists["colour"]
    (['colour', 'object', 'place'], True)
    >>> expand("a __colour__ car", seed=3, lists={"colour": ["red", "blue"]})
    'a red car'
"""

from __future__ import annotations

import difflib
from pathlib import Path

from kaiga.paths import model_home
from kaiga.prompt_syntax import PromptSyntaxError, fill_wildcards, wildcard_names
from kaiga.request import RequestError

BUNDLED = Path(__file__).resolve().parent / "wildcard_lists"


def wildcards_dir() -> Path:
    """Where a user's wildcard lists live: $KAIGA_HOME/wildcards/."""
    return model_home() / "wildcards"


def read_list(path: Path) -> list[str]:
    """The options of one list file: its lines, stripped, without blank lines and `#` comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RequestError(f"wildcards: cannot read {path} ({getattr(e, 'strerror', None) or e})") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _lists_in(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).with_suffix("").as_posix(): p for p in sorted(folder.rglob("*.txt")) if p.is_file()}


def wildcard_files(user_dir: Path | None = None) -> dict[str, Path]:
    """Every list by name: the bundled ones, then the user's (replacing a bundled one of the same name)."""
    return {**_lists_in(BUNDLED), **_lists_in(wildcards_dir() if user_dir is None else Path(user_dir))}


def load_wildcards(user_dir: Path | None = None) -> dict[str, list[str]]:
    return {name: read_list(path) for name, path in wildcard_files(user_dir).items()}


def check_wildcards(prompt: str, lists: dict[str, list[str]], field: str = "prompt") -> None:
    """RequestError at the first `__name__` that has no list (with the nearest names) or an empty one."""
    for at, name in wildcard_names(prompt):
        if name not in lists:
            near = difflib.get_close_matches(name, list(lists), n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(f'__{n}__' for n in near)}?)" if near else ""
            raise RequestError(f"{field}: at character {at + 1}: no wildcard list __{name}__{hint}; `kaiga wildcards` "
                               f"lists the {len(lists)} there are ({wildcards_dir()} holds yours)")
        if not lists[name]:
            raise RequestError(f"{field}: at character {at + 1}: the wildcard list __{name}__ has no lines")


def expand(prompt: str, seed: int, lists: dict[str, list[str]] | None = None) -> str:
    """The prompt with its wildcards drawn for `seed` (RequestError for a missing list or a cycle)."""
    if "__" not in prompt:
        return prompt
    lists = load_wildcards() if lists is None else lists
    check_wildcards(prompt, lists)
    try:
        return fill_wildcards(prompt, lists, seed)
    except PromptSyntaxError as e:  # a drawn line names a missing list, or the lists nest in a cycle
        raise RequestError(f"prompt: {e}") from None
