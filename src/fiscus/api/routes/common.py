"""Pieces every resource router shares: the idempotent route class, list parameters, list envelopes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from fiscus.api.idempotency import IdempotentRoute
from fiscus.api.schemas import Id


def router(tag: str) -> APIRouter:
    return APIRouter(prefix="/api/v1", tags=[tag], route_class=IdempotentRoute)


Limit = Annotated[int, Query(ge=1, le=100, description="page size, 1 to 100")]
StartingAfter = Annotated[Id | None, Query(description="id of the last object of the previous page")]
EndingBefore = Annotated[Id | None, Query(description="id of the first object of the next page")]
Expand = Annotated[list[str] | None, Query(alias="expand[]", description="nested objects to include")]


def envelope(request: Request, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": request.url.path}


IDEMPOTENCY_HEADER = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
            "description": "retries with the same key and body replay the first response",
        }
    ]
}
