"""Which document followed a proforma: the invoice it was converted into, or the proforma that replaced
it when a customer entered a promotion code on its hosted page (`documents.replaces_id`, migration 0028).
Both are stored on the follower only (set as it is created, never changed), so the proforma's own row
stays as it was issued; these lookups find the follower by its unique key."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, RowMapping, select

from fiscus.adapters.db import tables as t
from fiscus.domain.documents import DocumentStatus, DocumentType


def successors(
    conn: Connection, headers: Mapping[int, RowMapping], found: list[int]
) -> tuple[dict[int, int], dict[int, int]]:
    """(converted to, replaced by) per proforma among `found`: one statement each, the second only when
    a void proforma is among them."""
    d = t.documents.c
    proformas = [i for i in found if headers[i]["type"] == DocumentType.PROFORMA.value]
    if not proformas:
        return {}, {}
    converted_to = {
        r.converted_from_id: r.id
        for r in conn.execute(select(d.id, d.converted_from_id).where(d.converted_from_id.in_(proformas)))
    }
    voided = [i for i in proformas if headers[i]["status"] == DocumentStatus.VOID.value]
    if not voided:
        return converted_to, {}
    replaced_by = {
        r.replaces_id: r.id
        for r in conn.execute(select(d.id, d.replaces_id).where(d.replaces_id.in_(voided)))
    }
    return converted_to, replaced_by
