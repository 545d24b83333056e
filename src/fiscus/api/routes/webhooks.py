"""Webhook endpoints, deliveries and redelivery (filled in with the webhook delivery work)."""

from __future__ import annotations

from fiscus.api.routes.common import router

api = router("webhooks")
