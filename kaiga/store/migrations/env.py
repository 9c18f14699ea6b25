"""Alembic environment: migrate through the connection that `kaiga.store.db.migrate` hands over.

New migration: `alembic -x url=sqlite:///x.db revision --autogenerate -m "..."` with a config whose
script_location is this folder (or write one by hand, as 0001 is).
"""

from alembic import context

from kaiga.store.tables import Base


def run_migrations() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:  # run from the alembic command line
        from kaiga.store.db import make_engine

        url = context.get_x_argument(as_dictionary=True).get("url")
        with make_engine(url).connect() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


try:
    context.config  # noqa: B018 (raises outside an alembic run)
except (NameError, AttributeError):  # imported outside alembic (e.g. by doctest collection): nothing to run
    pass
else:
    run_migrations()
