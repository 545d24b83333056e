"""Compatibility dialect (work in progress)."""

from __future__ import annotations

from fastapi import APIRouter

from fiscus.config import Settings


def router(settings: Settings) -> APIRouter:
    return APIRouter(prefix=settings.dialect_payments_prefix, tags=["compatibility: payments"])
