"""Open the kaiga database: engine, WAL mode for SQLite, migrations applied, sessions.

The default database is a SQLite file in the user's kaiga directory (`$KAIGA_HOME`, see
`kaiga.models.model_home`). SQLite runs in WAL mode so that readers (HTTP requests) never wait for
the writer (the worker finishing a job), with a busy timeout instead of "database is locked" errors.

Example:
    >>> db = open_database("sqlite://")  # in memory
    >>> from kaiga.store.models import Job
    >>> with db.session() as s:
    ...     s.query(Job).count()
    0
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from kaiga.models import model_home

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def default_url() -> str:
    """sqlite:///$KAIGA_HOME/kaiga.db"""
    return f"sqlite:///{model_home() / 'kaiga.db'}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer, nor it them
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL keeps the file consistent
    cur.execute("PRAGMA busy_timeout=10000")  # wait for a lock (ms) rather than fail
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`; a SQLite file's folder is created, an in-memory SQLite is shared by threads."""
    if url.startswith("sqlite"):
        kwargs: dict = {"connect_args": {"check_same_thread": False}}
        path = url.split("///", 1)[1] if "///" in url else ""
        if path in ("", ":memory:"):
            kwargs["poolclass"] = StaticPool  # one connection, else each thread sees its own empty database
        else:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is there already)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection  # env.py migrates through this connection
        command.upgrade(cfg, "head")


class Database:
    """An engine plus a session factory; `session()` commits on success and rolls back on error."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s, s.begin():
            yield s


def open_database(url: str | None = None) -> Database:
    """Open (and create or migrate) the database at `url`, by default `default_url()`."""
    engine = make_engine(url or default_url())
    migrate(engine)
    return Database(engine)
