"""A built-in test payment gateway: its own HTTP service and ledger, like a test-mode processor."""

from fiscus.gateway.app import create_gateway_app, serve_gateway

__all__ = ["create_gateway_app", "serve_gateway"]
