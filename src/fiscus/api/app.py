"""The HTTP application. Health and readiness now; the resources arrive with the native API."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from fiscus.adapters.db.migrations import is_up_to_date
from fiscus.bootstrap import Container, build


def create_app(container: Container | None = None) -> FastAPI:
    c = container or build()
    app = FastAPI(title="Fiscus", version="0.1.0", openapi_url="/openapi.json", docs_url="/docs")
    app.state.container = c

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=None)
    def readyz() -> JSONResponse:
        try:
            with c.db.read() as conn:
                conn.execute(text("SELECT 1"))
            migrated = is_up_to_date(c.db.engine)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
        if not migrated:
            return JSONResponse({"status": "unavailable", "detail": "database not migrated"}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app
