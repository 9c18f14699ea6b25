"""What people said of images, as scores a taste model learns from.

A person's judgements are their reviews (kaiga/store/reviews.py: under their reviewer name, in the CLI, the
API and the UI) and, for the person who keeps the gallery (`local_person`: $USER, the CLI's reviewer by
default), the gallery's own 1-5 ratings and favourites. Each judged image gets one score on one scale: a 1-5
rating as given; otherwise approved 4, rejected 2, and a star (or a favourite) one more, up to 5. Only the order of
the scores matters: the model learns from the pairs where a person scored one image above another.

Example:
    >>> from kaiga.store.reviews import ReviewView
    >>> from datetime import datetime
    >>> at = datetime(2026, 12, 3)
    >>> [score(ReviewView(1, "ann", d, s, None, at, r)) for d, s, r in
    ...  [("approved", True, None), ("rejected", False, None), (None, True, None), ("approved", False, 2),
    ...   (None, False, None)]]
    [5, 2, 4, 2, None]
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select

from kaiga.store.db import Database
from kaiga.store.reviews import ReviewView, review_view
from kaiga.store.tables import Image, Review
from kaiga.taste.features import feature_names, features
from kaiga.taste.model import TasteModel

DECISION_SCORES = {"approved": 4, "rejected": 2}
MIN_JUDGEMENTS = 2  # the fewest a taste can be told from (one pair); 20 are enough (docs/CAMPAIGNS.md)


def score(review: ReviewView) -> int | None:
    """The review as one 1-5 score, or None when it says nothing of how much the person liked the image."""
    if review.rating is not None:
        return review.rating
    base = DECISION_SCORES.get(review.decision, 3)
    if review.star:
        return min(5, base + 1)
    return base if review.decision else None


def local_person() -> str:
    return getpass.getuser()


@dataclass(frozen=True)
class Judgements:
    """Every person's judged images: person -> {image id: score}, and where each image's file is."""

    scores: dict[str, dict[int, int]]
    paths: dict[int, Path]

    @classmethod
    def read(cls, db: Database, gallery_dir: Path) -> "Judgements":
        scores: dict[str, dict[int, int]] = {}
        paths: dict[int, Path] = {}
        with db.session() as s:
            for row, path in s.execute(select(Review, Image.path).join(Image, Image.id == Review.image_id)):
                if (value := score(review_view(row))) is not None:
                    scores.setdefault(row.reviewer, {})[row.image_id] = value
                    paths[row.image_id] = Path(gallery_dir) / path
            marked = s.execute(select(Image.id, Image.path, Image.rating, Image.favourite)
                               .where((Image.rating.is_not(None)) | Image.favourite))
            for image_id, path, rating, favourite in marked:
                mine = scores.setdefault(local_person(), {})
                mine.setdefault(image_id, rating if rating is not None else 4)  # a review said more: it stays
                paths[image_id] = Path(gallery_dir) / path
        return cls(scores, paths)

    def count(self, person: str) -> int:
        return len(self.scores.get(person, {}))

    def too_few(self, person: str) -> str | None:
        """Why `person`'s taste cannot be learned yet (they judged fewer than MIN_JUDGEMENTS images), or None."""
        if (n := self.count(person)) >= MIN_JUDGEMENTS:
            return None
        return (f"{person} has judged {n} image(s); rate, approve, reject or star a few first "
                "(20 are enough to learn a taste)")

    def taste(self) -> TasteModel:
        """The shared taste and each person's, learned from these judgements (the images read by the judge)."""
        ids = sorted(i for i, path in self.paths.items() if path.is_file())  # a deleted file judges nothing
        rows = dict(zip(ids, features([PILImage.open(self.paths[i]) for i in ids]))) if ids else {}
        judged = {}
        for person, marks in self.scores.items():
            kept = [i for i in marks if i in rows]
            if kept:
                judged[person] = (np.stack([rows[i] for i in kept]), np.array([marks[i] for i in kept], np.float64))
        return TasteModel.learn(feature_names(), judged)
