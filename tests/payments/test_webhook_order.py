"""Inbound gateway webhooks settle a payment the same way whatever order they come in, and a replay
or a forgery changes nothing.

The events are the real signed ones the gateway process sends for an authorisation, its capture and
two refunds. Fiscus lost the answer to the charge (its attempt is `unknown`), so the webhooks alone
settle it. Every permutation of the four events, with replays mixed in, is applied to its own copy of
the same starting database.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from standardwebhooks import Webhook

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.payments.gateway import GatewayProvider, InvalidWebhook
from fiscus.domain.clock import FixedClock
from fiscus.domain.payments import AttemptStatus, ChargeSnapshot, OutcomeUnknown
from fiscus.gateway import cards
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.payments.charging import charge_document
from fiscus.services.payments.janitor import settle_unknown
from fiscus.services.payments.methods import add_card
from fiscus.services.payments.provider_events import handle_provider_event
from fiscus.services.payments.settings import update_payment_settings
from fiscus.services.reconcile import reconcile, reconcile_with_provider
from fiscus.services.subscriptions import ItemSpec
from tests.builders import make_customer, make_tenant
from tests.payments_support import gateway_process

pytestmark = pytest.mark.slow  # long: collected first (conftest)

PROVIDER = "test_gateway"
GRANULAR = ("refunds", "credit_notes", "events")
"""What may differ by order today: how refunds are split into rows (and credit notes) when only
cumulative amounts are known, and whether `payment.authorized` is emitted (only when the
authorisation is seen before its capture). Money and statuses must never differ."""


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class WebhookReceiver:
    """A loopback HTTP server standing where Fiscus's webhook route would, keeping every delivery
    (body and headers, exactly as sent) so a test can replay them in any order."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, delivery: Delivery) -> None:
        with self.lock:
            self.deliveries.append(delivery)

    def snapshot(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)

    def for_reference(self, reference: str) -> list[Delivery]:
        return [d for d in self.snapshot() if d.event["data"].get("reference") == reference]

    def wait_for(self, reference: str, count: int, timeout: float = 10.0) -> list[Delivery]:
        """The first `count` deliveries about the charge made with `reference` (an idempotency key)."""
        deadline = time.monotonic() + timeout
        while len(found := self.for_reference(reference)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} webhooks for {reference}, got {len(found)}")
            time.sleep(0.02)
        return found[:count]


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    server: ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            receiver.add(Delivery(body, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(f"http://127.0.0.1:{server.server_address[1]}/webhooks/gateway")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class LostAnswer:
    """The gateway charges, but its answer never reaches Fiscus (a dropped connection)."""

    def __init__(self, provider: GatewayProvider) -> None:
        self._provider = provider
        self.name = provider.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    def charge(self, **kwargs: Any) -> ChargeSnapshot:
        self._provider.charge(**kwargs)
        raise OutcomeUnknown("the answer was lost on the way back")


def _gateway_post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(f"{url}{path}", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}, timeout=10)
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def copy_database(db: Database, request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A new database holding exactly what `db` holds now (`db` is disposed first: SQLite copies the
    file, PostgreSQL creates a database from it as a template)."""
    db.dispose()
    url = make_url(db.url)
    if db.is_sqlite:
        assert url.database
        target = tmp_path / f"copy-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(url.database, target)
        return Database(f"sqlite:///{target}")
    cluster = request.getfixturevalue("pg_cluster")
    assert url.database
    return Database(cluster.create_database(f"c_{uuid.uuid4().hex[:16]}", template=url.database))


def drop_copy(copy: Database, request: pytest.FixtureRequest) -> None:
    copy.dispose()
    if copy.is_sqlite:
        path = make_url(copy.url).database
        assert path
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
    else:
        name = make_url(copy.url).database
        assert name
        request.getfixturevalue("pg_cluster").drop_database(name)


def payment_state(db: Database, doc_id: int) -> dict[str, Any]:
    """What the webhooks decide, without ids or times: document money and status, the attempt, its
    captures and refunds, the credit notes."""
    with db.read() as conn:
        doc = conn.execute(select(t.documents).where(t.documents.c.id == doc_id)).mappings().one()
        pa = t.payment_attempts.c
        attempts = [
            (a.status, a.amount_minor, a.authorized_minor, a.provider_charge_id, a.error_code)
            for a in conn.execute(select(t.payment_attempts).where(pa.document_id == doc_id).order_by(pa.id))
        ]
        captures = sorted(
            (c.status, c.amount_minor, c.document_id)
            for c in conn.execute(
                select(t.payment_captures).where(t.payment_captures.c.document_id == doc_id)
            )
        )
        refunds = sorted(
            (r.status, r.amount_minor, r.credit_note_id is not None)
            for r in conn.execute(select(t.payment_refunds).where(t.payment_refunds.c.document_id == doc_id))
        )
        d = t.documents.c
        notes = conn.execute(
            select(func.count(), func.coalesce(func.sum(d.total_minor), 0)).where(
                d.corrected_document_id == doc_id, d.type == "credit_note", d.status != "void"
            )
        ).one()
        events = sorted(
            (str(type_), int(count))
            for type_, count in conn.execute(
                select(t.outbox_events.c.type, func.count())
                .where(t.outbox_events.c.type.like("payment.%") | t.outbox_events.c.type.like("invoice.%"))
                .group_by(t.outbox_events.c.type)
            )
        )
    return {
        "status": doc["status"],
        "paid": doc["amount_paid_minor"],
        "refunded": doc["amount_refunded_minor"],
        "credited": doc["amount_credited_minor"],
        "attempts": attempts,
        "captures": captures,
        "refunds": refunds,
        "credit_notes": int(notes[0]),
        "credit_note_total": int(notes[1]),
        "events": events,
        "event_types": sorted(type_ for type_, _ in events if type_ != "payment.authorized"),
    }


def _clean(db: Database) -> None:
    bad = {k: v for k, v in reconcile(db).items() if v}
    assert not bad, bad


def _forgeries(genuine: Delivery) -> Iterator[Delivery]:
    """The genuine delivery with its body, signature, id or timestamp changed, or signed with another
    secret."""
    event = genuine.event
    richer = {**event, "data": {**event["data"], "captured_amount": event["data"]["captured_amount"] + 1}}
    yield Delivery(json.dumps(richer, separators=(",", ":")).encode(), genuine.headers)
    yield Delivery(genuine.body + b" ", genuine.headers)
    signature = genuine.headers["webhook-signature"]
    # A character in the middle of the base64 digest (the last ones may only hold padding bits).
    middle = len(signature) // 2
    flipped = signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1 :]
    yield Delivery(genuine.body, {**genuine.headers, "webhook-signature": flipped})
    yield Delivery(genuine.body, {**genuine.headers, "webhook-id": "evt_other"})
    stale = str(int(genuine.headers["webhook-timestamp"]) - 3600)
    yield Delivery(genuine.body, {**genuine.headers, "webhook-timestamp": stale})
    yield Delivery(genuine.body, {k: v for k, v in genuine.headers.items() if k != "webhook-signature"})
    other = Webhook("whsec_" + base64.b64encode(b"another-secret-another-secret-00").decode())
    when = datetime.now(UTC)
    msg_id = genuine.headers["webhook-id"]
    headers = {
        **genuine.headers,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": other.sign(msg_id, when, genuine.body.decode()),
    }
    yield Delivery(genuine.body, headers)


def _orders(rng: random.Random, events: list[Delivery]) -> Iterator[list[Delivery]]:
    """Every permutation of the events, each with two replays of already-delivered events mixed in."""
    for perm in itertools.permutations(events):
        sequence = list(perm)
        for _ in range(2):
            position = rng.randrange(1, len(sequence) + 1)
            sequence.insert(position, rng.choice(sequence[:position]))
        yield sequence


def test_webhooks_settle_the_same_way_in_any_order_and_replays_change_nothing(
    db: Database, clock: FixedClock, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with webhook_receiver() as receiver, gateway_process(tmp_path, webhook_url=receiver.url) as gw:
        provider = gw.provider()
        tenant = make_tenant(db, clock, "bg")
        update_payment_settings(db, clock, tenant.org_id, capture_mode="authorize")
        cid = make_customer(db, clock, tenant)
        add_card(db, clock, provider, tenant.org_id, cid, token=gw.tokenise(cards.SUCCESS))
        order = create_order(db, clock, tenant.org_id, cid, [ItemSpec(tenant.one_off, 3)])
        doc_id = bill_order_now(db, clock, tenant.org_id, order)
        outcome = charge_document(db, clock, LostAnswer(provider), tenant.org_id, doc_id)
        assert outcome.status is AttemptStatus.UNKNOWN
        with db.read() as conn:
            key = conn.execute(
                select(t.payment_attempts.c.idempotency_key).where(
                    t.payment_attempts.c.id == outcome.attempt_id
                )
            ).scalar_one()
            total = conn.execute(
                select(t.documents.c.total_minor).where(t.documents.c.id == doc_id)
            ).scalar_one()
        # The capture and refunds are made at the gateway directly (as in a provider's dashboard):
        # Fiscus hears of them only through the webhooks.
        [charge] = receiver.wait_for(key, 1)
        charge_id = charge.event["data"]["id"]
        _gateway_post(gw.url, f"/v1/charges/{charge_id}/capture", {})
        _gateway_post(gw.url, f"/v1/charges/{charge_id}/refunds", {"amount": 300})
        _gateway_post(gw.url, f"/v1/charges/{charge_id}/refunds", {"amount": 500})
        events = receiver.wait_for(key, 4)
        time.sleep(0.2)
        assert len(receiver.for_reference(key)) == 4
        assert [d.event["type"] for d in events] == [
            "charge.succeeded",
            "charge.captured",
            "charge.refunded",
            "charge.refunded",
        ]
        assert events[0].event["data"]["status"] == "authorized"
        before = payment_state(db, doc_id)
        assert before["attempts"] == [("unknown", total, 0, None, None)]

        verifier = gw.provider()
        for forged in _forgeries(events[1]):
            with pytest.raises(InvalidWebhook):
                verifier.parse_webhook(forged.body, forged.headers)
        with pytest.raises(InvalidWebhook):
            GatewayProvider(gw.url).parse_webhook(events[1].body, events[1].headers)  # no secret: refuse all
        assert payment_state(db, doc_id) == before
        start = clock.now()
        rng = random.Random(1234)
        finals: list[dict[str, Any]] = []
        replays = 0
        for sequence in _orders(rng, events):
            copy = copy_database(db, request, tmp_path)
            clock = FixedClock(start)
            try:
                seen: set[str] = set()
                for delivery in sequence:
                    event = verifier.parse_webhook(delivery.body, delivery.headers)
                    new = handle_provider_event(copy, clock, PROVIDER, event)
                    assert new is (event.event_id not in seen)
                    replays += not new
                    seen.add(event.event_id)
                final = payment_state(copy, doc_id)
                clock.advance(timedelta(minutes=5))
                assert settle_unknown(copy, clock, verifier) == 0
                assert payment_state(copy, doc_id) == final
                _clean(copy)
                assert reconcile_with_provider(copy, verifier) == []
                finals.append(final)
            finally:
                drop_copy(copy, request)
    assert len(finals) == 24
    assert replays == 48
    money = {json.dumps({k: v for k, v in f.items() if k not in GRANULAR}, sort_keys=True) for f in finals}
    assert len(money) == 1, "\n".join(sorted(money))
    final = finals[0]
    assert final["status"] == "paid"
    assert final["paid"] == total
    assert final["refunded"] == 800
    assert final["credited"] == 800
    assert final["attempts"] == [("succeeded", total, total, charge_id, None)]
    assert final["captures"] == [("succeeded", total, doc_id)]
    assert final["credit_note_total"] == 800
    splits = sorted({tuple(amount for _status, amount, _note in f["refunds"]) for f in finals})
    assert splits == [(300, 500)], "each refund is recorded once, with its own credit note, in any order"
    assert final["refunds"] == [("succeeded", 300, True), ("succeeded", 500, True)]
    assert final["credit_notes"] == 2
