"""Schemathesis hooks for tests/api/test_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

They teach the generator two things a JSON Schema cannot say, both stated in the OpenAPI document:

- `Idempotency-Key` names one request: a retry with the same key and another body is refused (422,
  draft-ietf-httpapi-idempotency-key-header). Schemathesis draws the same few keys for every case, so
  each call gets a fresh key here; tests/api/test_idempotency.py covers replays and mismatches.
- Rules documented in the descriptions but beyond JSON Schema (a trial ends after the start, retry
  offsets increase, a credited line is named once, a VAT ID, national ID, IBAN or routing number
  passes its checksum, a webhook URL is not private, Factur-X wants tax rounded per document, dunning
  emails fit the retry days, usage tiers ascend) are mended in positive cases; negative cases are sent
  as generated.
- What a logo part may hold (its `encoding.contentType`: image/png, image/svg+xml) comes from real
  PNG and SVG generators registered for those media types, not from arbitrary bytes.
"""

from __future__ import annotations

import itertools
import struct
import uuid
import zlib
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.generation import GenerationMode

from fiscus.adapters.webhooks import ssrf
from fiscus.api.idempotency import KEY_PATTERN
from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.logo import PNG, SVG
from fiscus.domain.tax import EU_MEMBER_STATES

VALID_ACCOUNT: dict[str, Any] = {"iban": "BG80BNBG96611020345678", "bic": "BNBGBGSF"}
"""An IBAN with its BIC (both checksummed by the server) for generated bank accounts."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, grey: int) -> bytes:
    """A well-formed greyscale PNG of the given size (each row: filter byte 0, then the pixels)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = (b"\x00" + bytes([grey]) * width) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(pixels))
        + _chunk(b"IEND", b"")
    )


def _svg(width: int, height: int, colour: int) -> bytes:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<rect width="{width}" height="{height}" fill="#{colour:06x}"/></svg>'
    ).encode()


_SIDE = st.integers(min_value=1, max_value=64)
schemathesis.openapi.media_type(PNG, st.builds(_png, _SIDE, _SIDE, st.integers(0, 255)))
schemathesis.openapi.media_type(SVG, st.builds(_svg, _SIDE, _SIDE, st.integers(0, 0xFFFFFF)))


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return None


def _private(url: object) -> bool:
    try:
        ssrf.check_static(str(url), allow_private=False)
    except ssrf.BlockedDestination:
        return True
    except InvalidFieldError:
        return False
    return False


def _keep_organization_rules(body: dict[str, Any]) -> None:
    """Settings checked by checksum for the country, and rules over several settings the body sets."""
    if body.get("tax_id"):
        del body["tax_id"]  # BIN, EIK or EIN by checksum for the organisation's country
    accounts = body.get("bank_accounts")
    if isinstance(accounts, list):
        body["bank_accounts"] = [
            {**{k: a.get(k) for k in ("label", "bank_name", "currency")}, **VALID_ACCOUNT}
            for a in accounts
            if isinstance(a, dict)
        ]
    if body.get("facturx_enabled") is True and body.get("tax_rounding") == "line":
        body["tax_rounding"] = "document"  # EN 16931 BR-S-09
    if body.get("vat_registered") is True and body.get("country") in EU_MEMBER_STATES and "vat_id" in body:
        body["vat_registered"] = False  # an EU VAT-registered organisation prints its VAT ID


def _keep_dunning_rules(dunning: dict[str, Any]) -> None:
    """Retries strictly increase; with new retry days, one email per failed try and a final notice only
    before a retry (without them, a list that misfits the stored schedule is a documented 409)."""
    days = dunning.get("retry_days")
    if isinstance(days, list):
        dunning["retry_days"] = days = sorted(set(days))
    emails = dunning.get("emails")
    if isinstance(days, list) and isinstance(emails, list):
        fitted = (emails + ["payment_failed"] * (len(days) + 1))[: len(days) + 1]
        last = "payment_failed" if fitted[-1] == "final_notice" else fitted[-1]
        dunning["emails"] = [*fitted[: len(days)], last]


def _keep_usage_price_rules(body: dict[str, Any]) -> None:
    """Tiers ascend with only the last unbounded (graduated, volume need one), a package is not empty,
    a minimum amount is not above the maximum: the rules the description states."""
    props = body.get("properties")
    if not isinstance(props, dict):
        return
    if body.get("charge_model") in ("graduated", "volume"):
        tiers = [t for t in props.get("tiers") or [] if isinstance(t, dict)] or [{"up_to": None}]
        for i, tier in enumerate(tiers):
            tier["up_to"] = None if i == len(tiers) - 1 else str(i + 1)
        props["tiers"] = tiers
    size = props.get("package_size")
    if body.get("charge_model") == "package" and size is not None and Decimal(size) == 0:
        props["package_size"] = "1"
    low, high = props.get("min_amount"), props.get("max_amount")
    if low is not None and high is not None and Decimal(low) > Decimal(high):
        props["min_amount"], props["max_amount"] = high, low


def _keep_documented_rules(path: str, body: dict[str, Any]) -> None:
    """Mend what breaks a documented rule JSON Schema cannot state, in a positive body."""
    if body.get("vat_id"):
        del body["vat_id"]  # checked by checksum for the customer's (or organisation's) country
    if path.startswith(("/api/v1/organization", "/api/v1/organizations")):
        _keep_organization_rules(body)
    if path == "/api/v1/email_settings" and isinstance(body.get("dunning"), dict):
        _keep_dunning_rules(body["dunning"])
    if path.endswith("/usage_prices"):
        _keep_usage_price_rules(body)
    if "url" in body and _private(body["url"]):
        body["url"] = "https://example.com/hooks/fiscus"  # private destinations need the server's opt-in
    lines = body.get("lines")
    if isinstance(lines, list):
        positions = [line.get("position") if isinstance(line, dict) else None for line in lines]
        body["lines"] = [line for i, line in enumerate(lines) if positions[i] not in positions[:i]]
    at = _instant(body.get("at")) if path == "/api/v1/billing_runs" else None
    if at is not None and abs(at - datetime.now(UTC)) > timedelta(days=400):
        del body["at"]  # valid, but billing decades ahead ties the writer up for minutes
    if path == "/api/v1/subscriptions":
        start = _instant(body.get("start_at")) or datetime.now(UTC)
        end = _instant(body.get("trial_end"))
        if end is not None and end <= start:
            del body["trial_end"]
    days = body.get("retry_days")
    if isinstance(days, list) and any(b <= a for a, b in itertools.pairwise(days)):
        body["retry_days"] = sorted(set(days))


@schemathesis.hook
def before_call(context: Any, case: Case[Any], kwargs: dict[str, Any]) -> None:
    headers: MutableMapping[str, Any] = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and KEY_PATTERN.match(str(headers[name])):
            headers[name] = uuid.uuid4().hex
    meta = case.meta
    positive = meta is None or meta.generation.mode is GenerationMode.POSITIVE
    if positive and isinstance(case.body, dict):
        _keep_documented_rules(case.operation.path, case.body)
