"""Service errors in the customer's language. The use cases the portal calls speak English to the API's
developers (`must not be empty`, `'X' is not a VAT number of BG`); a customer reads a message chosen by
the error's field and kind instead, so no English leaks into a Bulgarian page. The service's own
message is never shown (it may quote input or internals): an unrecognised one gets the field's
general message."""

from __future__ import annotations

import re
from collections.abc import Mapping

from fiscus.domain.errors import DomainError, FieldProblem, InvalidStateError, ValidationError

_TOO_LONG = re.compile(r"at most (\d+) characters")

FIELD_MESSAGES: dict[str, str] = {
    "email": "err_email",
    "vat_id": "err_vat_id",
    "quantity": "err_quantity",
    "price_id": "err_plan",
    "reason": "err_reason",
    "items": "err_plan",
}
"""The message for any problem with a field that has one meaning for a customer."""


def field_message(t: Mapping[str, str], problem: FieldProblem) -> tuple[str, str]:
    """(the form field, the message in the customer's language) of one service problem."""
    name = problem.field.split(".")[0]
    if name == "items":  # `items.0.price_id`, `items`: the plan chosen
        name = "price_id"
    text = problem.message
    if "must not be empty" in text:
        return name, t["err_required"]
    if m := _TOO_LONG.search(text):
        return name, t["err_too_long"].format(n=m.group(1))
    if name == "vat_id" and "VIES" in text:
        return name, t["err_vat_unregistered"]
    return name, t[FIELD_MESSAGES.get(name, "err_invalid")]


def field_errors(t: Mapping[str, str], exc: ValidationError) -> dict[str, str]:
    """Every problem of a validation error by form field (the first one per field)."""
    out: dict[str, str] = {}
    for p in exc.problems:
        name, text = field_message(t, p)
        out.setdefault(name, text)
    return out


def conflict_message(t: Mapping[str, str], exc: DomainError) -> str:
    """A rule the stored state breaks (already cancelling, a change the subscription's state refuses)."""
    return t["err_state" if isinstance(exc, InvalidStateError) else "err_conflict"]
