"""Alembic environment: batch mode for SQLite's limited ALTER; our engine setup for both databases."""

from __future__ import annotations

from alembic import context

import fiscus.adapters.db.tables_email  # noqa: F401  (its tables on the shared metadata)
from fiscus.adapters.db.engine import make_engine
from fiscus.adapters.db.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "sqlalchemy.url must be set"

engine = make_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
