"""Hosted payment page links: `/pay/{document_id}.{signature}`, unguessable and bound to one document.

The signature is HMAC-SHA256 over the organisation and document ids with the instance's secret key
(`FISCUS_SECRET_KEY`, else a random key generated once and kept in `instance_secrets`), so changing the
id in a link gives a link that does not verify: one invoice's link can never be turned into another's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentStatus, DocumentType

SECRET_NAME: Final = "payment_links"
PATH_PREFIX: Final = "/pay/"
SIGNATURE_CHARS: Final = 32


def link_secret(db: Database, clock: Clock, configured: str | None) -> bytes:
    """The key that signs links: the configured one, else the installation's own (made on first use)."""
    if configured:
        return configured.encode()
    s = t.instance_secrets.c
    with db.read() as conn:
        value = conn.execute(select(s.value).where(s.name == SECRET_NAME)).scalar_one_or_none()
    if value is None:
        try:
            with db.write() as conn:
                conn.execute(
                    insert(t.instance_secrets).values(
                        name=SECRET_NAME, value=secrets.token_urlsafe(48), created_at=clock.now()
                    )
                )
        except IntegrityError:
            pass
        with db.read() as conn:
            value = conn.execute(select(s.value).where(s.name == SECRET_NAME)).scalar_one()
    return str(value).encode()


def sign(secret: bytes, org_id: int, document_id: int) -> str:
    mac = hmac.new(secret, f"pay:v1:{org_id}:{document_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")[:SIGNATURE_CHARS]


def payment_path(secret: bytes, org_id: int, document_id: int) -> str:
    return f"{PATH_PREFIX}{document_id}.{sign(secret, org_id, document_id)}"


HOSTED_TYPES: Final = frozenset({DocumentType.INVOICE, DocumentType.PROFORMA})


def has_hosted_page(doc_type: DocumentType, status: DocumentStatus) -> bool:
    """Whether a document has a hosted page: every issued invoice and proforma, whatever became of it
    (open or uncollectible: the card form; paid: the receipt; void and converted: their state). A draft
    was never sent to anyone and a credit note is not paid by its customer, so neither has one."""
    return doc_type in HOSTED_TYPES and status is not DocumentStatus.DRAFT


def payment_url(base_url: str, secret: bytes, org_id: int, document_id: int) -> str:
    """The hosted page of a document (native `hosted_url`, seed 000 `transaction_url`): where its
    customer pays it, or sees that it is paid, void or replaced."""
    return f"{base_url.rstrip('/')}{payment_path(secret, org_id, document_id)}"


def parse_link(segment: str) -> tuple[int, str] | None:
    """The document id and signature of a link's last path segment (`{id}.{signature}`), if well formed."""
    doc_part, _, signature = segment.partition(".")
    if not doc_part.isascii() or not doc_part.isdigit() or len(doc_part) > 18:
        return None
    if len(signature) != SIGNATURE_CHARS:
        return None
    return int(doc_part), signature


def is_valid(secret: bytes, org_id: int, document_id: int, signature: str) -> bool:
    """Whether `signature` is the link signature of this document of this organisation (constant time)."""
    return hmac.compare_digest(sign(secret, org_id, document_id), signature)
