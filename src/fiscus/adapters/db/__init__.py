"""The database adapter. Importing the package loads every table module into the one `metadata`, so
Alembic, the migration check and the queries all see the same schema."""

from fiscus.adapters.db import tables, tables_dashboard

__all__ = ["tables", "tables_dashboard"]
