"""The database opens, migrates idempotently, and SQLite runs in WAL mode."""

from sqlalchemy import inspect, text

from kaiga.store.db import default_url, open_database


def test_sqlite_file_in_wal_mode_with_all_tables(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'k.db'}")
    with db.engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    assert {"images", "jobs", "api_keys"} <= set(inspect(db.engine).get_table_names())


def test_migrating_again_is_a_no_op(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    open_database(url)
    db = open_database(url)  # a restart
    with db.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_default_database_lives_in_kaiga_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KAIGA_HOME", str(tmp_path))
    assert default_url() == f"sqlite:///{tmp_path / 'kaiga.db'}"
