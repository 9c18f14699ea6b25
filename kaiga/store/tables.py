"""The tables: images (the gallery), boards and their images, jobs (the queue), campaigns and the
reviews of their images, api_keys.

Every timestamp is UTC. JSON columns hold what other layers define: a job's request is a
`GenerationRequest` dump, an image's record a `GenerationRecord` dump.

Example:
    >>> JobStatus.PENDING.value, JobStatus.PENDING in FINISHED
    ('pending', False)
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Now, in UTC, with its time zone: what every timestamp column holds."""
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator):
    """A timezone-aware timestamp, stored in UTC and always read back with its time zone.

    SQLite keeps no zone (a DateTime column hands back naive values); PostgreSQL's timestamptz does.
    Either way a value read here carries UTC, so its `isoformat()` ends in +00:00 and `timestamp()`
    never reads it as local time. A naive value written is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class JobStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})


class Image(Base):
    """One stored image: its PNG lives at `path` (relative to the gallery folder), named by its hash."""

    __tablename__ = "images"
    # SQLite would reuse the largest id after that row is deleted: an id a client holds must never
    # come to name another image (migration 0002)
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # of the PNG bytes: stored once
    path: Mapped[str] = mapped_column(String(255))
    record: Mapped[dict] = mapped_column(JSON)  # GenerationRecord
    prompt: Mapped[str] = mapped_column(Text)  # copied out of the record, for search
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    favourite: Mapped[bool] = mapped_column(Boolean, default=False)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1-5
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    # None: never flagged; "held": flagged by the safety filter, out of the default listing until "approved"
    review: Mapped[str | None] = mapped_column(String(16), nullable=True)


class Board(Base):
    """A named collection of images, owned by one user (the API caller's name); names are unique per owner."""

    __tablename__ = "boards"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_boards_owner_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(100))
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class BoardImage(Base):
    """An image's membership of a board; goes with either of them."""

    __tablename__ = "board_images"

    board_id: Mapped[int] = mapped_column(ForeignKey("boards.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True,
                                          index=True)  # "which boards hold this image"
    added: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Job(Base):
    """One generation request on its way through the queue."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_queue", "status", "priority", "created"),
                      Index("ix_jobs_user_started", "user", "started"),
                      Index("ix_jobs_model_queue", "model", "status", "priority", "created"),
                      Index("ix_jobs_campaign", "campaign", "status"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING.value, index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher runs first
    user: Mapped[str] = mapped_column(String(255), default="", index=True)  # fairness is per user
    model: Mapped[str] = mapped_column(String(255), default="", server_default="")  # whose worker runs it; "": the default's
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # a reused idempotency key must carry the same request
    request: Mapped[dict] = mapped_column(JSON)  # GenerationRequest, seed always filled in
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # times a worker started it
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    result_image_ids: Mapped[list | None] = mapped_column(JSON, nullable=True)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    campaign: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the campaign whose cell it is
    heartbeat: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # its worker last alive (a lease)


class Campaign(Base):
    """A campaign's plan (kaiga.campaigns.plan); its cells are the jobs that name it."""

    __tablename__ = "campaigns"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    plan: Mapped[dict] = mapped_column(JSON)  # the plan as parsed (CampaignPlan.model_dump)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Review(Base):
    """One reviewer's verdict on one image (a campaign's): approved or rejected (or neither yet), a star, a note, a
    1-5 rating."""

    __tablename__ = "reviews"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(255), primary_key=True)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)  # "approved", "rejected" or None
    star: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1-5, this reviewer's
    updated: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApiKey(Base):
    """A bearer API key, stored as the SHA-256 of the key (see `kaiga.store.keys` for why not scrypt)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, to tell keys apart
    name: Mapped[str] = mapped_column(String(255), default="")
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
