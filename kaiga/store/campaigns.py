"""Campaign plans by name (the `campaigns` table); a campaign's cells are its jobs (kaiga/store/jobs.py).

Example:
    >>> from kaiga.store.db import open_database
    >>> plans = CampaignPlans(open_database("sqlite://"))
    >>> plans.save("ad", {"prompt": "a {colour} car", "axes": {"colour": ["red"]}})
    >>> plans.get("ad")["axes"], plans.get("other"), plans.names()
    ({'colour': ['red']}, None, ['ad'])
"""

from __future__ import annotations

from sqlalchemy import select

from kaiga.store.db import Database
from kaiga.store.tables import Campaign, utcnow


class CampaignPlans:
    def __init__(self, db: Database):
        self.db = db

    def save(self, name: str, plan: dict) -> None:
        """Store the plan under `name`, replacing an earlier one (a plan may grow between runs)."""
        with self.db.session() as s:
            row = s.get(Campaign, name)
            if row is None:
                s.add(Campaign(name=name, plan=plan, created=utcnow(), updated=utcnow()))
            else:
                row.plan, row.updated = plan, utcnow()

    def get(self, name: str) -> dict | None:
        with self.db.session() as s:
            row = s.get(Campaign, name)
            return dict(row.plan) if row is not None else None

    def names(self) -> list[str]:
        with self.db.session() as s:
            return list(s.scalars(select(Campaign.name).order_by(Campaign.name)))
