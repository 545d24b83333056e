"""The database adapter. Importing it registers every table module's tables on the one `metadata`
(Alembic's autogenerate, the migration test and `metadata.sorted_tables` see them all)."""

from fiscus.adapters.db import tables, tables_console

__all__ = ["tables", "tables_console"]
