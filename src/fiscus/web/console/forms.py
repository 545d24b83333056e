"""What the catalog and settings pages share: a service's refusal turned into the errors shown next
to each field (the API's own field names and messages) or at the top, and the form's small parsers
(which only shape what was typed; every rule is the service's)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency
from fastapi import Response

from fiscus.domain.errors import DomainError, ValidationError
from fiscus.web.console import auth
from fiscus.web.console.routing import Ctx


def errors_of(exc: DomainError) -> tuple[dict[str, str], str | None]:
    """(field → message, the message shown at the top when no field is at fault)."""
    if isinstance(exc, ValidationError):
        return {p.field: p.message for p in exc.problems}, None
    field = exc.data.get("field") if isinstance(getattr(exc, "data", None), dict) else None
    if isinstance(field, str):
        return {field: exc.message}, None
    return {}, exc.message


def status_of(exc: DomainError) -> int:
    """The API's status for the refusal: 422 for what the form alone gets wrong, 409 for a conflict
    with stored state, 404 for a missing object."""
    return {"not_found": 404, "forbidden": 403}.get(exc.code, 422 if exc.code == "validation_error" else 409)


def back(ctx: Ctx, path: str, flag: str = "saved") -> Response:
    """After a write: see the page again (POST-redirect-GET), with a notice."""
    sep = "&" if "?" in path else "?"
    return Response(
        status_code=303,
        headers={**auth.headers(), "Location": f"/console/{ctx.org}{path}{sep}{flag}=1"},
    )


def text(form: dict[str, str], name: str) -> str:
    return form.get(name, "").strip()


def optional(form: dict[str, str], name: str) -> str | None:
    return text(form, name) or None


def whole(form: dict[str, str], name: str) -> int | str | None:
    """A whole number as typed; anything else is passed on as text for the service to refuse."""
    value = text(form, name)
    if not value:
        return None
    return int(value) if value.isdigit() and len(value) < 16 else value


def listed(form: dict[str, str], name: str) -> list[str]:
    """Comma- or line-separated values."""
    raw = form.get(name, "").replace("\r", "").replace("\n", ",")
    return [p.strip() for p in raw.split(",") if p.strip()]


def amount_text(amount: Decimal, code: str, lang: str) -> str:
    """A unit amount in the operator's locale, with every digit it has (a usage price may carry more
    than the currency's minor units)."""
    try:
        return format_currency(amount, code, locale=lang, decimal_quantization=False)
    except (InvalidOperation, ValueError):
        return f"{amount} {code}"
