"""Where each training item came from: its source, licence and consent.

Every item of a dataset has a `Lineage`, read in this order (the first that says wins, field by field):
1. its own line of `metadata.jsonl`: `"source"`, `"licence"` (an SPDX id such as `CC-BY-4.0`, or a
   licence's name) and `"consent"` (`given`, `not-applicable`, `unknown`);
2. the dataset's `lineage.json`, defaults for every item: `{"source": ..., "licence": ..., "consent": ...}`;
3. for a folder that `kaiga data scenes` rendered before items carried lineage, its `manifest.json`: the
   renderer's sprites are Noto Color Emoji, whose images are Apache-2.0, and a render shows nobody.
An item with none of these has no licence: `kaiga train` refuses it unless `--allow-unlicensed`
(kaiga/data/admit.py). "unknown", "none" and "NOASSERTION" count as no licence.

Consent is about the people an image shows: `given` (they agreed to training), `unknown`, or
`not-applicable` (nobody is shown: a synthetic render). Missing consent is `unknown`.

Example:
    >>> Lineage(licence="CC-BY-4.0").licensed, Lineage(licence="unknown").licensed
    (True, False)
    >>> SCENES_LINEAGE.consent
    'not-applicable'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from kaiga.data.render import SPRITE_LICENCE

LINEAGE_FILE = "lineage.json"
CONSENT = ("given", "not-applicable", "unknown")
NO_LICENCE = {"", "unknown", "none", "noassertion", "unlicensed"}  # compared lower-case

SCENES_GENERATOR = "kaiga scenes renderer"  # manifest.json's "generator" of a rendered dataset
SCENES_LINEAGE_FIELDS = {
    "source": f"{SCENES_GENERATOR}; sprites from {SPRITE_LICENCE['source']}",
    "licence": SPRITE_LICENCE["image_licence"],  # the emoji images' licence; the font's (OFL) covers the font
    "consent": "not-applicable",  # a procedural render shows no real person
}


class LineageError(ValueError):
    """A lineage field with a value it cannot have, naming where."""


@dataclass(frozen=True)
class Lineage:
    """One item's source, licence and consent (None: not said)."""

    source: str | None = None
    licence: str | None = None
    consent: str = "unknown"

    @property
    def licensed(self) -> bool:
        return self.licence is not None and self.licence.strip().lower() not in NO_LICENCE

    def over(self, default: Lineage) -> Lineage:
        """This item's fields, `default`'s where this one says nothing.

        >>> Lineage(source="me").over(SCENES_LINEAGE).licence
        'Apache-2.0'
        """
        return Lineage(source=self.source if self.source is not None else default.source,
                       licence=self.licence if self.licence is not None else default.licence,
                       consent=self.consent if self.consent != "unknown" else default.consent)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


SCENES_LINEAGE = Lineage(**SCENES_LINEAGE_FIELDS)


def parse(row: dict, where: str) -> Lineage:
    """The lineage fields of one metadata.jsonl line (or of lineage.json), checked.

    >>> parse({"licence": "CC0-1.0", "consent": "given"}, "x").licence
    'CC0-1.0'
    """
    values = {}
    for name in ("source", "licence"):
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            raise LineageError(f"{where}: {name} must be a string (got {value!r})")
        values[name] = value
    consent = row.get("consent", "unknown")
    if consent is None:
        consent = "unknown"
    if consent not in CONSENT:
        raise LineageError(f"{where}: consent must be {', '.join(CONSENT)} (got {consent!r})")
    return Lineage(consent=consent, **values)


def dataset_default(folder: Path) -> Lineage:
    """The lineage every item of `folder` has unless its own line says otherwise (see the module's order)."""
    folder = Path(folder)
    path = folder / LINEAGE_FILE
    default = Lineage()
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LineageError(f"{path}: not readable JSON ({e})") from None
        if not isinstance(data, dict):
            raise LineageError(f"{path}: must be an object such as "
                               '{"source": "my photos", "licence": "CC-BY-4.0", "consent": "given"}')
        default = parse(data, str(path))
    manifest = folder / "manifest.json"
    if manifest.is_file():
        try:
            rendered = json.loads(manifest.read_text(encoding="utf-8")).get("generator") == SCENES_GENERATOR
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            rendered = False  # someone else's manifest: not ours to interpret
        if rendered:
            default = default.over(SCENES_LINEAGE)
    return default

