"""The provider adapter for the built-in test gateway (`fiscus gateway`), over real HTTP with httpx.

Transport errors are sorted by what they mean for money: a connection that was never made moved
nothing (`ProviderUnreachable`); a timeout or a dropped connection after the request went out may have
charged (`OutcomeUnknown`), to be settled later by looking the charge up with the same idempotency key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from standardwebhooks import Webhook, WebhookVerificationError

from fiscus.domain.payments import (
    CardDetails,
    ChargeSnapshot,
    InboundEvent,
    OutcomeUnknown,
    ProviderError,
    ProviderLedger,
    ProviderUnreachable,
    RefundLine,
    RefundSnapshot,
)

NAME = "test_gateway"


class InvalidWebhook(Exception):
    """A webhook whose signature, timestamp or body does not check out."""


def _snapshot(body: Mapping[str, Any]) -> ChargeSnapshot:
    return ChargeSnapshot(
        charge_id=str(body["id"]),
        status=str(body["status"]),
        amount_minor=int(body["amount"]),
        captured_minor=int(body.get("captured_amount") or 0),
        refunded_minor=int(body.get("refunded_amount") or 0),
        decline_code=body.get("decline_code"),
        message=body.get("message"),
        reference=body.get("reference"),
        refunds=None
        if body.get("refunds") is None
        else tuple(RefundLine(str(r["id"]), int(r["amount"]), r.get("reference")) for r in body["refunds"]),
    )


class GatewayProvider:
    """`PaymentProvider` for the test gateway. One instance per process; the client is thread-safe."""

    name = NAME

    def __init__(
        self,
        base_url: str,
        *,
        webhook_secret: str | None = None,
        timeout_seconds: float = 10.0,
        connect_timeout_seconds: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._webhook = Webhook(webhook_secret) if webhook_secret else None
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, *, key: str | None = None, body: Any = None) -> Any:
        headers = {"Idempotency-Key": key} if key else {}
        try:
            response = self._client.request(method, path, json=body, headers=headers)
        except httpx.ConnectError as exc:
            raise ProviderUnreachable(f"{self.base_url} unreachable: {exc}") from None
        except httpx.TransportError as exc:
            if method == "GET":
                raise ProviderUnreachable(f"{self.base_url}: {type(exc).__name__}") from None
            raise OutcomeUnknown(f"{method} {path}: {type(exc).__name__}") from None
        if response.status_code >= 500:
            if method == "GET":
                raise ProviderUnreachable(f"{self.base_url} answered {response.status_code}")
            raise OutcomeUnknown(f"{method} {path}: HTTP {response.status_code}")
        data = response.json()
        if response.status_code >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            raise ProviderError(
                str(error.get("code", "provider_error")),
                str(error.get("message", f"HTTP {response.status_code}")),
                response.status_code,
            )
        return data

    def describe_card(self, token: str) -> CardDetails:
        body = self._call("GET", f"/v1/payment_methods/{quote(token, safe='')}")
        return CardDetails(
            token=body["token"],
            brand=body["brand"],
            last4=body["last4"],
            exp_month=int(body["exp_month"]),
            exp_year=int(body["exp_year"]),
            fingerprint=body["fingerprint"],
        )

    def charge(
        self, *, token: str, amount_minor: int, currency: str, capture: bool, reference: str, key: str
    ) -> ChargeSnapshot:
        body = {
            "token": token,
            "amount": amount_minor,
            "currency": currency,
            "capture": capture,
            "reference": reference,
        }
        return _snapshot(self._call("POST", "/v1/charges", key=key, body=body))

    def capture(self, *, charge_id: str, amount_minor: int | None, key: str) -> ChargeSnapshot:
        body = {} if amount_minor is None else {"amount": amount_minor}
        return _snapshot(self._call("POST", f"/v1/charges/{charge_id}/capture", key=key, body=body))

    def void(self, *, charge_id: str, key: str) -> ChargeSnapshot:
        return _snapshot(self._call("POST", f"/v1/charges/{charge_id}/void", key=key, body={}))

    def refund(self, *, charge_id: str, amount_minor: int, key: str) -> RefundSnapshot:
        body = self._call("POST", f"/v1/charges/{charge_id}/refunds", key=key, body={"amount": amount_minor})
        return RefundSnapshot(str(body["id"]), _snapshot(body["charge"]))

    def find_charge(self, key: str) -> ChargeSnapshot | None:
        body = self._client_get("/v1/charges", params={"idempotency_key": key})
        data = body.get("data") or []
        return _snapshot(data[0]) if data else None

    def _client_get(self, path: str, params: Mapping[str, str]) -> Any:
        try:
            response = self._client.get(path, params=params)
        except httpx.TransportError as exc:
            raise ProviderUnreachable(f"{self.base_url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise ProviderUnreachable(f"{self.base_url} answered {response.status_code}")
        return response.json()

    def get_charge(self, charge_id: str) -> ChargeSnapshot:
        return _snapshot(self._call("GET", f"/v1/charges/{charge_id}"))

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> InboundEvent:
        if self._webhook is None:
            raise InvalidWebhook("no webhook secret is configured (FISCUS_GATEWAY_WEBHOOK_SECRET)")
        try:
            self._webhook.verify(body, dict(headers))
            event = json.loads(body)
            return InboundEvent(str(event["id"]), str(event["type"]), _snapshot(event["data"]))
        except (WebhookVerificationError, ValueError, KeyError, TypeError) as exc:
            raise InvalidWebhook(str(exc) or type(exc).__name__) from None

    def ledger(self) -> ProviderLedger:
        body = self._call("GET", "/v1/ledger")
        return ProviderLedger({c["id"]: _snapshot(c) for c in body["charges"]})
