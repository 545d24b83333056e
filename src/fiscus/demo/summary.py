"""What the demo leaves behind, read back from the database: per organisation its customers,
subscriptions, documents, totals and card payments, and the hosted payment links worth trying. The
machine-readable form (`--json`) is `DemoResult.as_json`."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from sqlalchemy import ColumnElement, Connection, Table, func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.payments.gateway import NAME as GATEWAY
from fiscus.config import Settings
from fiscus.demo.registry import SANDBOX_SLUGS
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.money import currency, from_minor
from fiscus.domain.payments import IN_FLIGHT, amount_due
from fiscus.services.payment_links import link_secret, payment_url


@dataclass
class DemoOrganization:
    id: int
    """The test-mode sandbox holding the demo's data."""
    slug: str
    name: str
    customer_ids: list[int]
    live_id: int | None = None
    """The live organisation the sandbox belongs to (empty; its keys are never stored)."""
    country: str = ""
    currency: str = ""
    timezone: str = ""
    subscriptions: dict[str, int] = field(default_factory=dict)
    documents: dict[tuple[str, str], int] = field(default_factory=dict)
    totals: dict[str, Decimal] = field(default_factory=dict)
    api_key: str | None = None
    customer_tokens: dict[int, str] = field(default_factory=dict)
    payments: dict[str, int] = field(default_factory=dict)
    """Card payment attempts through the gateway, by status."""
    refunds: int = 0


@dataclass(frozen=True, slots=True)
class PaymentLink:
    """An open document's hosted payment page, to try in a browser."""

    organization: str
    document_id: int
    number: str | None
    type: str
    amount_due: Decimal
    currency: str
    url: str
    partly_paid: bool


TEST_CARDS: Final = {"success": "4242 4242 4242 4242", "decline": "4000 0000 0000 0002"}
"""The test cards printed next to the payment links (`fiscus.gateway.cards.SUCCESS`, `DO_NOT_HONOR`)."""


@dataclass
class DemoResult:
    organizations: list[DemoOrganization]
    created: bool
    documents: int
    totals: dict[str, Decimal]
    gateway_url: str | None = None
    payment_links: list[PaymentLink] = field(default_factory=list)
    console_login: tuple[str, str] | None = None
    """The demo operator's e-mail and password for the console (`/console/`)."""

    def as_json(self) -> dict[str, object]:
        """The machine-readable summary a script needs to call every API with real credentials."""
        return {
            "organizations": [
                {
                    "id": o.id,
                    "slug": o.slug,
                    "name": o.name,
                    "livemode": False,
                    "live_organization_id": o.live_id,
                    "api_key": o.api_key,
                    "customers": [{"id": c, "token": o.customer_tokens.get(c)} for c in o.customer_ids],
                    "payments": o.payments,
                    "refunds": o.refunds,
                }
                for o in self.organizations
            ],
            "documents": self.documents,
            "totals": {code: str(amount) for code, amount in self.totals.items()},
            "gateway": {"url": self.gateway_url, "test_cards": TEST_CARDS} if self.gateway_url else None,
            "payment_links": [
                {
                    "organization": link.organization,
                    "document_id": link.document_id,
                    "number": link.number,
                    "type": link.type,
                    "amount_due": str(link.amount_due),
                    "currency": link.currency,
                    "partly_paid": link.partly_paid,
                    "url": link.url,
                }
                for link in self.payment_links
            ],
            "console": (
                {"email": self.console_login[0], "password": self.console_login[1]}
                if self.console_login
                else None
            ),
        }


def count(conn: Connection, table: Table, org_id: int, *where: ColumnElement[bool]) -> int:
    """Rows of one organisation in `table` (matching `where`)."""
    query = select(func.count()).select_from(table).where(table.c.organization_id == org_id, *where)
    return int(conn.execute(query).scalar_one())


def _totals(conn: Connection, org_id: int | None) -> dict[str, Decimal]:
    """What was billed: live documents only (a converted proforma lives on as its invoice)."""
    d = t.documents.c
    query = (
        select(d.currency, func.sum(d.total_minor))
        .where(d.status.not_in(["void", "converted", "draft"]))
        .group_by(d.currency)
        .order_by(d.currency)
    )
    if org_id is not None:
        query = query.where(d.organization_id == org_id)
    return {code: from_minor(int(total), currency(code)) for code, total in conn.execute(query)}


def summary(db: Database, created: bool) -> DemoResult:
    """What is in the database now for every demo organisation (seeded by this run or an earlier one)."""
    o, c, s, d = t.organizations.c, t.customers.c, t.subscriptions.c, t.documents.c
    out: list[DemoOrganization] = []
    with db.read() as conn:
        rows = {r.slug: r for r in conn.execute(select(t.organizations).where(o.slug.in_(SANDBOX_SLUGS)))}
        for slug in SANDBOX_SLUGS:
            row = rows.get(slug)
            if row is None:
                continue
            customer_ids = conn.execute(
                select(c.id).where(c.organization_id == row.id).order_by(c.id)
            ).scalars()
            subscriptions = conn.execute(
                select(s.status, func.count()).where(s.organization_id == row.id).group_by(s.status)
            ).all()
            documents = conn.execute(
                select(d.type, d.status, func.count())
                .where(d.organization_id == row.id)
                .group_by(d.type, d.status)
            ).all()
            pa = t.payment_attempts.c
            attempts = conn.execute(
                select(pa.status, func.count())
                .where(pa.organization_id == row.id, pa.provider == GATEWAY)
                .group_by(pa.status)
            ).all()
            refunds = count(conn, t.payment_refunds, row.id, t.payment_refunds.c.status == "succeeded")
            out.append(
                DemoOrganization(
                    id=row.id,
                    slug=slug,
                    name=row.legal_name,
                    customer_ids=list(customer_ids),
                    live_id=row.sandbox_of,
                    country=row.country,
                    currency=row.default_currency,
                    timezone=row.timezone,
                    subscriptions={status: int(n) for status, n in sorted(subscriptions)},
                    documents={(kind, status): int(n) for kind, status, n in sorted(documents)},
                    totals=_totals(conn, row.id),
                    payments={status: int(n) for status, n in sorted(attempts)},
                    refunds=refunds,
                )
            )
        total_documents = int(conn.execute(select(func.count()).select_from(t.documents)).scalar_one())
        totals = _totals(conn, None)
    return DemoResult(out, created, total_documents, totals)


def server_url(settings: Settings) -> str:
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def find_payment_links(db: Database, clock: Clock, settings: Settings, limit: int = 2) -> list[PaymentLink]:
    """Hosted payment page links of open demo documents worth trying in a browser: the newest partly
    paid one (the remainder is due), then the newest of customers without a card, in other
    organisations. Only where a card payment is taken at once (capture mode `sale`: elsewhere it would
    wait for a capture), and never with a payment in progress."""
    d, o, c, pa = t.documents.c, t.organizations.c, t.customers.c, t.payment_attempts.c
    busy = select(pa.document_id).where(pa.status.in_([s.value for s in IN_FLIGHT]))
    with db.read() as conn:
        rows = conn.execute(
            select(
                d.id,
                d.organization_id,
                o.slug,
                d.number,
                d.type,
                d.currency,
                d.total_minor,
                d.amount_paid_minor,
                d.amount_refunded_minor,
                d.amount_credited_minor,
                c.default_payment_method_id,
            )
            .join(t.organizations, o.id == d.organization_id)
            .join(t.customers, c.id == d.customer_id)
            .where(
                o.slug.in_(SANDBOX_SLUGS),
                o.capture_mode == "sale",
                d.status == DocumentStatus.OPEN.value,
                d.type.in_([DocumentType.INVOICE.value, DocumentType.PROFORMA.value]),
                d.total_minor > 0,
                d.id.not_in(busy),
            )
            .order_by(d.id.desc())
        ).all()
    due = {
        row.id: amount_due(
            row.total_minor, row.amount_paid_minor, row.amount_refunded_minor, row.amount_credited_minor
        )
        for row in rows
    }
    candidates = [row for row in rows if due[row.id] > 0]
    partly = [row for row in candidates if row.amount_paid_minor > 0][:1]
    picked = list(partly)
    for row in candidates:
        if len(picked) >= limit:
            break
        if row.default_payment_method_id is None and row.slug not in {p.slug for p in picked}:
            picked.append(row)
    if not picked:
        return []
    secret = link_secret(db, clock, settings.secret_key)
    base = server_url(settings)
    return [
        PaymentLink(
            organization=row.slug,
            document_id=row.id,
            number=row.number,
            type=row.type,
            amount_due=from_minor(due[row.id], currency(row.currency)),
            currency=row.currency,
            url=payment_url(base, secret, row.organization_id, row.id),
            partly_paid=row.amount_paid_minor > 0,
        )
        for row in picked[:limit]
    ]
