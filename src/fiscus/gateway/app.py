"""The test payment gateway's HTTP API, and its signed webhooks back to Fiscus.

It stands in for a real processor (like Stripe's test mode) so that Fiscus's payment code talks real
HTTP, with real timeouts and retries, to a service with its own ledger.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import SplitResult, parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

import httpx
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError
from standardwebhooks import Webhook
from starlette.concurrency import run_in_threadpool

from fiscus.gateway import cards
from fiscus.gateway.ledger import GatewayError, Json, Ledger, OpResult

log = logging.getLogger("fiscus.gateway")

MAX_AMOUNT = 10**12  # minor units; far above any real charge, far below SQLite's integer limit
MAX_STATE = 500
MAX_FORM_BYTES = 16 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Where the hosted form may send browsers back to when no `allowed_return_origins` are given."""
RETURN_PARAMS = frozenset({"state", "token", "error", "message"})
"""Query parameters the gateway sets on the return URL; any already there are dropped, so a shop
never reads a planted `token` instead of the gateway's."""
_PRINTABLE_URL = re.compile(r"[\x21-\x7e]+")


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


# -- the hosted card form -------------------------------------------------------------------------------


def _split_http_url(url: str) -> SplitResult:
    """An absolute http(s) URL, or ValueError; refuses whatever a browser could read differently from
    urlsplit (spaces, controls, backslashes, userinfo), so the origin checked is the origin visited."""
    if not _PRINTABLE_URL.fullmatch(url) or "\\" in url:
        raise ValueError("not a plain printable URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ValueError("not an absolute http(s) URL without userinfo")
    _ = parts.port  # raises ValueError for a bad port
    return parts


def _origin_of(parts: SplitResult) -> str:
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{host}:{port}"


def normalise_origin(origin: str) -> str:
    """`scheme://host[:port]` in canonical form (lower case, port explicit), or ValueError."""
    try:
        parts = _split_http_url(origin.strip())
    except ValueError:
        raise ValueError(f"{origin!r} is not an http(s) origin (scheme://host[:port])") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{origin!r} is an URL, not an origin (scheme://host[:port])")
    return _origin_of(parts)


def _redirect(return_to: SplitResult, params: list[tuple[str, str]]) -> Response:
    """303 to the return URL with `params` appended; its own query stays as it was, minus any
    parameter the gateway sets."""
    kept = [
        piece
        for piece in return_to.query.split("&")
        if piece and unquote_plus(piece.partition("=")[0]) not in RETURN_PARAMS
    ]
    location = urlunsplit(return_to._replace(query="&".join([*kept, urlencode(params)])))
    return Response(status_code=303, headers={"location": location, "cache-control": "no-store"})


async def _parse_form(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body as a dict; errors never echo it (card number)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise GatewayError(
            415, "unsupported_media_type", "Send the form as application/x-www-form-urlencoded."
        )
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise GatewayError(413, "request_too_large", f"The form is larger than {MAX_FORM_BYTES} bytes.")
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict", max_num_fields=20)
    except ValueError:  # includes UnicodeDecodeError
        raise GatewayError(400, "invalid_form", "The form body is not valid URL-encoded UTF-8.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise GatewayError(400, "invalid_form", f"The form field {name!r} appears more than once.")
        form[name] = value
    return form


def _form_card(form: dict[str, str]) -> tuple[str, int, int]:
    """Number, expiry month and year from the form, validated as POST /v1/payment_methods does.

    Expiry fields are strings in a form: only plain ASCII digits count (no signs, spaces or `_`, which
    int() would accept). Raises GatewayError with a short message meant for the card holder.
    """
    try:
        number = cards.normalise_number(form.get("card_number", ""))
    except ValueError:
        raise GatewayError(422, "invalid_card_number", "The card number is not valid.") from None
    month, year = form.get("exp_month", ""), form.get("exp_year", "")
    if not (
        re.fullmatch(r"[0-9]{1,2}", month)
        and re.fullmatch(r"[0-9]{4}", year)
        and 1 <= int(month) <= 12
        and 2000 <= int(year) <= 2199
    ):
        raise GatewayError(
            422, "invalid_expiry", "The expiry date is not valid (month 1-12, four-digit year)."
        )
    if not re.fullmatch(r"[0-9]{3,4}", form.get("cvc", "")):
        raise GatewayError(422, "invalid_cvc", "The security code must be 3 or 4 digits.")
    if len(form.get("holder", "")) > 200:
        raise GatewayError(422, "invalid_holder", "The card holder name is at most 200 characters.")
    return number, int(month), int(year)


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
    allowed_return_origins: Sequence[str] | None = None,
) -> FastAPI:
    """The gateway as an ASGI app over the SQLite ledger at `db_path` (created if missing).

    `timeout_seconds` is how long the TIMEOUT test card holds its response: set it above the
    client's timeout. `webhook_secret` is a standard-webhooks secret (`whsec_…`, base64).
    `allowed_return_origins` are the origins the hosted card form may redirect browsers back to
    (None: loopback hosts on any port), so the gateway is no open redirect.
    """
    if webhook_url and not webhook_secret:
        raise ValueError("webhook_secret is required when webhook_url is set")
    if isinstance(allowed_return_origins, str):
        raise ValueError("allowed_return_origins is a list of origins, not one string")
    return_origins = (
        None
        if allowed_return_origins is None
        else frozenset(normalise_origin(origin) for origin in allowed_return_origins)
    )
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

    @app.get("/v1/payment_methods/{token}")
    async def get_payment_method(token: str) -> JSONResponse:
        """The card facts behind a token, e.g. to show "Visa •••• 4242" after the hosted form."""
        return JSONResponse(await run_in_threadpool(ledger.get_payment_method, token))

    def checked_return_url(raw: str) -> SplitResult:
        """The return URL, refused with 400 (never followed) unless its origin is allowed."""
        try:
            parts = _split_http_url(raw)
        except ValueError:
            parts = None
        if parts is not None:
            if return_origins is None and parts.hostname in LOOPBACK_HOSTS:
                return parts
            if return_origins is not None and _origin_of(parts) in return_origins:
                return parts
        raise GatewayError(
            400,
            "invalid_return_url",
            "return_url must be an absolute http(s) URL on an allowed origin"
            + (" (by default loopback only)." if return_origins is None else "."),
        )

    @app.post("/hosted/tokenize")
    async def hosted_tokenize(request: Request) -> Response:
        """The hosted card form's target: the browser posts the card here, not to Fiscus, and is sent
        back (303) to `return_url` with `state` and a token, or `error` and `message`."""
        form = await _parse_form(request)
        return_to = checked_return_url(form.get("return_url", ""))
        state = form.get("state", "")
        if len(state) > MAX_STATE:
            raise GatewayError(400, "invalid_state", f"state is at most {MAX_STATE} characters.")
        try:
            number, exp_month, exp_year = _form_card(form)
        except GatewayError as exc:
            log.info("hosted tokenisation refused (%s), back to %s", exc.code, _origin_of(return_to))
            return _redirect(return_to, [("state", state), ("error", exc.code), ("message", exc.message)])
        method = await run_in_threadpool(ledger.tokenise_now, number, exp_month, exp_year)
        log.info("hosted tokenisation: %s, back to %s", method["token"], _origin_of(return_to))
        return _redirect(return_to, [("state", state), ("token", method["token"])])

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

    @app.get("/v1/health")
    async def health() -> JSONResponse:
        """Up, and which process answers: a starter can tell its own gateway from another on the port."""
        return JSONResponse({"status": "ok", "pid": os.getpid()})

    @app.get("/v1/ledger")
    async def get_ledger() -> JSONResponse:
        """Every charge, capture and refund, for reconciliation against Fiscus."""
        return JSONResponse(await run_in_threadpool(ledger.ledger))

    return app


def serve_gateway(db_path: Path, host: str, port: int, **kwargs: Any) -> None:
    """Run the gateway with uvicorn until interrupted (what `fiscus gateway --port …` calls)."""
    uvicorn.run(create_gateway_app(db_path, **kwargs), host=host, port=port)
