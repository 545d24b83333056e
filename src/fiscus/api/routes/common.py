"""Pieces every resource router shares: the idempotent route class, list parameters, list envelopes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import Table

from fiscus.api.idempotency import IdempotentRoute
from fiscus.api.presenters import json_response
from fiscus.api.schemas import Id
from fiscus.bootstrap import Container
from fiscus.queries.rows import get_row, page_rows
from fiscus.queries.scope import Scope

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "pointer": {"type": "string"},
                    "field": {"type": "string"},
                    "detail": {"type": "string"},
                },
            },
        },
    },
}
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}}}
    for status, text in (
        (400, "Bad request"),
        (401, "No valid credential"),
        (403, "Not allowed for this credential"),
        (404, "No such object (or another tenant's)"),
        (409, "Conflict with the current state"),
        (413, "Body too large"),
        (415, "The body is not JSON (`Content-Type: application/json` expected)"),
        (422, "Invalid input; `errors` names the fields"),
        (429, "Rate limited"),
    )
}


def router(tag: str) -> APIRouter:
    return APIRouter(prefix="/api/v1", tags=[tag], route_class=IdempotentRoute, responses=PROBLEMS)


Limit = Annotated[int, Query(ge=1, le=100, description="page size, 1 to 100")]
StartingAfter = Annotated[Id | None, Query(description="id of the last object of the previous page")]
EndingBefore = Annotated[Id | None, Query(description="id of the first object of the next page")]
DocumentExpand = Annotated[
    list[Literal["lines", "customer", "subscription"]] | None,
    Query(alias="expand[]", description="nested objects to include"),
]
SubscriptionExpand = Annotated[
    list[Literal["customer"]] | None, Query(alias="expand[]", description="nested objects to include")
]


def envelope(request: Request, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": request.url.path}


IDEMPOTENCY_HEADER: dict[str, Any] = {}
"""Kept for the routes that still name it: IdempotentRoute documents the header on every POST."""


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    starting_after: int | None
    ending_before: int | None


def page_params(
    limit: Limit = 10, starting_after: StartingAfter = None, ending_before: EndingBefore = None
) -> Page:
    return Page(limit, starting_after, ending_before)


PageDep = Annotated[Page, Depends(page_params)]


def list_response(
    request: Request,
    c: Container,
    org_id: int,
    table: Table,
    present: Callable[[dict[str, Any]], dict[str, Any]],
    page: Page,
    where: list[Any] | None = None,
) -> Response:
    """A cursor page of one organisation's rows of a simple resource, presented."""
    with c.db.read() as conn:
        rows, more = page_rows(
            conn,
            Scope(org_id),
            table,
            limit=page.limit,
            starting_after=page.starting_after,
            ending_before=page.ending_before,
            where=where,
        )
    return json_response(envelope(request, [present(r) for r in rows], more))


def one_response(
    c: Container,
    org_id: int,
    table: Table,
    ident: int,
    entity: str,
    present: Callable[[dict[str, Any]], dict[str, Any]],
    status: int = 200,
) -> Response:
    """One of the organisation's rows of a simple resource, presented (404 for anyone else's)."""
    with c.db.read() as conn:
        return json_response(present(get_row(conn, Scope(org_id), table, ident, entity)), status)
