"""Shared fixtures: tiny models saved in the real formats, an isolated KAIGA_HOME, and database URLs."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("KAIGA_HOME", str(tmp_path_factory.mktemp("kaiga_home")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random latent diffusion model in the diffusers folder layout."""
    from kaiga.families.diffusion.model import LatentDiffusion, tiny_config

    torch.manual_seed(0)
    return LatentDiffusion.create(tiny_config()).save(tmp_path_factory.mktemp("models") / "tiny-diffusion")


@pytest.fixture(scope="session")
def tiny_scenes(tmp_path_factory):
    """16 scenes renders in the training dataset format."""
    from kaiga.data.dataset import write_scenes

    return write_scenes(tmp_path_factory.mktemp("data") / "scenes", n=16, seed=3)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database: a SQLite file, or a schema of its own on $KAIGA_TEST_POSTGRES_URL.

    The URL is $KAIGA_TEST_POSTGRES_URL or else the one `bash scripts/setup.sh --test` wrote to
    .venv/kaiga-test-postgres-url. The PostgreSQL case is skipped when there is neither, but fails when
    one is given and the server cannot be reached: CI must not pass by skipping.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kaiga.db'}"
        return
    recorded = Path(__file__).resolve().parent.parent / ".venv" / "kaiga-test-postgres-url"
    base = os.environ.get("KAIGA_TEST_POSTGRES_URL") or (recorded.read_text().strip() if recorded.is_file() else "")
    if not base:
        pytest.skip("no PostgreSQL for the tests: run `bash scripts/setup.sh --test` or set KAIGA_TEST_POSTGRES_URL")
    from sqlalchemy import text

    from kaiga.store.db import make_engine, normalise_url

    admin = make_engine(base)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as e:  # unreachable, bad credentials, ...: fail, never skip
        admin.dispose()
        pytest.fail(f"KAIGA_TEST_POSTGRES_URL is set but PostgreSQL is not usable: {type(e).__name__}: {e}")
    url = normalise_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as c:
        c.execute(text("SET LOCAL lock_timeout = '20s'"))  # a test's leaked transaction: an error, not a hang
        c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()
