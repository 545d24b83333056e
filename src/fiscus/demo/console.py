"""The demo's operator: one admin of every demo sandbox, so `make demo` opens the console at once.

Its password is fixed and printed (like the kept test keys): it reaches only the test-mode sandboxes,
never a live organisation. Made once; a second run finds it and creates nothing.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select

from fiscus.adapters.db import tables_console as tc
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.services.operators import create_operator, grant_role

EMAIL: Final = "demo@fiscus.example"
PASSWORD: Final = "demo-console-2026"


def ensure_demo_operator(db: Database, clock: Clock, org_ids: list[int]) -> tuple[str, str]:
    """The demo operator's login (e-mail, password), made if missing, admin of each of `org_ids`."""
    if not org_ids:
        return EMAIL, PASSWORD
    m, o = tc.operator_memberships.c, tc.operators.c
    with db.read() as conn:
        operator_id = conn.execute(select(o.id).where(o.email == EMAIL)).scalar()
        member_of = set(
            conn.execute(select(m.organization_id).where(m.operator_id == operator_id)).scalars()
            if operator_id is not None
            else []
        )
    if operator_id is None:
        create_operator(
            db,
            clock,
            email=EMAIL,
            org_id=org_ids[0],
            role="admin",
            password=PASSWORD,
            name="Demo",
            actor="demo",
        )
        member_of.add(org_ids[0])
    for org_id in org_ids:
        if org_id not in member_of:
            grant_role(db, clock, email=EMAIL, org_id=org_id, role="admin", actor="demo")
    return EMAIL, PASSWORD
