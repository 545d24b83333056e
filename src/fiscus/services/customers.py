"""Customers: who is billed, where, in which currency and language."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.context import load_org
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import FieldConflictError, InvalidFieldError
from fiscus.domain.money import currency
from fiscus.domain.tax import EU_MEMBER_STATES, VatRegistry, normalize_vat_id
from fiscus.services import validation as v
from fiscus.services.common import get_scoped, jsonable
from fiscus.services.usage_ingest import EXTERNAL_ID, release_pending

EU_VAT_PREFIXES = (EU_MEMBER_STATES - {"GR"}) | {"EL"}


@dataclass(slots=True)
class CustomerSpec:
    name: str
    email: str
    country: str
    currency: str | None = None
    vat_id: str | None = None
    locale: str | None = None
    timezone: str | None = None
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    postal_code: str = ""
    external_id: str | None = None
    """The customer's id in the organisation's own system (unique per organisation; usage events may
    name it as `external_customer_id`)."""


def create_customer(
    db: Database,
    clock: Clock,
    org_id: int,
    spec: CustomerSpec,
    *,
    actor: str = "cli",
    registry: VatRegistry | None = None,
) -> int:
    """Validate every field (VAT ID checksum included; with a registry, its registration) before
    writing anything."""
    country = v.country("country", spec.country)
    if spec.vat_id and registry is not None:
        _registered(registry, normalize_vat_id(spec.vat_id, country, "vat_id"))
    now = clock.now()
    with db.write() as conn:
        org = load_org(conn, org_id)
        code = spec.currency or org.row["default_currency"]
        currency(code, "currency")
        values = {
            "organization_id": org_id,
            "name": v.text("name", spec.name),
            "email": v.email("email", spec.email),
            "country": country,
            "currency": code,
            "vat_id": normalize_vat_id(spec.vat_id, country) if spec.vat_id else None,
            "locale": v.locale("locale", spec.locale or org.row["locale"]),
            "timezone": v.timezone("timezone", spec.timezone or org.row["timezone"]),
            "address_line1": v.text("address_line1", spec.address_line1, allow_empty=True),
            "address_line2": v.text("address_line2", spec.address_line2, allow_empty=True),
            "city": v.text("city", spec.city, max_len=100, allow_empty=True),
            "postal_code": v.text("postal_code", spec.postal_code, max_len=20, allow_empty=True),
            "created_at": now,
            "updated_at": now,
        }
        if spec.external_id is not None:
            values["external_id"] = _external_id(conn, org_id, spec.external_id)
        cid = conn.execute(insert(t.customers).values(**values).returning(t.customers.c.id)).scalar_one()
        if spec.external_id is not None:  # its usage events kept until now are counted from now on
            release_pending(conn, org_id, int(cid), spec.external_id, now)
        payload = {"id": cid, "name": values["name"], "email": values["email"], "country": country}
        if spec.external_id is not None:
            payload["external_id"] = spec.external_id
        append_audit(conn, [audit_row(org_id, "customer", cid, "created", actor, now, None, payload)])
        append_outbox(conn, [outbox_row(org_id, "customer.created", "customer", cid, now, payload)])
    return int(cid)


def _registered(registry: VatRegistry, vat_id: str) -> None:
    """An EU number the registry says is not registered is refused; an unreachable registry is not a
    reason to refuse a customer (the offline checksum has passed), so that case goes through."""
    if vat_id[:2] not in EU_VAT_PREFIXES:
        return
    answer = registry.check(vat_id)
    if answer.valid is False:
        raise InvalidFieldError("vat_id", f"'{vat_id}' is not registered for VAT according to VIES")


@dataclass(slots=True)
class CustomerPatch:
    name: str | None = None
    email: str | None = None
    vat_id: str | None = None
    locale: str | None = None
    timezone: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    postal_code: str | None = None


def _external_id(conn: Connection, org_id: int, value: str) -> str:
    if not EXTERNAL_ID.fullmatch(value):
        raise InvalidFieldError("external_id", "1 to 128 printable characters, no spaces")
    c = t.customers.c
    taken = conn.execute(select(c.id).where(c.organization_id == org_id, c.external_id == value)).first()
    if taken is not None:
        raise FieldConflictError("external_id", f"customer {taken[0]} has this external id")
    return value


def update_customer(
    db: Database, clock: Clock, org_id: int, customer_id: int, patch: CustomerPatch, *, actor: str = "cli"
) -> None:
    """Change a customer's details. Issued documents keep the buyer they were issued to."""
    now = clock.now()
    with db.write() as conn:
        row = get_scoped(conn, t.customers, org_id, customer_id, lock=True)
        values: dict[str, object] = {}
        if patch.name is not None:
            values["name"] = v.text("name", patch.name)
        if patch.email is not None:
            values["email"] = v.email("email", patch.email)
        if patch.vat_id is not None:
            values["vat_id"] = normalize_vat_id(patch.vat_id, row["country"]) if patch.vat_id else None
        if patch.locale is not None:
            values["locale"] = v.locale("locale", patch.locale)
        if patch.timezone is not None:
            values["timezone"] = v.timezone("timezone", patch.timezone)
        for key in ("address_line1", "address_line2", "city", "postal_code"):
            value = getattr(patch, key)
            if value is not None:
                values[key] = v.text(key, value, max_len=200, allow_empty=True)
        if not values:
            return
        values["updated_at"] = now
        conn.execute(update(t.customers).where(t.customers.c.id == customer_id).values(**values))
        before = jsonable(row, tuple(values))
        after = jsonable({**row, **values}, tuple(values))
        append_audit(conn, [audit_row(org_id, "customer", customer_id, "updated", actor, now, before, after)])
        append_outbox(
            conn,
            [
                outbox_row(
                    org_id, "customer.updated", "customer", customer_id, now, {"id": customer_id, **after}
                )
            ],
        )
