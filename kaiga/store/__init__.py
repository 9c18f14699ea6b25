"""The database: generated images (the gallery) and their boards, generation jobs (the queue), API keys.

SQLAlchemy 2 models, Alembic migrations shipped in `migrations/` and applied on open. SQLite in WAL
mode under the user's kaiga directory by default; any SQLAlchemy URL (e.g. PostgreSQL) by choice.
"""
