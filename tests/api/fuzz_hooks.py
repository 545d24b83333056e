"""Schemathesis hooks for tests/api/test_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

They teach the generator two things a JSON Schema cannot say, both stated in the OpenAPI document:

- `Idempotency-Key` names one request: a retry with the same key and another body is refused (422,
  draft-ietf-httpapi-idempotency-key-header). Schemathesis draws the same few keys for every case, so
  each call gets a fresh key here; tests/api/test_idempotency.py covers replays and mismatches.
- Rules documented in the descriptions but beyond JSON Schema (a trial ends after the start, retry
  offsets increase, a credited line is named once, a VAT ID passes its checksum, a webhook URL is not
  private) are mended in positive cases; negative cases are sent as generated.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis
from schemathesis import Case
from schemathesis.generation import GenerationMode

from fiscus.adapters.webhooks import ssrf
from fiscus.api.idempotency import KEY_PATTERN
from fiscus.domain.errors import InvalidFieldError


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


def _keep_documented_rules(path: str, body: dict[str, Any]) -> None:
    """Mend what breaks a documented rule JSON Schema cannot state, in a positive body."""
    if body.get("vat_id"):
        del body["vat_id"]  # checked by checksum for the customer's country
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
