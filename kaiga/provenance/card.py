"""Model cards: what trained a model, by source, licence and consent, with counts.

A model folder's `card.json` (beside kaiga.json) lists each dataset that trained it once (a dataset is
counted once however many runs used it: keyed by name, told apart by its metadata.jsonl fingerprint),
the runs in order with the dataset each used, and the totals over the datasets. A fine-tune's card starts
from the card of the model it continued. The card's hash (the first 10 hex digits of SHA-256 over the
file, as the model hash is) goes into every generation record, so an image names the card, and so the
licences, of what made it.

Example:
    >>> data = {"name": "d", "items": 3, "sources": {"me": 3}, "licences": {"CC0-1.0": 3},
    ...         "consent": {"given": 3}, "opted_out": 1, "unlicensed_allowed": 0}
    >>> card = run_card([], data, stage="vae", family="vae")
    >>> card["totals"]["licences"], card["runs"]
    ({'CC0-1.0': 3}, [{'stage': 'vae', 'data': 'd'}])
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

CARD_FILE = "card.json"
CARD_VERSION = 1
COUNTED = ("sources", "licences", "consent")  # per-dataset {value: items}
SUMMED = ("items", "opted_out", "unlicensed_allowed")


def read_card(model: Path) -> dict | None:
    """The card of a model folder, or None when it has none (a single-file checkpoint, a model from before cards)."""
    path = Path(model) / CARD_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def card_hash(model: Path) -> str | None:
    """10 hex digits of SHA-256 over the model folder's card.json; None when there is none."""
    path = Path(model) / CARD_FILE
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def totals(datasets: dict[str, dict]) -> dict:
    """Counts summed over the datasets (each counted once)."""
    out: dict = {key: sum(d.get(key, 0) for d in datasets.values()) for key in SUMMED}
    for key in COUNTED:
        c: Counter = Counter()
        for d in datasets.values():
            c.update(d.get(key, {}))
        out[key] = dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def run_card(previous: list[dict], data: dict, stage: str, family: str) -> dict:
    """The card of a model made by one run on `data` (Admission.data_block), continuing the models whose
    cards are `previous` (a fine-tune's start, a diffusion model's autoencoder): their datasets and runs first."""
    datasets: dict[str, dict] = {}
    runs: list[dict] = []
    for card in previous:
        for key, d in card.get("datasets", {}).items():
            datasets.setdefault(key, d)
        runs += [r for r in card.get("runs", []) if r not in runs]
    key = _key(datasets, data)
    datasets.setdefault(key, data)
    runs.append({"stage": stage, "data": key})
    return {"card": CARD_VERSION, "family": family, "datasets": datasets, "runs": runs, "totals": totals(datasets)}


def _key(datasets: dict[str, dict], data: dict) -> str:
    """The dataset's name, or name@fingerprint when another dataset of that name is already listed."""
    name = data["name"]
    known = datasets.get(name)
    if known is None or known.get("fingerprint") == data.get("fingerprint"):
        return name
    return f"{name}@{data.get('fingerprint')}"


def write_card(model: Path, card: dict) -> Path:
    """Write `card` as the model folder's card.json (sorted keys, so the same card has the same hash)."""
    path = Path(model) / CARD_FILE
    path.write_text(json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def describe(card: dict) -> list[str]:
    """A card as lines for people (`kaiga card`)."""
    t = card.get("totals", {})
    lines = [f"Trained on {t.get('items', 0)} items from {len(card.get('datasets', {}))} dataset(s); "
             f"{t.get('opted_out', 0)} opted out, {t.get('unlicensed_allowed', 0)} without a licence"]
    for key in COUNTED:
        lines.append(f"{key.capitalize()}: " + ", ".join(f"{v} ({n})" for v, n in t.get(key, {}).items()))
    for key, d in card.get("datasets", {}).items():
        lines.append(f"Dataset {key}: {d.get('items', 0)} items, licences "
                     + ", ".join(f"{v} ({n})" for v, n in d.get("licences", {}).items())
                     + (f" - {d['note']}" if d.get("note") else ""))
    lines.append("Runs: " + ", ".join(f"{r['stage']} on {r['data']}" for r in card.get("runs", [])))
    return lines
