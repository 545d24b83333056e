"""Changing an organisation's settings: identity, address, tax IDs, bank accounts, documents, logo,
number series. One transaction per change, audited, announced as `organization.updated` in the outbox.

Issued documents never change: they carry a seller snapshot frozen at issue (adapters/db/context.py);
what is changed here reaches the next document only. Payment settings have their own use case
(services/payments.py `update_payment_settings`) and are not duplicated here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar

from sqlalchemy import Connection, insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.adapters.db.engine import Database
from fiscus.domain import organization as o
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentType
from fiscus.domain.errors import FieldConflictError, InvalidFieldError, NotFoundError, ValidationError
from fiscus.domain.logo import Logo
from fiscus.domain.money import currency
from fiscus.domain.numbering import validate_format
from fiscus.domain.tax import EU_MEMBER_STATES, TaxRounding, normalize_vat_id
from fiscus.queries.organizations import current_rates, rate_text
from fiscus.services import validation as v
from fiscus.services.common import jsonable
from fiscus.services.organizations import standard_rates

SETTINGS: Final = (
    "legal_name",
    "trading_name",
    "email",
    "address_line1",
    "address_line2",
    "city",
    "postal_code",
    "region",
    "country",
    "vat_id",
    "tax_id",
    "vat_registered",
    "default_currency",
    "locale",
    "timezone",
    "paper_size",
    "payment_terms_days",
    "bank_accounts",
    "footers",
    "subscription_document",
    "order_document",
    "auto_issue",
    "tax_rounding",
    "facturx_enabled",
    "logo_sha256",
    "vat_rates",
    "cancel_issued_ahead",
    "customer_promotion_codes",
)
"""Columns these use cases own (audit images and the event payload show them)."""

ADDRESS_KEYS: Final = ("lines", "city", "postal_code", "region")
PSEUDO: Final = frozenset({"vat_rates"})
"""Settings kept outside the organisations row (the VAT rates live in tax_rates)."""
T = TypeVar("T")


def _optional_text(field: str, value: object, max_len: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidFieldError(field, "must be a string")
    text = v.text(field, value, max_len=max_len, allow_empty=True)
    return text or None


def _bool(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidFieldError(field, "must be true or false")
    return value


def _document_kind(field: str, value: object) -> str:
    if value not in (DocumentType.INVOICE.value, DocumentType.PROFORMA.value):
        raise InvalidFieldError(field, "must be invoice or proforma")
    return str(value)


def _address(raw: object, values: dict[str, Any]) -> None:
    if not isinstance(raw, Mapping):
        raise InvalidFieldError("address", "must be an object with lines, city, postal_code, region")
    unknown = set(raw) - set(ADDRESS_KEYS)
    if unknown:
        raise InvalidFieldError(f"address.{sorted(unknown)[0]}", "is not an address field")
    if "lines" in raw:
        lines = raw["lines"]
        if not isinstance(lines, list) or len(lines) > 2:
            raise InvalidFieldError("address.lines", "must be a list of at most 2 lines")
        texts = [v.text(f"address.lines.{i}", x, allow_empty=True) for i, x in enumerate(lines)]
        texts = [x for x in texts if x] + ["", ""]
        values["address_line1"], values["address_line2"] = texts[0], texts[1]
    for key, column, max_len in (
        ("city", "city", 100),
        ("postal_code", "postal_code", 20),
        ("region", "region", 100),
    ):
        if key in raw:
            values[column] = v.text(f"address.{key}", raw[key] or "", max_len=max_len, allow_empty=True)


def _vat_rates(raw: object, current: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """`{"standard": "0.20", "reduced": "0.09"}`: fractions in [0, 1), for the organisation's country.
    A rate left out (or null) stays as it is; a reduced rate once set is changed, never dropped."""
    if not isinstance(raw, Mapping) or set(raw) - {"standard", "reduced"}:
        raise InvalidFieldError("vat_rates", 'must be {"standard": "0.20"} with an optional "reduced"')
    out: dict[str, str | None] = {"standard": None, "reduced": None, **(current or {})}
    for key in ("standard", "reduced"):
        if raw.get(key) is None:
            continue
        rate = v.decimal(f"vat_rates.{key}", raw[key], minimum=Decimal(0))
        if rate >= 1:
            raise InvalidFieldError(f"vat_rates.{key}", "is a fraction below 1 (0.20 for 20 %)")
        out[key] = rate_text(rate)
    if out["standard"] is None:
        raise FieldConflictError("vat_rates.standard", "is required (the organisation has none yet)")
    return out


def store_rates(conn: Connection, org_id: int, country: str, rates: Mapping[str, str | None]) -> None:
    """Upsert the country's rate set; documents keep the rates they were computed with (on their lines)."""
    standard = Decimal(str(rates["standard"]))
    reduced = Decimal(str(rates["reduced"])) if rates.get("reduced") else None
    tr = t.tax_rates.c
    for rate in standard_rates(country, standard, reduced):
        where = (tr.organization_id == org_id, tr.country == country, tr.category == rate.category.value)
        if conn.execute(select(tr.id).where(*where)).scalar_one_or_none() is None:
            conn.execute(
                insert(t.tax_rates).values(
                    organization_id=org_id,
                    country=country,
                    category=rate.category.value,
                    rate=rate.rate,
                    note=rate.note,
                )
            )
        else:
            conn.execute(update(t.tax_rates).where(*where).values(rate=rate.rate))


def validate_changes(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The column values a set of API/CLI changes amounts to, checked field by field and together.

    `changes` uses the API's names (`address` is an object, `logo` is not accepted here). A null
    clears an optional field (trading name, email, tax IDs; paper size then follows the country).
    """
    values: dict[str, Any] = {}
    for key, raw in changes.items():
        if key == "legal_name":
            values[key] = v.text(key, raw)
        elif key == "trading_name":
            values[key] = _optional_text(key, raw, 200)
        elif key == "email":
            values[key] = v.email(key, raw) if raw else None
        elif key == "address":
            _address(raw, values)
        elif key == "country":
            values[key] = v.country(key, raw)
        elif key in ("vat_id", "tax_id"):
            values[key] = _optional_text(key, raw, 32)
        elif key in ("vat_registered", "auto_issue", "facturx_enabled", "customer_promotion_codes"):
            values[key] = _bool(key, raw)
        elif key == "default_currency":
            values[key] = currency(raw, key).code
        elif key == "locale":
            values[key] = o.document_locale(key, raw)
        elif key == "timezone":
            values[key] = v.timezone(key, raw)
        elif key == "paper_size":
            values[key] = None if raw is None else o.paper_size(key, raw)
        elif key == "payment_terms_days":
            if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= 365:
                raise InvalidFieldError(key, "must be a whole number of days between 0 and 365")
            values[key] = raw
        elif key == "bank_accounts":
            raw = [] if raw is None else raw
            if not isinstance(raw, list):
                raise InvalidFieldError(key, "must be a list of accounts")
            values[key] = raw  # checked below, against the resulting country
        elif key == "footers" and raw is None:
            values[key] = {}
        elif key == "footers":
            if not isinstance(raw, Mapping):
                raise InvalidFieldError(key, 'must be an object of locale to text, e.g. {"en": "…"}')
            merged = {**dict(current.get("footers") or {}), **dict(raw)}
            values[key] = o.footers(key, merged)
        elif key == "vat_rates":
            values[key] = _vat_rates(raw, current.get("vat_rates"))
        elif key in ("subscription_document", "order_document"):
            values[key] = _document_kind(key, raw)
        elif key == "cancel_issued_ahead":
            if raw not in ("void", "credit_note"):
                raise InvalidFieldError(key, "must be void or credit_note")
            values[key] = raw
        elif key == "tax_rounding":
            if raw not in (r.value for r in TaxRounding):
                raise InvalidFieldError(key, "must be document or line")
            values[key] = raw
        else:
            raise InvalidFieldError(key, "is not an organisation setting")
    merged = {**current, **values}
    country = str(merged["country"])
    if merged.get("vat_id") and ("vat_id" in values or "country" in values):
        values["vat_id"] = _rechecked(
            changes, "vat_id", lambda: normalize_vat_id(str(merged["vat_id"]), country)
        )
    if merged.get("tax_id") and ("tax_id" in values or "country" in values):
        values["tax_id"] = _rechecked(
            changes, "tax_id", lambda: o.normalize_national_id(str(merged["tax_id"]), country)
        )
    if "bank_accounts" in values or ("country" in values and merged.get("bank_accounts")):
        raws = list(merged.get("bank_accounts") or [])
        accounts = _rechecked(
            changes, "bank_accounts", lambda: o.bank_accounts("bank_accounts", raws, country)
        )
        values["bank_accounts"] = [a.as_dict() for a in accounts]
    merged = {**current, **values}
    if merged["vat_registered"] and country in EU_MEMBER_STATES and not merged.get("vat_id"):
        raise _rule_broken(
            changes,
            ("vat_registered", "country", "vat_id"),
            "vat_id",
            "a VAT-registered EU organisation must print its VAT ID",
        )
    if merged["facturx_enabled"] and merged["tax_rounding"] == TaxRounding.LINE.value:
        raise _rule_broken(
            changes,
            ("facturx_enabled", "tax_rounding"),
            "facturx_enabled",
            "EN 16931 (BR-S-09) needs tax rounded per rate over the document, not per line",
        )
    return values


def _rule_broken(
    changes: Mapping[str, Any], fields: tuple[str, ...], field: str, detail: str
) -> InvalidFieldError:
    """A rule over several settings: the request alone breaks it when it sets every one of them (422);
    otherwise the change does not fit the organisation's stored settings, a 409 field conflict (the same
    request is fine for another organisation), as the OpenAPI document says."""
    if set(fields) <= set(changes):
        return InvalidFieldError(field, detail)
    return FieldConflictError(field, detail)


def _rechecked(changes: Mapping[str, Any], field: str, check: Callable[[], T]) -> T:
    """A stored value checked again for a new country: when the request did not send it, its failure
    is the stored value's conflict with the new country (409), not a fault of the request."""
    try:
        return check()
    except InvalidFieldError as exc:
        if field in changes:
            raise
        problem = exc.problems[0]
        raise FieldConflictError(
            problem.field,
            f"the stored value does not fit country {changes.get('country')}: {problem.message}; "
            "change both together",
        ) from None


def _locked_org(conn: Connection, org_id: int) -> dict[str, Any]:
    row = (
        conn.execute(select(t.organizations).where(t.organizations.c.id == org_id).with_for_update())
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise NotFoundError("organization", org_id)
    return dict(row)


def _record(
    conn: Connection,
    clock: Clock,
    org_id: int,
    before: dict[str, Any],
    values: dict[str, Any],
    actor: str,
    what: str,
) -> None:
    """Write the change with its audit row and its `organization.updated` event, or nothing if no change."""
    changed = tuple(k for k, val in values.items() if before.get(k) != val)
    if not changed:
        return
    now = clock.now()
    conn.execute(
        update(t.organizations)
        .where(t.organizations.c.id == org_id)
        .values(**{k: values[k] for k in changed if k not in PSEUDO}, updated_at=now)
    )
    after = {**before, **values}
    if "vat_rates" in changed:
        store_rates(conn, org_id, str(after["country"]), values["vat_rates"])
    append_audit(
        conn,
        [
            audit_row(
                org_id,
                "organization",
                org_id,
                what,
                actor,
                now,
                jsonable(before, changed),
                jsonable(after, changed),
            )
        ],
    )
    payload = {"id": org_id, "object": "organization", "changed": list(changed), **jsonable(after, changed)}
    append_outbox(conn, [outbox_row(org_id, "organization.updated", "organization", org_id, now, payload)])


def _sandboxes(conn: Connection, org_id: int) -> list[int]:
    """Test-mode sandboxes made beside this organisation: they follow its settings (not its numbers)."""
    o_ = t.organizations.c
    return [
        int(i) for i in conn.execute(select(o_.id).where(o_.sandbox_of == org_id).order_by(o_.id)).scalars()
    ]


def _with_rates(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "vat_rates": current_rates(conn, int(row["id"]), str(row["country"]))}


def _require_rates(conn: Connection, org_id: int, before: dict[str, Any], values: dict[str, Any]) -> None:
    """A VAT-registered organisation bills with its country's standard rate: it must have one."""
    after = {**before, **values}
    if not after["vat_registered"]:
        return
    rates = values.get("vat_rates") or current_rates(conn, org_id, str(after["country"]))
    if not rates.get("standard"):
        raise FieldConflictError(
            "vat_rates", f'a VAT-registered organisation in {after["country"]} needs {{"standard": "0.20"}}'
        )


def update_settings(
    db: Database, clock: Clock, org_id: int, changes: Mapping[str, Any], *, actor: str = "cli"
) -> tuple[str, ...]:
    """Apply settings changes to an organisation and its sandboxes; returns the columns that changed
    on the organisation itself (none: nothing written)."""
    with db.write() as conn:
        before = _with_rates(conn, _locked_org(conn, org_id))
        values = validate_changes(before, changes)
        _require_rates(conn, org_id, before, values)
        _record(conn, clock, org_id, before, values, actor, "updated")
        for sandbox in _sandboxes(conn, org_id):
            mirror = _with_rates(conn, _locked_org(conn, sandbox))
            try:
                mirrored = validate_changes(mirror, changes)
                _require_rates(conn, sandbox, mirror, mirrored)
            except ValidationError:
                continue  # the sandbox was changed on its own (by a test key) so that this does not fit it
            _record(conn, clock, sandbox, mirror, mirrored, actor, "updated")
        return tuple(k for k, val in values.items() if before.get(k) != val)


def set_logo(db: Database, clock: Clock, org_id: int, logo: Logo, *, actor: str = "cli") -> str:
    """Store a checked logo (bytes kept by hash, never overwritten) and make it the current one, here
    and in the organisation's sandboxes."""
    lg = t.organization_logos.c
    with db.write() as conn:
        for target in (org_id, *_sandboxes(conn, org_id)):
            before = _locked_org(conn, target)
            known = conn.execute(
                select(lg.id).where(lg.organization_id == target, lg.sha256 == logo.sha256)
            ).scalar_one_or_none()
            if known is None:
                conn.execute(
                    insert(t.organization_logos).values(
                        organization_id=target,
                        sha256=logo.sha256,
                        content_type=logo.content_type,
                        width=logo.width,
                        height=logo.height,
                        data=logo.data,
                        created_at=clock.now(),
                    )
                )
            _record(conn, clock, target, before, {"logo_sha256": logo.sha256}, actor, "logo_set")
    return logo.sha256


def remove_logo(db: Database, clock: Clock, org_id: int, *, actor: str = "cli") -> None:
    """The next documents carry no logo; stored bytes stay for the documents that froze them."""
    with db.write() as conn:
        for target in (org_id, *_sandboxes(conn, org_id)):
            before = _locked_org(conn, target)
            _record(conn, clock, target, before, {"logo_sha256": None}, actor, "logo_removed")


def set_series(
    db: Database,
    clock: Clock,
    org_id: int,
    document_type: str,
    series: str,
    *,
    number_format: str | None = None,
    next_value: int | None = None,
    actor: str = "cli",
) -> dict[str, Any]:
    """Create a number series or change its format or counter.

    Issued documents keep the number they were given (it is stored, not recomputed), so a new format
    only shapes the next numbers. The counter may move forward (a business continuing its numbering
    from another system) but never back, which would hand out a legal number twice.
    """
    if document_type not in {d.value for d in DocumentType}:
        raise InvalidFieldError("document_type", "must be invoice, proforma or credit_note")
    name = v.text("series", series, max_len=32)
    if not name.replace("-", "").replace("_", "").isalnum():
        raise InvalidFieldError("series", "must be letters, digits, - or _")
    if number_format is not None:
        validate_format(number_format, "format")
    if next_value is not None and (isinstance(next_value, bool) or not 1 <= next_value <= 10**15):
        raise InvalidFieldError("next_value", "must be a whole number from 1")
    ns = t.number_series
    with db.write() as conn:
        _locked_org(conn, org_id)  # one settings change at a time per organisation
        row = (
            conn.execute(
                select(ns)
                .where(
                    ns.c.organization_id == org_id, ns.c.document_type == document_type, ns.c.series == name
                )
                .with_for_update()
            )
            .mappings()
            .one_or_none()
        )
        now = clock.now()
        if row is None:
            if number_format is None:
                raise FieldConflictError(
                    "format", "a new series needs a format (this one does not exist yet)"
                )
            start = next_value or 1
            conn.execute(
                insert(ns).values(
                    organization_id=org_id,
                    document_type=document_type,
                    series=name,
                    format=number_format,
                    next_value=start,
                    start_value=start,
                )
            )
            before: dict[str, Any] | None = None
        else:
            before = {"format": row["format"], "next_value": row["next_value"]}
            if next_value is not None and next_value < row["next_value"]:
                raise FieldConflictError(
                    "next_value", f"the counter is at {row['next_value']} and can only move forward"
                )
            conn.execute(
                update(ns)
                .where(ns.c.id == row["id"])
                .values(format=number_format or row["format"], next_value=next_value or row["next_value"])
            )
        after = (
            conn.execute(
                select(ns.c.document_type, ns.c.series, ns.c.format, ns.c.next_value, ns.c.start_value).where(
                    ns.c.organization_id == org_id, ns.c.document_type == document_type, ns.c.series == name
                )
            )
            .mappings()
            .one()
        )
        result = dict(after)
        if before != {"format": result["format"], "next_value": result["next_value"]}:
            key = f"number_series.{document_type}.{name}"
            append_audit(
                conn, [audit_row(org_id, "organization", org_id, "series_set", actor, now, before, result)]
            )
            payload = {"id": org_id, "object": "organization", "changed": [key], "number_series": result}
            append_outbox(
                conn, [outbox_row(org_id, "organization.updated", "organization", org_id, now, payload)]
            )
            conn.execute(update(t.organizations).where(t.organizations.c.id == org_id).values(updated_at=now))
    return result
