"""Write card.json for the shipped models (kaiga/bundled/scenes-*), from what their kaiga.json says.

Usage:
    python scripts/make_bundled_cards.py

They were trained before cards existed, so their cards are derived, and say so: each training run's
"data" names a scenes dataset (the scenes-diffusion autoencoder and first denoiser run name none; their
kaiga.json's "data" note says they used the 40,000 pair-heavy renders, scenes-40k-pairs), and the scripts
that rendered those datasets (scripts/train_gpu.sh, scripts/finetune_diffusion_pairs.sh) give their size
and seed. Every item is a render, so its lineage is the renderer's (kaiga/data/lineage.py SCENES_LINEAGE).
The weights are not touched.
"""

from __future__ import annotations

import json
from pathlib import Path

from kaiga.data.lineage import SCENES_LINEAGE
from kaiga.paths import BUNDLED_DIR
from kaiga.provenance.card import run_card, write_card

# Dataset name -> (items, how it was rendered), from the scripts that made them.
DATASETS = {
    "scenes-40k-pairs": (40_000, "kaiga data scenes --n 40000 --seed 3 --layouts 0.35,0.2,0.45 --captions 6 "
                                 "(scripts/train_gpu.sh)"),
    "scenes-20k-pairs7": (20_000, "kaiga data scenes --n 20000 --seed 7 --layouts 0.15,0.15,0.7 --captions 6 "
                                  "(scripts/finetune_diffusion_pairs.sh)"),
}
UNNAMED = "scenes-40k-pairs"  # the runs whose record names no data: kaiga.json's "data" note says which
NOTE = ("derived by scripts/make_bundled_cards.py from kaiga.json's training runs and the renderer's manifest; "
        "trained before kaiga recorded lineage at training time")


def data_block(name: str) -> dict:
    items, made = DATASETS[name]
    lineage = SCENES_LINEAGE
    return {"name": name, "fingerprint": None, "items": items, "sources": {lineage.source: items},
            "licences": {lineage.licence: items}, "consent": {lineage.consent: items}, "opted_out": 0,
            "unlicensed_allowed": 0, "rendered_by": made, "note": NOTE}


def bundled_card(folder: Path) -> dict:
    info = json.loads((folder / "kaiga.json").read_text())
    card: dict | None = None
    for run in info["training"]["runs"]:
        card = run_card([card] if card else [], data_block(run.get("data") or UNNAMED), run["stage"],
                        info.get("family", "diffusion"))
    return card


def main():
    for folder in sorted(BUNDLED_DIR.glob("scenes-*")):
        if (folder / "kaiga.json").is_file():  # scenes-readout is the judge, not a generator
            print(write_card(folder, bundled_card(folder)))


if __name__ == "__main__":
    main()
