"""What may train a model: the one check every training command runs before any work.

`admit(folder)` reads a dataset with its lineage (kaiga/data/lineage.py), removes the items on the
opt-out list (matched by perceptual hash: kaiga/data/optout.py; `$KAIGA_HOME/opt-out.txt` unless another
list is given), then refuses the run if any item left has no licence, unless `allow_unlicensed`. What
it returns is the list to train on and the counts the model's card records (`data_block`).
`kaiga train` runs it for every family and stage; a fine-tuning command calls the same function.

Example:
    >>> import tempfile
    >>> from kaiga.data.dataset import write_scenes
    >>> a = admit(write_scenes(tempfile.mkdtemp(), n=3))
    >>> len(a.examples), a.data_block()["licences"]
    (3, {'Apache-2.0': 3})
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kaiga.data.dataset import METADATA, DatasetError, Example, read_metadata
from kaiga.data.optout import OptOutList, default_list_path, image_hash

SHOWN_NAMES = 3  # file names a refusal lists before "..."
UNLICENSED = "none"  # the card's licence key for items trained without one (--allow-unlicensed)


class UnlicensedError(DatasetError):
    """Items without a licence, and no `--allow-unlicensed`."""


@dataclass
class Admission:
    """The items a run trains on, and what was left out or let in without a licence."""

    folder: Path
    examples: list[Example]  # kept, in the dataset's order
    opted_out: list[Path] = field(default_factory=list)
    unlicensed_allowed: int = 0
    opt_out_list: Path | None = None

    def data_block(self) -> dict:
        """The dataset as the model card lists it: counts by source, licence and consent of what trained."""
        return {
            "name": self.folder.name,
            "fingerprint": fingerprint(self.folder, self.examples),
            "items": len(self.examples),
            "sources": _counts(ex.lineage.source or "unknown" for ex in self.examples),
            "licences": _counts(ex.lineage.licence if ex.lineage.licensed else UNLICENSED for ex in self.examples),
            "consent": _counts(ex.lineage.consent for ex in self.examples),
            "opted_out": len(self.opted_out),
            "unlicensed_allowed": self.unlicensed_allowed,
        }

    def summary(self) -> str:
        """One line for the person who started the run, or "" when nothing was left out or let in."""
        parts = []
        if self.opted_out:
            parts.append(f"{len(self.opted_out)} item(s) on the opt-out list {self.opt_out_list} left out "
                         f"({_names(self.opted_out)})")
        if self.unlicensed_allowed:
            parts.append(f"{self.unlicensed_allowed} item(s) without a licence trained (--allow-unlicensed)")
        return "; ".join(parts)


def _counts(values) -> dict[str, int]:
    return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def _names(paths: list[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:SHOWN_NAMES])
    return shown + (", ..." if len(paths) > SHOWN_NAMES else "")


def fingerprint(folder: Path, kept: list[Example]) -> str:
    """12 hex digits of SHA-256 over the dataset's metadata.jsonl and the items kept: which data trained, even
    under another folder name (the same folder with another opt-out list is other data)."""
    h = hashlib.sha256((Path(folder) / METADATA).read_bytes())
    h.update("\n".join(ex.path.name for ex in kept).encode())
    return h.hexdigest()[:12]


def admit(folder: Path, allow_unlicensed: bool = False, opt_out: OptOutList | Path | None = None) -> Admission:
    """The dataset `folder` checked for training (DatasetError when it may not train as it is).

    `opt_out`: a list, a list file, or None for `$KAIGA_HOME/opt-out.txt` (no such file: nothing opted out).
    """
    folder = Path(folder)
    examples = read_metadata(folder)
    if opt_out is None:
        opt_out = OptOutList.read(default_list_path(), required=False)
    elif not isinstance(opt_out, OptOutList):
        opt_out = OptOutList.read(opt_out)
    opted_out: list[Path] = []
    if len(opt_out):  # hashing every image costs ~1 ms each: only when a list has entries
        hit = opt_out.matching([image_hash(ex.path) for ex in examples])
        opted_out = [ex.path for ex, h in zip(examples, hit) if h]
        examples = [ex for ex, h in zip(examples, hit) if not h]
        if not examples:
            raise DatasetError(f"{folder}: every item is on the opt-out list {opt_out.path}: nothing left to train on")
    unlicensed = [ex.path for ex in examples if not ex.lineage.licensed]
    if unlicensed and not allow_unlicensed:
        raise UnlicensedError(
            f"{folder}: {len(unlicensed)} of {len(examples)} items have no licence ({_names(unlicensed)}): give each a "
            '"licence" in metadata.jsonl or a default in lineage.json ({"licence": "CC-BY-4.0", ...}), '
            "or pass --allow-unlicensed")
    return Admission(folder, examples, opted_out, len(unlicensed), opt_out.path)
