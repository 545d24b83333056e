"""Paused collection of a subscription (`services/collection_pause.py`): one row while a subscription's
automatic charges are paused, deleted when collection resumes (the audit trail keeps the history).
Invoices go on being issued and numbered; only the worker's automatic charges and retries wait."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, String, Table, UniqueConstraint

from fiscus.adapters.db.tables import Id, metadata
from fiscus.adapters.db.types import UtcDateTime

collection_pauses = Table(
    "collection_pauses",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), nullable=False),
    Column("paused_at", UtcDateTime, nullable=False),
    # NULL: until someone resumes it. Otherwise the pause ends by itself at this instant.
    Column("resumes_at", UtcDateTime, nullable=True),
    Column("actor", String(100), nullable=False),
    UniqueConstraint("subscription_id", name="uq_collection_pauses_subscription"),
)
