"""Billing runs: the organisation's runs, a dry-run preview of what a run now would issue (written
nowhere), starting it (through the same request-and-execute path as the API), and its progress, which
the page refreshes by itself while the run is pending or running (no JS needed)."""

from __future__ import annotations

from fastapi import Response
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.domain.errors import NotFoundError
from fiscus.services import operator_actions as act
from fiscus.services.billing_preview import preview_run
from fiscus.services.billing_requests import execute_run
from fiscus.services.operators import require
from fiscus.web.console import auth
from fiscus.web.console.routing import Ctx, org_page

REFRESH_SECONDS = 2


@org_page("/billing_runs")
def runs(ctx: Ctx) -> Response:
    r = t.billing_runs.c
    with ctx.c.db.read() as conn:
        rows = [
            dict(x)
            for x in conn.execute(
                select(t.billing_runs).where(r.organization_id == ctx.org).order_by(r.id.desc()).limit(50)
            ).mappings()
        ]
    return ctx.page("console/runs.html", {"title": "Billing runs", "rows": rows})


@org_page("/billing_runs/preview")
def preview(ctx: Ctx) -> Response:
    """What a run now would issue: the dry run `fiscus bill --dry-run` prints, for this organisation."""
    planned = preview_run(ctx.c.db, ctx.c.clock.now(), ctx.org)
    return ctx.page("console/run_preview.html", {"title": "Billing run preview", "preview": planned})


@org_page("/billing_runs/start", methods=("POST",))
def start(ctx: Ctx) -> Response:
    require(ctx.actor, "billing_runs.start")
    run_id = act.start_billing_run(ctx.c.db, ctx.c.clock, ctx.actor)
    ctx.request.app.state.executor.submit(
        execute_run, ctx.c.db, ctx.c.clock, run_id, batch_size=ctx.c.settings.billing_batch_size
    )
    return RedirectResponse(
        f"/console/{ctx.org}/billing_runs/{run_id}", status_code=303, headers=auth.headers()
    )


@org_page("/billing_runs/{run_id}")
def run(ctx: Ctx, run_id: int) -> Response:
    r = t.billing_runs.c
    with ctx.c.db.read() as conn:
        row = (
            conn.execute(select(t.billing_runs).where(r.id == run_id, r.organization_id == ctx.org))
            .mappings()
            .first()
        )
    if row is None:
        raise NotFoundError("billing_run", run_id)
    live = row["status"] in ("pending", "running")
    return ctx.page(
        "console/run.html",
        {"title": f"Billing run {run_id}", "run": dict(row), "refresh": REFRESH_SECONDS if live else 0},
    )
