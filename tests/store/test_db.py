"""The database opens, migrates idempotently, SQLite runs in WAL mode, and the migrations make the models' schema."""

import subprocess
import sys
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from kaiga.store.db import default_url, make_engine, migrate, normalise_url, open_database
from kaiga.store.tables import Base


def test_sqlite_file_in_wal_mode_with_all_tables(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'k.db'}")
    with db.engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0008"
    assert {"images", "jobs", "api_keys", "boards", "board_images", "campaigns", "reviews"} <= set(inspect(db.engine).get_table_names())


def test_migrating_again_is_a_no_op(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    open_database(url)
    db = open_database(url)  # a restart
    with db.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_default_database_lives_in_kaiga_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KAIGA_HOME", str(tmp_path))
    assert default_url() == f"sqlite:///{tmp_path / 'kaiga.db'}"


def test_alembic_head_makes_exactly_the_models_schema(database_url):
    db = open_database(database_url)
    with db.engine.connect() as c:
        assert compare_metadata(MigrationContext.configure(c), Base.metadata) == []
    db.engine.dispose()


def test_postgres_urls_use_psycopg_3():
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert make_engine("postgres://u:p@127.0.0.1:1/db").dialect.driver == "psycopg"


def test_an_unreachable_postgres_is_a_prompt_error():
    with pytest.raises(Exception, match="127.0.0.1"):
        open_database("postgresql://nobody:x@127.0.0.1:1/none")  # port 1: nothing listens


def test_upgrading_a_0001_database_keeps_its_images_and_never_reuses_an_id(database_url):
    engine = make_engine(database_url)
    migrate(engine, "0001")
    row = "(:id, :sha, 'p.png', '{}', 'a red car', '2026-01-01 00:00:00+00', :fav, NULL, NULL)"
    with engine.begin() as c:
        for i, fav in ((1, False), (2, True)):
            c.execute(text(f"INSERT INTO images (id, sha256, path, record, prompt, created, favourite, rating, job_id) "
                           f"VALUES {row}"), {"id": i, "sha": f"{i:064x}", "fav": fav})
        if engine.dialect.name == "postgresql":  # rows inserted with explicit ids: move the sequence past them
            c.execute(text("SELECT setval('images_id_seq', 2)"))
    engine.dispose()
    db = open_database(database_url)  # migrates to the head: on SQLite, rebuilds the table
    with db.engine.begin() as c:
        assert c.execute(text("SELECT id, favourite FROM images ORDER BY id")).all() == [(1, False), (2, True)]
        c.execute(text("DELETE FROM images WHERE id = 2"))  # the newest image...
        c.execute(text(f"INSERT INTO images (sha256, path, record, prompt, created, favourite) "
                       f"VALUES ('{3:064x}', 'p.png', '{{}}', 'x', '2026-01-01 00:00:00+00', false)"))
        assert c.execute(text("SELECT max(id) FROM images")).scalar() == 3  # ...does not give its id away
    db.engine.dispose()


def test_jobs_queued_before_0003_go_to_the_default_models_worker(database_url):
    from kaiga.store.jobs import JobQueue

    engine = make_engine(database_url)
    migrate(engine, "0002")
    with engine.begin() as c:
        c.execute(text("INSERT INTO jobs (id, status, priority, \"user\", request_hash, request, progress, attempts, "
                       "cancel_requested, created) VALUES ('j1', 'pending', 0, 'ann', 'h', '{\"prompt\": \"a car\"}', "
                       "0, 0, false, '2026-01-01 00:00:00+00')"))
    engine.dispose()
    queue = JobQueue(open_database(database_url))
    assert queue.claim(("some-model",)) is None
    assert queue.claim(("default-model", "")).id == "j1"
    queue.db.engine.dispose()


_MIGRATE_AT = ("import sys, time; from kaiga.store.db import make_engine, migrate; e = make_engine(sys.argv[1]); "
               "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); migrate(e)")


def test_processes_opening_a_fresh_database_at_once_migrate_it_once(database_url):
    """A server, its worker and a CLI started together: each waits for the migration lock, none fails with
    "table jobs already exists" (CI found the race: 2 of 6 tries failed without the lock)."""
    start = time.time() + 3  # every process imported and waiting, then all migrate in the same instant
    procs = [subprocess.Popen([sys.executable, "-c", _MIGRATE_AT, database_url, str(start)], stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(errors)
    db = open_database(database_url)
    with db.engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0008"
    db.engine.dispose()
