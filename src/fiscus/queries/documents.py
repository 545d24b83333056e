"""The read side of documents: one set of queries that every presenter (native API, the three seed
dialects, pages, PDFs) renders. A page of documents costs a fixed number of queries, whatever its size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, Select, func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_counts as tc
from fiscus.adapters.db import tables_discounts as td
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.errors import InvalidFieldError, NotFoundError
from fiscus.domain.money import Currency, currency
from fiscus.domain.payments import amount_due
from fiscus.queries import document_blocks as blocks
from fiscus.queries import document_hot as hot
from fiscus.queries import document_links
from fiscus.queries.document_filters import DocumentFilters as DocumentFilters
from fiscus.queries.pagination import CursorPage, cursor_page, cursor_rows
from fiscus.queries.scope import Scope


@dataclass(frozen=True, slots=True)
class ProductView:
    id: int
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class VariantView:
    id: int
    code: str
    name: str
    limits: list[str]


@dataclass(frozen=True, slots=True)
class AllowanceView:
    """A discount's share on a line (issue 17), taken off quantity × unit price before tax."""

    reason: str
    amount_minor: int
    coupon_id: int | None
    discount_id: int | None
    document_level: bool = False
    """The discount covers the whole document (a coupon or credit without a scope): EN 16931 states it
    once per VAT rate at document level (BG-20) rather than on each line."""


@dataclass(frozen=True, slots=True)
class LineView:
    id: int
    position: int
    kind: str
    description: str
    product_id: int | None
    product: ProductView | None
    variant: VariantView | None
    price_id: int | None
    subscription_period_id: int | None
    order_id: int | None
    period_start: datetime | None
    period_end: datetime | None
    quantity: Decimal
    unit_price: Decimal
    ratio: Fraction
    tax_inclusive: bool
    tax_treatment: str
    tax_rate: Decimal
    amount_minor: int
    tax_minor: int
    allowances: tuple[AllowanceView, ...] = ()

    @property
    def discount_minor(self) -> int:
        return sum(a.amount_minor for a in self.allowances)


@dataclass(frozen=True, slots=True)
class TaxView:
    treatment: str
    rate: Decimal
    base_minor: int
    tax_minor: int
    note: str


Stamp = int
"""What identifies a version of a document for caching its rendering: its revision, which every change
to the row moves (see `documents.revision`)."""


@dataclass(slots=True)
class DocumentView:
    id: int
    organization_id: int
    type: DocumentType
    status: DocumentStatus
    series: str
    number: str | None
    sequence: int | None
    customer_id: int
    subscription_id: int | None
    currency: Currency
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    amount_paid_minor: int
    period_start: datetime | None
    period_end: datetime | None
    issue_date: date | None
    issued_at: datetime | None
    due_date: date | None
    seller: dict[str, Any]
    buyer: dict[str, Any]
    notes: list[str]
    converted_from_id: int | None
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None
    voided_at: datetime | None
    converted_to_id: int | None = None
    replaces_id: int | None = None
    """The open proforma this one replaced (a customer's promotion code); `replaced_by_id` the reverse."""
    replaced_by_id: int | None = None
    corrected_document_id: int | None = None
    reason: str | None = None
    credit_disposition: str | None = None
    amount_credited_minor: int = 0
    amount_refunded_minor: int = 0
    next_payment_attempt_at: datetime | None = None
    revision: int = 1
    discount_minor: int = 0
    """Σ discounts on the lines (issue 17): Σ (quantity × unit price) − this = subtotal (tax-exclusive)."""
    livemode: bool = True
    """False for a document of a test-mode organisation: it carries a TEST mark and no legal number."""
    lines: list[LineView] = field(default_factory=list)
    taxes: list[TaxView] = field(default_factory=list)
    order_ids: list[int] = field(default_factory=list)
    ordered_at: dict[int, datetime] = field(default_factory=dict)
    """When each billed order (`order_ids`) was placed (`orders.created_at`)."""

    @property
    def stamp(self) -> Stamp:
        return self.revision

    @property
    def amount_due_minor(self) -> int:
        if self.type is not DocumentType.CREDIT_NOTE and self.status in (
            DocumentStatus.OPEN,
            DocumentStatus.UNCOLLECTIBLE,
        ):
            return amount_due(
                self.total_minor,
                self.amount_paid_minor,
                self.amount_refunded_minor,
                self.amount_credited_minor,
            )
        return 0


_LIVEMODE = (
    select(t.organizations.c.mode == "live")
    .where(t.organizations.c.id == t.documents.c.organization_id)
    .scalar_subquery()
    .label("livemode")
)
"""Whether the document's organisation is live: a primary-key lookup per row, no extra statement."""
_HEADER = [*(c for c in t.documents.c if c.name != "billing_run_id"), _LIVEMODE]


def _filtered_ids(scope: Scope, filters: DocumentFilters) -> Select[Any]:
    d = t.documents.c
    query = scope.apply(select(d.id), t.documents)
    if filters.status is not None:
        query = query.where(d.status == filters.status.value)
    if filters.type is not None:
        query = query.where(d.type == filters.type.value)
    if filters.types is not None:
        query = query.where(d.type.in_([x.value for x in filters.types]))
    if filters.issued_only:
        query = query.where(d.status != DocumentStatus.DRAFT.value)
    if filters.issued_only or not filters.discarded:
        query = blocks.without_discarded(query, scope.organization_id, filters.status)
    if filters.customer_id is not None:
        query = query.where(d.customer_id == filters.customer_id)
    if filters.subscription_id is not None:
        query = query.where(d.subscription_id == filters.subscription_id)
    if filters.period_start_gte is not None:
        query = query.where(d.period_start >= filters.period_start_gte)
    if filters.period_start_lt is not None:
        query = query.where(d.period_start < filters.period_start_lt)
    if filters.created_gte is not None:
        query = query.where(d.created_at >= filters.created_gte)
    if filters.created_lt is not None:
        query = query.where(d.created_at < filters.created_lt)
    return query


def page_document_ids(
    conn: Connection,
    scope: Scope,
    filters: DocumentFilters,
    *,
    limit: int,
    starting_after: int | None = None,
    ending_before: int | None = None,
) -> CursorPage:
    return cursor_page(
        conn,
        _filtered_ids(scope, filters),
        t.documents,
        limit=limit,
        starting_after=starting_after,
        ending_before=ending_before,
    )


def count_documents(conn: Connection, scope: Scope, filters: DocumentFilters | None = None) -> int:
    """How many documents the list holds: from the maintained `document_counts` when they answer for the
    list (an organisation's, filtered by type and status only: the dialects'), else a COUNT."""
    f = filters or DocumentFilters()
    where = _count_rows(scope, f)
    if where is not None:
        return blocks.counted_total(conn, where)
    inner = _filtered_ids(scope, f).subquery()
    return int(conn.execute(select(func.count()).select_from(inner)).scalar_one())


def _count_rows(scope: Scope, f: DocumentFilters) -> list[ColumnElement[bool]] | None:
    """The `document_counts` rows of the list, when the counts can answer for it."""
    bare = replace(f, status=None, type=None, types=None, issued_only=False, discarded=True)
    if scope.customer_id is not None or bare != _NONE:
        return None
    c = tc.document_counts.c
    where = [c.organization_id == scope.organization_id]
    where.extend(blocks.count_statuses(f.status, issued_only=f.issued_only, discarded=f.discarded))
    if f.type is not None:
        where.append(c.type == f.type.value)
    if f.types is not None:
        where.append(c.type.in_([x.value for x in f.types]))
    return where


_NONE = DocumentFilters()


def offset_document_stamps(
    conn: Connection,
    scope: Scope,
    filters: DocumentFilters,
    *,
    offset: int,
    limit: int,
    total: int | None = None,
) -> list[tuple[int, Stamp]]:
    """Newest first, (id, stamp), for page-number dialects serving cached renderings.

    Deep pages of a list the maintained counts answer for (the dialects') find their first id from the
    counts per id block (`document_blocks.nth_id`), then read the page by key. Otherwise they cost what
    the skipped index entries cost, never the skipped rows: the page's first id is found by an id-only
    (index-only) seek, then the page is read by key. With the list's `total` (the
    dialects count anyway), a page in the older half is counted from the oldest end, so the last page
    costs what the first does.
    """
    d = t.documents.c
    if total is not None and offset >= total:
        return []
    oldest = total is not None and offset > total // 2  # counted from the oldest end
    skip, take = offset, limit
    if total is not None and oldest:
        skip, take = max(total - offset - limit, 0), min(limit, total - offset)
    if skip < SEEK_OFFSET:  # shallow from either end: one prepared statement (`document_hot`)
        found = hot.offset_stamps(conn, scope, filters, offset=skip, limit=take, newest_first=not oldest)
        if found is not None:
            return found[::-1] if oldest else found
    ids = _filtered_ids(scope, filters)
    where = _count_rows(scope, filters)
    if total is not None and offset >= SEEK_OFFSET and where is not None:
        first = blocks.nth_id(conn, where, ids, total - 1 - offset)
        if first is not None:
            query = ids.add_columns(*_STAMP).where(d.id <= first).order_by(d.id.desc()).limit(limit)
            return [(int(r[0]), int(r[1])) for r in conn.execute(query)]
    order = d.id.asc() if oldest else d.id.desc()
    if offset >= SEEK_OFFSET:
        first = conn.execute(ids.order_by(order).offset(skip).limit(1)).scalar()
        if first is None:
            return []
        ids = ids.where(d.id >= first if oldest else d.id <= first)
        skip = 0
    rows = conn.execute(ids.add_columns(*_STAMP).order_by(order).offset(skip).limit(take)).all()
    return [(int(r[0]), int(r[1])) for r in (reversed(rows) if oldest else rows)]


SEEK_OFFSET = 1_000
"""From this offset on, an id-only seek first: one extra query, but no row fetched for skipped entries."""


def document_exists(conn: Connection, scope: Scope, document_id: int) -> bool:
    query = scope.apply(select(t.documents.c.id), t.documents).where(t.documents.c.id == document_id)
    return conn.execute(query).first() is not None


def get_document(conn: Connection, scope: Scope, document_id: int, *, lines: bool = True) -> DocumentView:
    found = load_documents(conn, scope, [document_id], lines=lines)
    if not found:
        raise NotFoundError("document", document_id)
    return found[0]


def page_documents(
    conn: Connection,
    scope: Scope,
    filters: DocumentFilters,
    *,
    limit: int,
    starting_after: int | None = None,
    ending_before: int | None = None,
    lines: bool = False,
    products: bool = False,
) -> tuple[list[DocumentView], bool]:
    """One cursor page of full views in one header query (the hot path of every list)."""
    query = _filtered_ids(scope, filters).with_only_columns(*_HEADER)
    rows, has_more = cursor_rows(
        conn, query, t.documents, limit=limit, starting_after=starting_after, ending_before=ending_before
    )
    headers = {r.id: r._mapping for r in rows}
    return _assemble(conn, headers, [r.id for r in rows], lines=lines, products=products), has_more


_STAMP = (t.documents.c.revision,)


def document_stamp(conn: Connection, scope: Scope, document_id: int) -> Stamp | None:
    """The stamp of a document the scope can see, or None."""
    return hot.stamp(conn, scope, document_id)


def page_document_stamps(
    conn: Connection,
    scope: Scope,
    filters: DocumentFilters,
    *,
    limit: int,
    starting_after: int | None = None,
    ending_before: int | None = None,
) -> tuple[list[tuple[int, Stamp]], bool]:
    """One cursor page of (id, stamp): enough to serve documents whose rendering is cached, since a
    document changes only through state changes, which move its stamp."""
    found = hot.page_stamps(conn, scope, filters, limit, starting_after, ending_before)
    if found is not None:
        return found
    query = _filtered_ids(scope, filters).add_columns(*_STAMP)
    rows, has_more = cursor_rows(
        conn, query, t.documents, limit=limit, starting_after=starting_after, ending_before=ending_before
    )
    return [(int(r[0]), int(r[1])) for r in map(tuple, rows)], has_more


def _allowances(conn: Connection, found: list[int]) -> dict[tuple[int, int], tuple[AllowanceView, ...]]:
    """The discounts on the documents' lines, per (document, position): one statement."""
    da, cc, g = td.document_allowances.c, td.coupons.c, td.wallet_grants.c
    out: dict[tuple[int, int], list[AllowanceView]] = defaultdict(list)
    for r in conn.execute(
        select(
            da.document_id,
            da.line_position,
            da.reason,
            da.amount_minor,
            da.coupon_id,
            da.discount_id,
            cc.product_ids,
            cc.price_ids,
            cc.metric_ids,
            g.product_ids.label("grant_products"),
            da.wallet_grant_id,
        )
        .outerjoin(td.coupons, cc.id == da.coupon_id)
        .outerjoin(td.wallet_grants, g.id == da.wallet_grant_id)
        .where(da.document_id.in_(found))
        .order_by(da.id)
    ):
        whole = (r.coupon_id is not None and not (r.product_ids or r.price_ids or r.metric_ids)) or (
            r.wallet_grant_id is not None and not r.grant_products
        )
        out[(r.document_id, r.line_position)].append(
            AllowanceView(r.reason, r.amount_minor, r.coupon_id, r.discount_id, whole)
        )
    return {k: tuple(v) for k, v in out.items()}


def load_documents(
    conn: Connection, scope: Scope, ids: Sequence[int], *, lines: bool = True, products: bool = True
) -> list[DocumentView]:
    """Full views of the given documents in the order given, scoped (foreign ids are dropped)."""
    if not ids:
        return []
    d = t.documents.c
    query = scope.apply(select(*_HEADER), t.documents).where(d.id.in_(list(ids)))
    headers = {r["id"]: r for r in conn.execute(query).mappings()}
    return _assemble(conn, headers, [i for i in ids if i in headers], lines=lines, products=products)


def _assemble(
    conn: Connection,
    headers: Mapping[int, RowMapping],
    found: list[int],
    *,
    lines: bool,
    products: bool,
) -> list[DocumentView]:
    """Views from header rows, with their lines, taxes, order links and conversions (one query each)."""
    if not found:
        return []
    converted_to, replaced_by = document_links.successors(conn, headers, found)
    orders: dict[int, list[int]] = defaultdict(list)
    ordered_at: dict[int, dict[int, datetime]] = defaultdict(dict)
    ordered = [i for i in found if headers[i]["subscription_id"] is None]  # only orders' documents
    if ordered:
        links = t.document_orders.c
        for link in conn.execute(
            select(links.document_id, links.order_id, t.orders.c.created_at)
            .join(t.orders, t.orders.c.id == links.order_id)
            .where(links.document_id.in_(ordered))
            .order_by(links.order_id)
        ):
            orders[link.document_id].append(link.order_id)
            ordered_at[link.document_id][link.order_id] = link.created_at
    taxes: dict[int, list[TaxView]] = defaultdict(list)
    for r in conn.execute(
        select(t.document_taxes)
        .where(t.document_taxes.c.document_id.in_(found))
        .order_by(t.document_taxes.c.id)
    ).mappings():
        taxes[r["document_id"]].append(
            TaxView(r["treatment"], r["rate"], r["base_minor"], r["tax_minor"], r["note"])
        )
    line_views: dict[int, list[LineView]] = defaultdict(list)
    allowances = _allowances(conn, found)
    discount_of: dict[int, int] = defaultdict(int)
    for (doc_id, _pos), found_allowances in allowances.items():
        discount_of[doc_id] += sum(a.amount_minor for a in found_allowances)
    if lines:
        rows = (
            conn.execute(
                select(t.document_lines)
                .where(t.document_lines.c.document_id.in_(found))
                .order_by(t.document_lines.c.document_id, t.document_lines.c.position)
            )
            .mappings()
            .all()
        )
        product_views = (
            _products(conn, {r["product_id"] for r in rows if r["product_id"]}) if products else {}
        )
        variant_views = _variants(conn, {r["variant_id"] for r in rows if r["variant_id"]})
        for r in rows:
            line_views[r["document_id"]].append(
                LineView(
                    id=r["id"],
                    position=r["position"],
                    kind=r["kind"],
                    description=r["description"],
                    product_id=r["product_id"],
                    product=product_views.get(r["product_id"]),
                    variant=variant_views.get(r["variant_id"]),
                    price_id=r["price_id"],
                    subscription_period_id=r["subscription_period_id"],
                    order_id=r["order_id"],
                    period_start=r["period_start"],
                    period_end=r["period_end"],
                    quantity=r["quantity"],
                    unit_price=r["unit_price"],
                    ratio=Fraction(r["ratio"]),
                    tax_inclusive=r["tax_inclusive"],
                    tax_treatment=r["tax_treatment"],
                    tax_rate=r["tax_rate"],
                    amount_minor=r["amount_minor"],
                    tax_minor=r["tax_minor"],
                    allowances=allowances.get((r["document_id"], r["position"]), ()),
                )
            )
    out = []
    for doc_id in found:
        h = headers[doc_id]
        out.append(
            DocumentView(
                id=h["id"],
                organization_id=h["organization_id"],
                type=DocumentType(h["type"]),
                status=DocumentStatus(h["status"]),
                series=h["series"],
                number=h["number"],
                sequence=h["sequence"],
                customer_id=h["customer_id"],
                subscription_id=h["subscription_id"],
                currency=currency(h["currency"]),
                subtotal_minor=h["subtotal_minor"],
                tax_minor=h["tax_minor"],
                total_minor=h["total_minor"],
                amount_paid_minor=h["amount_paid_minor"],
                amount_refunded_minor=h["amount_refunded_minor"],
                next_payment_attempt_at=h["next_payment_attempt_at"],
                revision=h["revision"],
                discount_minor=discount_of.get(doc_id, 0),
                livemode=bool(h["livemode"]),
                period_start=h["period_start"],
                period_end=h["period_end"],
                issue_date=h["issue_date"],
                issued_at=h["issued_at"],
                due_date=h["due_date"],
                seller=h["seller"],
                buyer=h["buyer"],
                notes=list(h["notes"]),
                converted_from_id=h["converted_from_id"],
                created_at=h["created_at"],
                updated_at=h["updated_at"],
                paid_at=h["paid_at"],
                voided_at=h["voided_at"],
                converted_to_id=converted_to.get(doc_id),
                replaces_id=h["replaces_id"],
                replaced_by_id=replaced_by.get(doc_id),
                corrected_document_id=h["corrected_document_id"],
                reason=h["reason"],
                credit_disposition=h["credit_disposition"],
                amount_credited_minor=h["amount_credited_minor"],
                lines=line_views[doc_id],
                taxes=taxes[doc_id],
                order_ids=orders[doc_id],
                ordered_at=ordered_at[doc_id],
            )
        )
    return out


def _products(conn: Connection, ids: set[int]) -> dict[int, ProductView]:
    if not ids:
        return {}
    return {
        r["id"]: ProductView(r["id"], dict(r))
        for r in conn.execute(select(t.products).where(t.products.c.id.in_(sorted(ids)))).mappings()
    }


def _variants(conn: Connection, ids: set[int]) -> dict[int, VariantView]:
    if not ids:
        return {}
    v = t.variants.c
    return {
        r.id: VariantView(r.id, r.code, r.name, list(r.limits))
        for r in conn.execute(select(v.id, v.code, v.name, v.limits).where(v.id.in_(sorted(ids))))
    }


def audit_events(conn: Connection, scope: Scope, entity_type: str, entity_id: int) -> list[dict[str, Any]]:
    a = t.audit_events.c
    query = (
        select(a.id, a.action, a.actor, a.at, a.before, a.after)
        .where(
            a.organization_id == scope.organization_id, a.entity_type == entity_type, a.entity_id == entity_id
        )
        .order_by(a.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def parse_status(value: str | None, field_name: str = "status") -> DocumentStatus | None:
    if value is None:
        return None
    try:
        return DocumentStatus(value)
    except ValueError:
        raise InvalidFieldError(field_name, f"must be one of {', '.join(DocumentStatus)}") from None
