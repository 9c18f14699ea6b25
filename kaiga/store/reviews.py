"""Reviews of a campaign's images: per image and reviewer, a decision (approved or rejected), a star, a note and a
1-5 rating (what kaiga/taste/ learns a person's taste from).

Several people review the same campaign, each under their own name; an image counts as approved when someone
approved it and nobody rejected it (`is_approved`), which is what `kaiga campaign export` writes.

Example:
    >>> from kaiga.store.db import open_database
    >>> from kaiga.store.tables import Image
    >>> db = open_database("sqlite://")
    >>> with db.session() as s:
    ...     s.add(Image(id=1, sha256="0" * 64, path="x.png", record={}, prompt="a red car"))
    >>> reviews = Reviews(db)
    >>> reviews.set(1, "ann", decision="approved", star=True).decision
    'approved'
    >>> reviews.set(1, "bob", note="the sky is too dark", rating=2).note
    'the sky is too dark'
    >>> is_approved(reviews.of_images([1])[1]), [r.reviewer for r in reviews.of_images([1])[1]]
    (True, ['ann', 'bob'])
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from kaiga.store.db import Database
from kaiga.store.tables import Review, utcnow

DECISIONS = ("approved", "rejected")
RATINGS = (1, 2, 3, 4, 5)
UNSET = object()  # a field `set` leaves as it was


@dataclass(frozen=True)
class ReviewView:
    image_id: int
    reviewer: str
    decision: str | None
    star: bool
    note: str | None
    updated: datetime
    rating: int | None = None  # 1-5

    def to_dict(self) -> dict:
        return {"reviewer": self.reviewer, "decision": self.decision, "star": self.star, "note": self.note,
                "rating": self.rating, "updated": self.updated.isoformat()}


def is_approved(reviews: list[ReviewView]) -> bool:
    """Approved by someone, rejected by nobody."""
    decisions = {r.decision for r in reviews}
    return "approved" in decisions and "rejected" not in decisions


class Reviews:
    def __init__(self, db: Database):
        self.db = db

    def set(self, image_id: int, reviewer: str, *, decision=UNSET, star=UNSET, note=UNSET,
            rating=UNSET) -> ReviewView:
        """Record what `reviewer` says of the image (the fields given; the others as they were)."""
        if decision is not UNSET and decision not in (*DECISIONS, None):
            raise ValueError(f"decision: one of {', '.join(DECISIONS)} or none (got {decision!r})")
        if rating is not UNSET and rating not in (*RATINGS, None):
            raise ValueError(f"rating: 1 to 5 or none (got {rating!r})")
        with self.db.session() as s:
            row = s.get(Review, (image_id, reviewer))
            if row is None:
                row = Review(image_id=image_id, reviewer=reviewer, decision=None, star=False, note=None)
                s.add(row)
            if decision is not UNSET:
                row.decision = decision
            if star is not UNSET:
                row.star = bool(star)
            if note is not UNSET:
                row.note = note or None
            if rating is not UNSET:
                row.rating = rating
            row.updated = utcnow()
            s.flush()
            return review_view(row)

    def of_images(self, image_ids: list[int]) -> dict[int, list[ReviewView]]:
        """Each image's reviews (every image id given is a key), by reviewer name."""
        out: dict[int, list[ReviewView]] = {i: [] for i in image_ids}
        with self.db.session() as s:
            for row in s.scalars(select(Review).where(Review.image_id.in_(image_ids))
                                 .order_by(Review.image_id, Review.reviewer)):
                out[row.image_id].append(review_view(row))
        return out


def review_view(row: Review) -> ReviewView:
    return ReviewView(row.image_id, row.reviewer, row.decision, bool(row.star), row.note, row.updated, row.rating)
