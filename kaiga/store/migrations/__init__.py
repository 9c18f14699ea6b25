"""Alembic migrations of the kaiga database, applied by `kaiga.store.db.migrate` on every open."""
