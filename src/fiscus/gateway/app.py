"""The test payment gateway's HTTP API, and its signed webhooks back to Fiscus.

It stands in for a real processor (like Stripe's test mode) so that Fiscus's payment code talks real
HTTP, with real timeouts and retries, to a service with its own ledger.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError
from standardwebhooks import Webhook
from starlette.concurrency import run_in_threadpool

from fiscus.gateway import cards
from fiscus.gateway.ledger import GatewayError, Json, Ledger, OpResult

log = logging.getLogger("fiscus.gateway")

MAX_AMOUNT = 10**12  # minor units; far above any real charge, far below SQLite's integer limit


# -- request bodies ------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PaymentMethodIn(_Body):
    card_number: StrictStr
    exp_month: Annotated[StrictInt, Field(ge=1, le=12)]
    exp_year: Annotated[StrictInt, Field(ge=2000, le=2199)]
    cvc: Annotated[StrictStr, Field(pattern=r"^[0-9]{3,4}$")]
    holder: Annotated[StrictStr, Field(max_length=200)] = ""


class ChargeIn(_Body):
    token: StrictStr
    amount: Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT)]
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Za-z]{3}$")]
    capture: StrictBool = True
    reference: Annotated[StrictStr, Field(max_length=500)] | None = None


class CaptureIn(_Body):
    amount: Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT)] | None = None


class VoidIn(_Body):
    pass


class RefundIn(_Body):
    amount: Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT)]


BodyT = TypeVar("BodyT", bound=_Body)


# -- webhooks -------------------------------------------------------------------------------------------


class WebhookSender:
    """Fire-and-forget delivery on one background thread, so events arrive in order and a slow or
    dead receiver never delays or fails a charge."""

    def __init__(self, url: str, secret: str, retry_delays: Sequence[float] = (0.5, 2.0)) -> None:
        self.url = url
        self._webhook = Webhook(secret)
        self._retry_delays = tuple(retry_delays)
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def send(self, event_type: str, data: Json, created_at: str) -> None:
        event_id = f"evt_{uuid.uuid4().hex}"
        payload = {"id": event_id, "type": event_type, "created_at": created_at, "data": data}
        self._queue.put((event_id, json.dumps(payload, separators=(",", ":")).encode()))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gateway-webhooks", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Let queued events go out (bounded by `timeout`), then stop the thread."""
        self._queue.put(None)
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._stopping.set()

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while (item := self._queue.get()) is not None:
                self._deliver(client, *item)

    def _deliver(self, client: httpx.Client, event_id: str, body: bytes) -> None:
        for attempt, delay in enumerate((0.0, *self._retry_delays), start=1):
            if delay and self._stopping.wait(delay):
                return
            # Real time, not the gateway's clock: receivers reject signatures with a stale timestamp.
            now = datetime.now(UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": event_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": self._webhook.sign(event_id, now, body.decode()),
            }
            try:
                response = client.post(self.url, content=body, headers=headers)
                if response.is_success:
                    return
                log.warning("webhook %s attempt %d: HTTP %d", event_id, attempt, response.status_code)
            except httpx.HTTPError as exc:
                log.warning("webhook %s attempt %d: %s", event_id, attempt, type(exc).__name__)
        log.error("webhook %s given up after %d attempts", event_id, 1 + len(self._retry_delays))


# -- the app --------------------------------------------------------------------------------------------


def _error(status_code: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status_code)


async def _parse(request: Request, model: type[BodyT]) -> tuple[Json, BodyT]:
    """Parse and validate the JSON body; errors never echo the input (it may hold a card number)."""
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise GatewayError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise GatewayError(400, "invalid_json", "The request body must be a JSON object.")
    try:
        return data, model.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise GatewayError(422, "invalid_request", details) from None


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key", "").strip()
    if not key:
        raise GatewayError(
            400, "idempotency_key_required", "Every POST needs an Idempotency-Key header (a unique string)."
        )
    if len(key) > 255:
        raise GatewayError(400, "idempotency_key_too_long", "An Idempotency-Key is at most 255 characters.")
    return key


def create_gateway_app(
    db_path: Path,
    *,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    clock: Callable[[], datetime] | None = None,
    slow_seconds: float = 2.0,
    timeout_seconds: float = 15.0,
    webhook_retry_delays: Sequence[float] = (0.5, 2.0),
) -> FastAPI:
    """The gateway as an ASGI app over the SQLite ledger at `db_path` (created if missing).

    `timeout_seconds` is how long the TIMEOUT test card holds its response: set it above the
    client's timeout. `webhook_secret` is a standard-webhooks secret (`whsec_…`, base64).
    """
    if webhook_url and not webhook_secret:
        raise ValueError("webhook_secret is required when webhook_url is set")
    ledger = Ledger(db_path, clock)
    sender = (
        WebhookSender(webhook_url, webhook_secret, webhook_retry_delays)
        if webhook_url and webhook_secret
        else None
    )
    delays = {"none": 0.0, "slow": slow_seconds, "timeout": timeout_seconds}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if sender is not None:
            await run_in_threadpool(sender.close)
        ledger.dispose()

    app = FastAPI(title="Fiscus test payment gateway", version="1", lifespan=lifespan)
    app.state.ledger = ledger

    @app.exception_handler(GatewayError)
    async def _on_gateway_error(_request: Request, exc: GatewayError) -> JSONResponse:
        return _error(exc.status_code, exc.code, exc.message)

    async def run(request: Request, body: Json, op: Callable[[Any], OpResult]) -> JSONResponse:
        """Execute `op` idempotently, send its events, then apply any test-card delay."""
        key = _idempotency_key(request)
        request_hash = ledger.request_hash(request.method, request.url.path, body)
        result, replayed = await run_in_threadpool(ledger.execute, key, request_hash, op)
        headers = {"idempotent-replayed": "true" if replayed else "false"}
        if not replayed:
            if sender is not None:
                created_at = ledger.now().isoformat().replace("+00:00", "Z")
                for event_type, data in result.events:
                    sender.send(event_type, data, created_at)
            if delays[result.delay]:
                # The charge is committed already: a client that gives up has an unknown outcome to settle.
                await asyncio.sleep(delays[result.delay])
        return JSONResponse(result.body, status_code=result.status_code, headers=headers)

    @app.post("/v1/payment_methods", status_code=201)
    async def create_payment_method(request: Request) -> JSONResponse:
        """Tokenise a card: afterwards only the token, brand, last4, expiry and fingerprint exist."""
        _idempotency_key(request)
        raw, card = await _parse(request, PaymentMethodIn)
        try:
            number = cards.normalise_number(card.card_number)
        except ValueError as exc:
            raise GatewayError(422, "invalid_card_number", str(exc)) from None
        return await run(
            request, raw, lambda conn: ledger.tokenise(conn, number, card.exp_month, card.exp_year)
        )

    @app.post("/v1/charges", status_code=201)
    async def create_charge(request: Request) -> JSONResponse:
        """Charge (or, with capture false, only authorise) a tokenised card."""
        key = _idempotency_key(request)
        raw, charge = await _parse(request, ChargeIn)
        return await run(
            request,
            raw,
            lambda conn: ledger.create_charge(
                conn,
                key=key,
                token=charge.token,
                amount=charge.amount,
                currency=charge.currency.upper(),
                capture=charge.capture,
                reference=charge.reference,
            ),
        )

    @app.post("/v1/charges/{charge_id}/capture")
    async def capture_charge(charge_id: str, request: Request) -> JSONResponse:
        """Capture an authorisation, fully or partly (once)."""
        key = _idempotency_key(request)
        raw, body = await _parse(request, CaptureIn)
        return await run(
            request, raw, lambda conn: ledger.capture(conn, key=key, charge_id=charge_id, amount=body.amount)
        )

    @app.post("/v1/charges/{charge_id}/void")
    async def void_charge(charge_id: str, request: Request) -> JSONResponse:
        """Release an authorisation."""
        _idempotency_key(request)
        raw, _ = await _parse(request, VoidIn)
        return await run(request, raw, lambda conn: ledger.void(conn, charge_id=charge_id))

    @app.post("/v1/charges/{charge_id}/refunds", status_code=201)
    async def refund_charge(charge_id: str, request: Request) -> JSONResponse:
        """Refund part of a captured charge; any number of times up to the captured amount."""
        key = _idempotency_key(request)
        raw, body = await _parse(request, RefundIn)
        return await run(
            request, raw, lambda conn: ledger.refund(conn, key=key, charge_id=charge_id, amount=body.amount)
        )

    @app.get("/v1/charges/{charge_id}")
    async def get_charge(charge_id: str) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(ledger.get_charge, charge_id))

    @app.get("/v1/charges")
    async def list_charges(idempotency_key: Annotated[str | None, Query()] = None) -> JSONResponse:
        """With `idempotency_key`: the charge that key created, if any; how an unknown outcome is settled."""
        return JSONResponse({"data": await run_in_threadpool(ledger.list_charges, idempotency_key)})

    @app.get("/v1/ledger")
    async def get_ledger() -> JSONResponse:
        """Every charge, capture and refund, for reconciliation against Fiscus."""
        return JSONResponse(await run_in_threadpool(ledger.ledger))

    return app


def serve_gateway(db_path: Path, host: str, port: int, **kwargs: Any) -> None:
    """Run the gateway with uvicorn until interrupted (what `fiscus gateway --port …` calls)."""
    uvicorn.run(create_gateway_app(db_path, **kwargs), host=host, port=port)
