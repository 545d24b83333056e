"""Indexes the console dashboard reads through (`queries/dashboard.py`; migration 0014). Each covers
its statement, so the database reads index entries in the range's order and never the wide rows:
documents by issue date, attempts by creation, captures and refunds by settlement, and a document's
attempts by status (the recovery rate's "was it paid later" probe)."""

from __future__ import annotations

from sqlalchemy import Index

from fiscus.adapters.db.tables import documents, payment_attempts, payment_captures, payment_refunds

ix_documents_dashboard = Index(
    "ix_documents_dashboard",
    documents.c.organization_id,
    documents.c.currency,
    documents.c.issue_date,
    documents.c.type,
    documents.c.status,
    documents.c.total_minor,
)
ix_payment_attempts_dashboard = Index(
    "ix_payment_attempts_dashboard",
    payment_attempts.c.organization_id,
    payment_attempts.c.currency,
    payment_attempts.c.created_at,
    payment_attempts.c.status,
    payment_attempts.c.provider,
    payment_attempts.c.document_id,
)
ix_payment_attempts_document_status = Index(
    "ix_payment_attempts_document_status",
    payment_attempts.c.document_id,
    payment_attempts.c.status,
    payment_attempts.c.provider,
)
ix_payment_captures_dashboard = Index(
    "ix_payment_captures_dashboard",
    payment_captures.c.organization_id,
    payment_captures.c.settled_at,
    payment_captures.c.status,
    payment_captures.c.amount_minor,
    payment_captures.c.attempt_id,
)
ix_payment_refunds_dashboard = Index(
    "ix_payment_refunds_dashboard",
    payment_refunds.c.organization_id,
    payment_refunds.c.settled_at,
    payment_refunds.c.status,
    payment_refunds.c.amount_minor,
    payment_refunds.c.attempt_id,
)
