"""The database adapter. Importing it registers every table module on the one `metadata` (tables.py and
the per-topic modules beside it), so Alembic, the tests' schema checks and the services see them all."""

from fiscus.adapters.db import tables_portal as tables_portal
