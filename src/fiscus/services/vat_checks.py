"""An operator's check of a customer's VAT ID against the online registry (VIES for the EU), recorded
in the audit trail with the registry's answer: the check is the evidence a reverse-charge invoice relies
on, so when it was made, by whom and what the registry said is kept."""

from __future__ import annotations

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, audit_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import InvalidStateError
from fiscus.domain.tax import VatCheck, VatRegistry
from fiscus.services.common import get_scoped


def check_vat_id(
    db: Database,
    clock: Clock,
    registry: VatRegistry | None,
    org_id: int,
    customer_id: int,
    *,
    actor: str = "cli",
) -> VatCheck:
    """Ask the registry about the customer's stored VAT ID (outside any transaction: it is a network
    call), then audit the answer. Without a configured registry the answer is unknown (`valid` None)."""
    with db.read() as conn:
        customer = get_scoped(conn, t.customers, org_id, customer_id)
    vat_id = customer["vat_id"]
    if not vat_id:
        raise InvalidStateError("the customer has no VAT ID to check", id=customer_id)
    if registry is None:
        answer = VatCheck(None, detail="no VAT registry is configured (FISCUS_VIES_ENABLED is off)")
    else:
        answer = registry.check(str(vat_id))
    with db.write() as conn:
        get_scoped(conn, t.customers, org_id, customer_id)
        after = {"vat_id": vat_id, "valid": answer.valid, "name": answer.name, "detail": answer.detail}
        append_audit(
            conn, [audit_row(org_id, "customer", customer_id, "vat_checked", actor, clock.now(), None, after)]
        )
    return answer
