"""The prompt check: terms from a blocklist file, matched as whole words in any case.

The default list ships beside this module (`default_blocklist.txt`); a user's file at
`$KAIGA_HOME/safety/blocklist.txt` extends it (a line adds a term) or overrides it (`-term` removes a
default one). Format: one term per line (a word or a phrase), `#` starts a comment, blank lines are
ignored. A phrase's words match across any run of spaces; a term matches only whole words ("gore"
never matches "gorge"; punctuation and hyphens end a word).

Example:
    >>> added, removed = parse_terms("nude\\n# a comment\\nExplicit   sex\\n-nsfw\\n")
    >>> sorted(added), removed
    (['explicit sex', 'nude'], {'nsfw'})
    >>> bl = Blocklist(frozenset({"nude", "explicit sex"}))
    >>> bl.match("A NUDE figure, Explicit   sex"), bl.match("a denuded hillside"), bl.match("a red car")
    (('explicit sex', 'nude'), (), ())
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kaiga.paths import model_home

DEFAULT_FILE = Path(__file__).parent / "default_blocklist.txt"


def user_file() -> Path:
    """The user's blocklist: `$KAIGA_HOME/safety/blocklist.txt` (need not exist)."""
    return model_home() / "safety" / "blocklist.txt"


def parse_terms(text: str) -> tuple[set[str], set[str]]:
    """(terms added, terms removed) of a blocklist file's text; terms lower-cased, spaces collapsed."""
    added, removed = set(), set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        target = removed if line.startswith("-") else added
        term = " ".join(line.lstrip("-").lower().split())
        if term:
            target.add(term)
    return added, removed


def _pattern(term: str) -> re.Pattern:
    # (?<!\w) / (?!\w): whole words, also next to punctuation such as A1111's "(nude:1.2)"
    words = r"\s+".join(re.escape(w) for w in term.split())
    return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class Blocklist:
    """A set of terms; `match(prompt)` names those the prompt contains, sorted."""

    terms: frozenset[str]
    _patterns: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_patterns", {t: _pattern(t) for t in self.terms})

    def match(self, prompt: str) -> tuple[str, ...]:
        return tuple(sorted(t for t, p in self._patterns.items() if p.search(prompt)))

    @classmethod
    def load(cls, user: Path | None = None) -> Blocklist:
        """The default list with the user's file (default: `user_file()`) applied, read now (edits apply at once)."""
        terms, _ = parse_terms(DEFAULT_FILE.read_text(encoding="utf-8"))
        path = user if user is not None else user_file()
        if path.is_file():
            added, removed = parse_terms(path.read_text(encoding="utf-8"))
            terms = (terms - removed) | added
        return cls(frozenset(terms))
