"""Who a read is for: an organisation, or one customer of it. Every read query filters by it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table


@dataclass(frozen=True, slots=True)
class Scope:
    organization_id: int
    customer_id: int | None = None

    def apply(self, query: Select[Any], table: Table) -> Select[Any]:
        query = query.where(table.c.organization_id == self.organization_id)
        if self.customer_id is not None and "customer_id" in table.c:
            query = query.where(table.c.customer_id == self.customer_id)
        return query
