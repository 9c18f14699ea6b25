"""A campaign's images with their reviews, and the export of what was approved (issue 22, item 2).

Every made cell's image, with the cell's values and every reviewer's decision, star and note
(kaiga/store/reviews.py). `export_images` copies the approved ones (an image someone approved and nobody
rejected), or every made one, as the gallery stores them — record, watermark and content credentials inside —
under names that say the cell, with a manifest of them in CSV and JSON.

Example:
    >>> export_name(7, {"colour": "red", "scene": "in the city", "seed": 1}, "ab12cd34ef")
    '0007-red-in-the-city-1-ab12cd34.png'
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from kaiga.campaigns.plan import CampaignCell, CampaignPlan
from kaiga.campaigns.runner import status
from kaiga.store.gallery import Gallery, ImageView
from kaiga.store.jobs import JobQueue
from kaiga.store.reviews import Reviews, ReviewView, is_approved


@dataclass(frozen=True)
class CampaignImage:
    cell: CampaignCell
    image_id: int
    path: Path  # the stored file
    sha256: str
    reviews: list[ReviewView]
    view: ImageView | None = None  # the gallery's row, as read with the rest

    @property
    def approved(self) -> bool:
        return is_approved(self.reviews)

    def to_dict(self) -> dict:
        decided = {d: [r.reviewer for r in self.reviews if r.decision == d] for d in ("approved", "rejected")}
        return {"image_id": self.image_id, "cell": self.cell.index, "values": self.cell.values,
                "sha256": self.sha256, "approved": self.approved, "approved_by": decided["approved"],
                "rejected_by": decided["rejected"], "starred_by": [r.reviewer for r in self.reviews if r.star],
                "notes": {r.reviewer: r.note for r in self.reviews if r.note}}


def campaign_images(queue: JobQueue, gallery: Gallery, plan: CampaignPlan,
                    cells: list[CampaignCell]) -> list[CampaignImage]:
    """Every made cell's image, in the plan's cell order, with its reviews."""
    made = status(queue, plan, cells).images
    by_index = {c.index: c for c in cells}
    ids = [ids[0] for _, ids in sorted(made.items())]
    reviews = Reviews(gallery.db).of_images(ids)
    out = []
    for index, image_ids in sorted(made.items()):
        row = gallery.image(image_ids[0])
        out.append(CampaignImage(by_index[index], row.id, gallery.folder / row.path, row.sha256, reviews[row.id], row))
    return out


def export_name(index: int, values: dict, sha256: str) -> str:
    words = "-".join(re.sub(r"[^a-z0-9]+", "-", str(v).lower()).strip("-") for v in values.values())
    return f"{index:04d}-{words[:80].strip('-')}-{sha256[:8]}.png"


def export_images(images: list[CampaignImage], folder: Path, every: bool = False) -> list[dict]:
    """Copy the approved images (every made one with `every`) into `folder` with manifest.csv and manifest.json;
    returns the manifest's rows."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for image in images:
        if not (every or image.approved):
            continue
        name = export_name(image.cell.index, image.cell.values, image.sha256)
        shutil.copyfile(image.path, folder / name)
        rows.append({"file": name, **image.to_dict()})
    (folder / "manifest.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    axes = list(images[0].cell.values) if images else []
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "image_id", "cell", *axes, "sha256", "approved", "approved_by", "rejected_by",
                         "starred_by", "notes"])
        for row in rows:
            writer.writerow([row["file"], row["image_id"], row["cell"], *(row["values"].get(a) for a in axes),
                             row["sha256"], row["approved"], ";".join(row["approved_by"]), ";".join(row["rejected_by"]),
                             ";".join(row["starred_by"]), json.dumps(row["notes"], ensure_ascii=False)])
    return rows
