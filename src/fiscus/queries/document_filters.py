"""The filters of a documents list, apart from the queries that apply them, so that the prepared hot
reads (`document_hot`) and the Core path (`documents`) share one definition without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fiscus.domain.documents import DocumentStatus, DocumentType


@dataclass(frozen=True, slots=True)
class DocumentFilters:
    status: DocumentStatus | None = None
    type: DocumentType | None = None
    customer_id: int | None = None
    subscription_id: int | None = None
    period_start_gte: datetime | None = None
    period_start_lt: datetime | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None
    types: tuple[DocumentType, ...] | None = None
    issued_only: bool = False
    """Issued documents only: no drafts, and no draft discarded unissued."""
    discarded: bool = True
    """Whether drafts discarded unissued (void, never numbered) are listed (the dialects' lists: no)."""
