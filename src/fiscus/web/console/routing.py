"""How a console handler runs: sign-in checked, the organisation of the URL opened as the operator's
actor, CSRF checked on posts, and the refusals turned into pages (login redirect, 403, 404), never a
5xx. Handlers are plain functions run in the thread pool; a post's form is read first, on the loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from fiscus.bootstrap import Container
from fiscus.domain.errors import NotFoundError
from fiscus.domain.logo import MAX_LOGO_BYTES
from fiscus.services.operators import Actor, PermissionDenied, require
from fiscus.web.console import auth

router = APIRouter(prefix="/console", include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Ctx:
    """What an organisation page handler gets."""

    request: Request
    c: Container
    operator: auth.Operator
    actor: Actor
    form: dict[str, str]
    files: dict[str, tuple[str | None, bytes]] = field(default_factory=dict)
    """Uploaded files of a multipart post: field → (content type, at most UPLOAD_LIMIT + 1 bytes)."""

    @property
    def org(self) -> int:
        return self.actor.organization_id

    def page(self, template: str, context: dict[str, Any], status: int = 200) -> Response:
        membership = next(m for m in self.operator.orgs if m.organization_id == self.org)
        base = {"actor": self.actor, "org": membership, "can": self.actor.can}
        return auth.page(self.request, template, {**base, **context}, operator=self.operator, status=status)


Handler = Callable[..., Response]


def _refused(request: Request, operator: auth.Operator | None, status: int, key: str) -> Response:
    return auth.page(
        request,
        "console/message.html",
        {"title": str(status), "message_key": key},
        operator=operator,
        status=status,
    )


UPLOAD_LIMIT = MAX_LOGO_BYTES
"""Bytes read of an uploaded file (one more tells the service it is too big)."""


async def _form(request: Request) -> tuple[dict[str, str], dict[str, tuple[str | None, bytes]]]:
    if request.method != "POST":
        return {}, {}
    raw = await request.form()
    files = {
        k: (v.content_type, await v.read(UPLOAD_LIMIT + 1))
        for k, v in raw.items()
        if isinstance(v, UploadFile)
    }
    return {k: v for k, v in raw.items() if isinstance(v, str)}, files


def org_page(
    path: str, *, methods: tuple[str, ...] = ("GET",), permission: str = "console.read"
) -> Callable[[Handler], Handler]:
    """Register `handler(ctx, **path_params)` under `/console/{org}<path>`. The operator must be
    signed in (else a redirect to login), a member of `org` (else 404) and allowed `permission`
    (else 403); a post needs a valid CSRF token (else 403)."""

    def register(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            form, files = await _form(request)
            return await run_in_threadpool(_run, handler, request, form, permission, files)

        endpoint.__name__ = handler.__name__
        router.add_api_route("/{org}" + path, endpoint, methods=list(methods), name=handler.__name__)
        return handler

    return register


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 19 else None


def _run(
    handler: Handler,
    request: Request,
    form: dict[str, str],
    permission: str,
    files: dict[str, tuple[str | None, bytes]] | None = None,
) -> Response:
    operator: auth.Operator | None = None
    try:
        operator = auth.current_operator(request)
        params = dict(request.path_params)
        org = _int(str(params.pop("org")))
        ids = {k: _int(str(v)) for k, v in params.items() if k.endswith("_id")}
        if org is None or any(v is None for v in ids.values()):
            raise NotFoundError("page", request.url.path)
        actor = auth.actor_in(request, operator, org)
        if request.method == "POST" and not auth.check_csrf(request, operator, form):
            return _refused(request, operator, 403, "csrf")
        require(actor, permission)
        rest = {k: v for k, v in params.items() if not k.endswith("_id")}
        return handler(
            Ctx(request, auth.container(request), operator, actor, form, files or {}), **ids, **rest
        )
    except auth.LoginRequired as exc:
        return auth.login_redirect(exc.next_path)
    except NotFoundError:
        return _refused(request, operator, 404, "not_found")
    except PermissionDenied:
        return _refused(request, operator, 403, "forbidden")
