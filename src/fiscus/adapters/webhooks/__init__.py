"""Outbound webhooks: the SSRF guard and the HTTP sender (the worker decides what to send when)."""
