"""Wiring the worker's email outlet from settings: the mailer `FISCUS_SMTP_URL` names, hosted page
links on the instance's public URL, and PDFs from the same stored files the API serves."""

from __future__ import annotations

from datetime import timedelta

from fiscus.adapters.db.engine import Database
from fiscus.adapters.email import mailer_from_url
from fiscus.config import Settings
from fiscus.domain.clock import Clock
from fiscus.domain.email import Attachment
from fiscus.services.emails.compose import Links
from fiscus.services.emails.delivery import Outlet
from fiscus.services.payment_links import link_secret
from fiscus.services.rendering import document_links, document_number, documents_dir, ensure_pdf, pdf_filename


def public_base(settings: Settings) -> str:
    return settings.public_url or f"http://{settings.host}:{settings.port}"


def build_outlet(db: Database, clock: Clock, settings: Settings) -> Outlet | None:
    """The worker's outlet, or None when no `FISCUS_SMTP_URL` is set (emails then wait in the outbox)."""
    if not settings.smtp_url:
        return None
    from fiscus.adapters.pdf.renderer import shared_renderer

    base = public_base(settings)
    secret = link_secret(db, clock, settings.secret_key)
    doc_links = document_links(db, clock, base, settings.secret_key)

    def pdf(org_id: int, document_id: int) -> Attachment:
        path = ensure_pdf(db, clock, shared_renderer(), documents_dir(), org_id, document_id, links=doc_links)
        with db.read() as conn:
            number = document_number(conn, org_id, document_id)
        return Attachment(pdf_filename(number, document_id), "application/pdf", path.read_bytes())

    return Outlet(
        mailer=mailer_from_url(settings.smtp_url, timeout_seconds=settings.smtp_timeout_seconds),
        links=Links(base, secret),
        default_from=settings.email_from,
        pdf=pdf,
        lease=timedelta(seconds=settings.email_lease_seconds),
    )
