"""`ServerSettings`: everything the server is configured with, typed and checked in one place.

Example:
    >>> s = ServerSettings(data_dir="/tmp/kaiga-example")
    >>> s.database_url(), s.gallery_dir().name
    ('sqlite:////tmp/kaiga-example/kaiga.db', 'gallery')
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kaiga.paths import model_home


class ServerSettings(BaseModel):
    """How one server process runs. `None` means "the default" (described per field)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    db_url: str | None = None  # any SQLAlchemy URL; default: SQLite at <data_dir>/kaiga.db
    data_dir: Path | None = None  # database and gallery; default: $KAIGA_HOME (the user data dir)
    require_keys: bool = False  # every API route needs an API key (kaiga keys create); see kaiga.server.auth
    api_auth: tuple[str, ...] = ()  # "user:password" pairs for HTTP Basic auth, as A1111's --api-auth
    default_model: str | None = None  # name or path; default: the bundled default model
    extra_models: tuple[Path, ...] = ()  # more model paths to serve beside bundled and user models
    max_queued: Annotated[int, Field(ge=1, le=1_000_000)] = 64  # unfinished jobs before 429
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3  # starts of a job before a crash fails it
    wait_timeout_s: Annotated[float, Field(gt=0)] = 3600.0  # a synchronous request waits this long for its job
    run_worker: bool = True  # False: this process only queues (another process runs the jobs)
    device: str | None = None  # cuda, mps or cpu; default: the best available
    precision: Literal["fp32", "bf16"] = "fp32"  # the workers' (kaiga/pipelines/precision.py)
    backend: Literal["eager", "jit"] = "eager"  # the workers' and previews' UNet (kaiga/families/diffusion/traced.py)
    batch_size: Annotated[int, Field(ge=1, le=64)] = 16
    batch_jobs: bool = True  # queued jobs that differ only in their seeds run together (kaiga.worker.batch_key)
    poll_s: Annotated[float, Field(gt=0, le=60)] = 0.5  # how often waiters and the worker look at the database
    # /v1/live (kaiga.live): how long typing must rest before a frame starts, and the prompt similarity at which
    # a frame is skipped (above 1: none is)
    live_debounce_ms: Annotated[int, Field(ge=0, le=5000)] = 80
    live_similarity: Annotated[float, Field(ge=0, le=1.01)] = 0.995
    live_supersede: bool = True  # abandon a frame being drawn when a newer message comes
    live_warm_start: Annotated[float, Field(ge=0, le=0.95)] = 0.0  # redraw the previous frame at this strength; 0: off

    @field_validator("api_auth")
    @classmethod
    def _pairs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for pair in v:
            if ":" not in pair or not pair.split(":", 1)[0] or not pair.split(":", 1)[1]:
                raise ValueError("each entry must be user:password")
        return v

    def home(self) -> Path:
        return Path(self.data_dir) if self.data_dir is not None else model_home()

    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home() / 'kaiga.db'}"

    def gallery_dir(self) -> Path:
        return self.home() / "gallery"

    def uploads_dir(self) -> Path:
        """Init images and masks of edit requests, by content hash (kaiga.store.uploads)."""
        return self.home() / "uploads"

    @property
    def has_auth(self) -> bool:
        return self.require_keys or bool(self.api_auth)


def is_loopback(host: str) -> bool:
    """Whether binding `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve anywhere
        return False
