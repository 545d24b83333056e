from __future__ import annotations

import structlog
from fastapi import Request, Response

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep, on_loop
from fiscus.api.middleware import BILLING_DOCUMENTS, BILLING_RUNS
from fiscus.api.routes.common import IDEMPOTENCY_HEADER, PageDep, list_response, one_response, router
from fiscus.api.schemas import BillingRunIn, BillingRunOut, Id, ListOut
from fiscus.domain.clock import Clock
from fiscus.services.billing_requests import execute_run, request_run

log = structlog.get_logger("fiscus.billing")

api = router("billing runs")


@api.post("/billing_runs", status_code=202, response_model=BillingRunOut, openapi_extra=IDEMPOTENCY_HEADER)
def create_billing_run(body: BillingRunIn, request: Request, principal: OrgDep, c: ContainerDep) -> Response:
    """Bill this organisation's due periods and orders as of `at` (default now). Returns at once with
    status `pending`; follow `GET /billing_runs/{id}` for progress. A `fiscus worker` also picks up
    requested runs, so one survives a server restart."""
    org = principal.organization_id
    run_id = request_run(c.db, c.clock, at=body.at, organization_id=org, actor=principal.actor)
    request.app.state.executor.submit(
        _execute_counted, c.db, c.clock, run_id, batch_size=c.settings.billing_batch_size
    )
    return one_response(c, org, t.billing_runs, run_id, "billing_run", p.billing_run, 202)


def _execute_counted(db: Database, clock: Clock, run_id: int, batch_size: int) -> None:
    try:
        summary = execute_run(db, clock, run_id, batch_size=batch_size)
    except Exception:
        BILLING_RUNS.labels("failed").inc()
        log.exception("billing run failed", run_id=run_id)
        return
    if summary is not None:
        BILLING_RUNS.labels("finished").inc()
        BILLING_DOCUMENTS.inc(summary.documents)


@api.get("/billing_runs", response_model=ListOut[BillingRunOut])
@on_loop
def list_billing_runs(request: Request, principal: OrgDep, c: ContainerDep, page: PageDep) -> Response:
    return list_response(request, c, principal.organization_id, t.billing_runs, p.billing_run, page)


@api.get("/billing_runs/{run_id}", response_model=BillingRunOut)
@on_loop
def get_billing_run(run_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    return one_response(c, principal.organization_id, t.billing_runs, run_id, "billing_run", p.billing_run)
