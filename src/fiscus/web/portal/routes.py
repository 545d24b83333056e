"""The portal's routes, installed on the app in one call."""

from __future__ import annotations

from fastapi import FastAPI

from fiscus.web.portal import access, account, documents, promotion_codes, subscriptions


def install(app: FastAPI) -> None:
    for module in (access, documents, account, subscriptions, promotion_codes):
        app.include_router(module.router)
