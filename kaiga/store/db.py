"""Open the kaiga database: engine, WAL mode for SQLite, migrations applied, sessions.

The default database is a SQLite file in the user's kaiga directory (`$KAIGA_HOME`, see
`kaiga.paths.model_home`). SQLite runs in WAL mode so that readers (HTTP requests) never wait for
the writer (the worker finishing a job), with a busy timeout instead of "database is locked" errors.
PostgreSQL is served by psycopg 3: `postgresql://` and `postgres://` URLs are read as
`postgresql+psycopg://` (SQLAlchemy would otherwise look for psycopg2, which kaiga does not install).

Example:
    >>> db = open_database("sqlite://")  # in memory
    >>> from kaiga.store.tables import Job
    >>> with db.session() as s:
    ...     s.query(Job).count()
    0
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from kaiga.paths import model_home

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


def normalise_url(url: str) -> URL:
    """`url` parsed, with PostgreSQL's driver made psycopg 3 unless one is named.

    >>> normalise_url("postgres://u:p@db/kaiga").render_as_string(hide_password=False)
    'postgresql+psycopg://u:p@db/kaiga'
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


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
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "postgresql":
        # pre-ping: a connection the server closed (restart, idle timeout) is replaced, not handed out;
        # connect_timeout: an unreachable server is an error in seconds, not a hang
        return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    return create_engine(parsed, pool_pre_ping=True)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`, by default the newest (a no-op when it is there already)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        _lock_for_migration(connection)
        cfg.attributes["connection"] = connection  # env.py migrates through this connection
        command.upgrade(cfg, revision)


# Any constant will do: it names kaiga's migration lock among the database's advisory locks.
_PG_MIGRATION_LOCK = 0x6B61696761


def _lock_for_migration(connection) -> None:
    """Take the database's write lock before reading the schema version, held until the migration commits.

    Two processes opening a fresh database at once (a server and its worker, `kaiga campaign run` and a
    reader) would both see no tables and both create them: the second fails with "table jobs already
    exists". With the lock the second waits, then finds the schema at head and does nothing.
    SQLite: BEGIN IMMEDIATE (pysqlite opens no transaction before DDL by itself; busy_timeout bounds the
    wait). PostgreSQL: a transaction-scoped advisory lock.
    """
    backend = connection.engine.url.get_backend_name()
    if backend == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif backend == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")


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
