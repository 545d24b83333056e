"""The database adapter. Importing it registers every table module on the one `metadata` (tables.py and
the per-topic modules beside it), so Alembic, the tests' schema checks and the services see them all."""

from fiscus.adapters.db import (
    tables,
    tables_collection,
    tables_console,
    tables_console_sort,
    tables_counts,
    tables_dashboard,
    tables_discounts,
    tables_email,
    tables_mrr,
    tables_portal,
    tables_rollups,
    tables_usage,
    tables_usage_features,
)

__all__ = [
    "tables",
    "tables_collection",
    "tables_console",
    "tables_console_sort",
    "tables_counts",
    "tables_dashboard",
    "tables_discounts",
    "tables_email",
    "tables_mrr",
    "tables_portal",
    "tables_rollups",
    "tables_usage",
    "tables_usage_features",
]
