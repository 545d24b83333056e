"""The one place that knows HTTP status codes: domain errors and request problems become RFC 9457
`application/problem+json` bodies with a stable `code`, and for validation the fields at fault as
JSON pointers into the request."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fiscus.domain.errors import (
    ConflictError,
    DomainError,
    FieldConflictError,
    InvalidStateError,
    NotFoundError,
    ValidationError,
)

log = logging.getLogger(__name__)

PROBLEM: Final = "application/problem+json"
TYPE_BASE: Final = "https://fiscus.dev/problems/"

STATUS: Final[list[tuple[type[DomainError], int]]] = [
    (FieldConflictError, 409),
    (NotFoundError, 404),
    (ValidationError, 422),
    (InvalidStateError, 409),
    (ConflictError, 409),
]

HTTP_CODES: Final = {
    400: ("bad_request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Not allowed for this credential"),
    404: ("not_found", "No such object"),
    405: ("method_not_allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "The input is not valid"),
    429: ("rate_limited", "Too many requests"),
    500: ("internal_error", "Internal server error"),
}


class FieldValueError(ValueError):
    """A model-level validator's refusal of one field inside the model: `loc` is the field's path
    below the model, appended to the pointer of the problem (pydantic would point at the model)."""

    def __init__(self, message: str, loc: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.loc = loc


class ApiError(Exception):
    """An HTTP-level refusal raised by the edge itself (auth, idempotency, limits)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or HTTP_CODES.get(status, ("error", ""))[0]
        self.headers = headers or {}
        self.extra = extra


def problem(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    default_code, default_title = HTTP_CODES.get(status, ("error", "Error"))
    code = code or default_code
    body = {
        "type": TYPE_BASE + code,
        "title": title or default_title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _pointer(parts: tuple[int | str, ...] | list[int | str]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _field_error(field: str, detail: str) -> dict[str, str]:
    return {"pointer": _pointer(["body", *field.split(".")]), "field": field, "detail": detail}


def status_of(exc: DomainError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def domain_problem(exc: DomainError) -> JSONResponse:
    status = status_of(exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationError):
        extra["errors"] = [
            {
                "pointer": _pointer(["body", *p.field.split(".")]) if p.field else "",
                "field": p.field,
                "detail": p.message,
            }
            for p in exc.problems
        ]
        if isinstance(exc.data.get("reason"), str):  # a refused discount names why (issue 17)
            extra["reason"] = exc.data["reason"]
    elif isinstance(exc, NotFoundError):
        extra["entity"] = exc.entity
        if exc.field:
            extra["errors"] = [_field_error(exc.field, exc.message)]
    return problem(status, exc.message, code=exc.code, title=exc.title, **extra)


Surface = tuple[str, Callable[[], Response]]
"""A surface with an error shape of its own (a compatibility dialect): the base path it serves and its
answer to a server error."""


def _owner(path: str, surfaces: Sequence[Surface]) -> Callable[[], Response] | None:
    for base, server_error in surfaces:
        if path == base or path.startswith(base.rstrip("/") + "/"):
            return server_error
    return None


class ServerErrors:
    """An unexpected exception becomes a 500 in the shape of the surface that owns the path, logged with
    its traceback, and is not raised further: raised past the app, uvicorn would close the connection
    under the client and Starlette would answer plain text. Added first, so it sits inside the request
    id, access log and metrics middleware, which see the 500 like any other response."""

    def __init__(self, app: ASGIApp, surfaces: Sequence[Surface] = ()) -> None:
        self.app = app
        self.surfaces = surfaces

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            path = str(scope.get("path", ""))
            log.exception("unhandled error on %s %s", scope.get("method"), path)
            if started:  # a body already under way cannot be replaced: end it as it is
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            server_error = _owner(path, self.surfaces)
            response = (
                server_error()
                if server_error is not None
                else problem(500, "an unexpected error occurred; it has been logged", code="internal_error")
            )
            await response(scope, receive, send)


JSON_TYPE: Final = "application/json"


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == JSON_TYPE or (media.startswith("application/") and media.endswith("+json"))


def line_column(doc: str, pos: int) -> tuple[int, int]:
    """1-based line and column of character `pos` in `doc`, as an editor shows them."""
    line = doc.count("\n", 0, pos) + 1
    return line, pos - (doc.rfind("\n", 0, pos) + 1) + 1


def body_problem(request: Request, exc: RequestValidationError) -> JSONResponse | None:
    """A body the route could not read at all, told apart from a body with wrong fields (422): JSON
    that does not parse is a 400 saying where (line, column, what the parser expected), and a body
    sent without a JSON content type is a 415 naming the expected one."""
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid" and len(loc) == 2 and isinstance(loc[1], int):
            doc = exc.body if isinstance(exc.body, str) else ""
            line, column = line_column(doc, loc[1])
            reason = str((err.get("ctx") or {}).get("error", "invalid JSON"))
            return problem(
                400,
                f"the body is not valid JSON: {reason} at line {line}, column {column}",
                code="malformed_json",
                title="Malformed JSON",
                line=line,
                column=column,
                position=loc[1],
            )
    given = request.headers.get("content-type")
    if not _is_json(given) and any(tuple(e.get("loc", ())) == ("body",) for e in exc.errors()):
        sent = f"Content-Type {given.split(';', 1)[0].strip()!r}" if given else "no Content-Type"
        return problem(
            415,
            f"this endpoint takes a JSON body: send Content-Type: {JSON_TYPE} (the request had {sent})",
            code="unsupported_media_type",
            headers={"Accept-Post": JSON_TYPE},
            expected=JSON_TYPE,
        )
    return None


def install(app: FastAPI, surfaces: Sequence[Surface] = ()) -> None:
    """Every refusal and failure in the shape of the surface that owns the path: RFC 9457 problems for
    the native API, each dialect's own body for its paths (`surfaces`), server errors included
    (`ServerErrors`)."""

    app.add_middleware(ServerErrors, surfaces=surfaces)

    @app.exception_handler(DomainError)
    async def _domain(_request: Request, exc: DomainError) -> JSONResponse:
        return domain_problem(exc)

    @app.exception_handler(ApiError)
    async def _api(_request: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.detail, code=exc.code, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        unreadable = body_problem(request, exc)
        if unreadable is not None:
            return unreadable
        errors = []
        for err in exc.errors():
            loc = [p for p in err.get("loc", ()) if isinstance(p, int | str)]
            inner = (err.get("ctx") or {}).get("error")
            if isinstance(inner, FieldValueError):
                loc.extend(inner.loc)
            errors.append(
                {
                    "pointer": _pointer(loc),
                    "field": ".".join(str(p) for p in loc[1:]),
                    "detail": str(err.get("msg", "invalid")),
                }
            )
        detail = (
            "; ".join(f"{e['field'] or e['pointer']}: {e['detail']}" for e in errors) or "invalid request"
        )
        return problem(422, detail, code="validation_error", errors=errors)

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, exc: IntegrityError) -> JSONResponse:
        """A unique or foreign-key constraint refused the write (e.g. a race the service checks missed)."""
        return problem(409, "the request conflicts with an existing object", code="conflict")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))
