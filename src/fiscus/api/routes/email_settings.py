"""`/api/v1/email_settings`: the organisation's customer emails (sender, reply-to, colour, which kinds
are switched off, notice days) and its dunning policy (retry days, the email after each failed try, the
final action) as one object. The route parses and presents; the rules are `services/emails/settings.py`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Response
from pydantic import Field, Strict

from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep
from fiscus.api.routes.common import router
from fiscus.api.schemas import In, Out
from fiscus.services.emails.settings import (
    MAX_ADDRESS,
    SENDER_ADDRESS,
    read_email_settings,
    update_email_settings,
)

api = router("emails")

Kind = Literal[
    "invoice_issued",
    "proforma_issued",
    "credit_note_issued",
    "payment_receipt",
    "payment_failed",
    "final_notice",
    "final_action",
    "card_expiring",
    "trial_ending",
    "renewal_upcoming",
]
StepEmail = Literal["payment_failed", "final_notice", "none"]
FinalAction = Literal["leave_open", "mark_uncollectible", "cancel_subscription"]
Days = Annotated[int, Strict(), Field(ge=1, le=60)]


class DunningIn(In):
    retry_days: list[Days] | None = Field(
        None, max_length=8, description="days after the first failed charge to retry, strictly increasing"
    )
    final_action: FinalAction | None = None
    emails: list[StepEmail] | None = Field(
        None,
        max_length=9,
        description="the email after each failed try: one more than retries; a final notice needs a retry "
        "after it; left out with new retry_days: the default (final notice before the last retry). Sent "
        "without retry_days, a list that does not fit the stored schedule is a 409 `field_conflict`",
    )


Address = (
    Annotated[
        str, Field(max_length=MAX_ADDRESS, pattern=SENDER_ADDRESS.pattern, examples=["billing@example.com"])
    ]
    | Literal[""]
)
"""An ASCII address (dot-atom local part, a domain of two labels or more), or "" (like null) to clear it."""


class EmailSettingsIn(In):
    from_address: Address | None = Field(None, description='sender address; null or "": the instance\'s')
    from_name: str | None = Field(None, max_length=200, pattern=r"^[^\r\n]*$", description="one line")
    reply_to: Address | None = Field(None, description='null or "": the organisation\'s email')
    brand_color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")
    disabled: list[Kind] | None = Field(None, max_length=9, description="kinds not sent (replaces the list)")
    trial_notice_days: Days | None = None
    renewal_notice_days: Days | None = None
    dunning: DunningIn | None = None


class DunningOut(Out):
    retry_days: list[int]
    final_action: str
    emails: list[str]


class EmailSettingsOut(Out):
    object: Literal["email_settings"] = "email_settings"
    from_address: str | None
    from_name: str | None
    reply_to: str | None
    brand_color: str | None
    disabled: list[str]
    trial_notice_days: int
    renewal_notice_days: int
    dunning: DunningOut


def _present(settings: dict[str, Any]) -> Response:
    return p.json_response({"object": "email_settings", **settings})


@api.get("/email_settings", response_model=EmailSettingsOut)
def get_email_settings(principal: OrgDep, c: ContainerDep) -> Response:
    """Which emails the organisation's customers get, from whom, and its dunning policy."""
    with c.db.read() as conn:
        return _present(read_email_settings(conn, principal.organization_id))


@api.patch("/email_settings", response_model=EmailSettingsOut)
def patch_email_settings(body: EmailSettingsIn, principal: OrgDep, c: ContainerDep) -> Response:
    """Change the fields given; the others stay (null clears an optional one)."""
    changes = body.model_dump(exclude_unset=True)
    if body.dunning is not None:
        changes["dunning"] = body.dunning.model_dump(exclude_unset=True)
    after = update_email_settings(c.db, c.clock, principal.organization_id, changes, actor=principal.actor)
    return _present(after)
