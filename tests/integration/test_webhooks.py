"""Outbound webhooks end to end: a real loopback receiver, signatures that verify, the retry schedule
walked with a FixedClock, the SSRF guard at creation and at send time, tenant isolation, and a worker
killed with SIGKILL mid-delivery whose work another worker finishes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.webhooks import ssrf
from fiscus.adapters.webhooks.sender import WebhookSender
from fiscus.domain.clock import FixedClock
from fiscus.domain.errors import InvalidFieldError
from fiscus.services import webhooks as svc
from fiscus.services.access import create_api_key, create_customer_token
from fiscus.worker.webhooks import RETRY_SCHEDULE, deliver_due, dispatch_events, run_webhook_cycle
from tests import forkserver, webhook_workers
from tests.api_support import api_client, auth, build_world
from tests.builders import make_customer, make_tenant

CTX = forkserver.context()  # children forked from a server that imported Fiscus once


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every request. Each webhook-id gets `fail_first`
    500s before a 200; `always_fail` answers 500 forever; `redirect` answers 302."""

    fail_first: int = 0
    always_fail: bool = False
    redirect: bool = False
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                item = Received({k.lower(): v for k, v in self.headers.items()}, body)
                with outer._lock:
                    outer.received.append(item)
                    seen = sum(1 for r in outer.received if r.webhook_id == item.webhook_id)
                if outer.delay:
                    time.sleep(outer.delay)
                if outer.redirect:
                    status = 302
                elif outer.always_fail or seen <= outer.fail_first:
                    status = 500
                else:
                    status = 200
                self.send_response(status)
                if status == 302:
                    self.send_header("location", f"{outer.url}elsewhere")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def by_id(self) -> Counter[str]:
        with self._lock:
            return Counter(r.webhook_id for r in self.received)


@pytest.fixture
def sender() -> Iterator[WebhookSender]:
    with WebhookSender() as s:
        yield s


def _event_ids(db: Database, org_id: int) -> list[int]:
    o = t.outbox_events.c
    with db.read() as conn:
        return list(conn.execute(select(o.id).where(o.organization_id == org_id).order_by(o.id)).scalars())


def _deliveries(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(select(t.webhook_deliveries).order_by(t.webhook_deliveries.c.id)).mappings()
        return [dict(r) for r in rows]


def _drive(db: Database, clock: FixedClock, sender: WebhookSender, *, allow_private: bool) -> int:
    """Run worker cycles, jumping the clock to the next due attempt, until nothing is pending."""
    d = t.webhook_deliveries.c
    attempts = 0
    for _ in range(100):
        attempts += run_webhook_cycle(db, clock, sender, allow_private=allow_private)[1]
        with db.read() as conn:
            due = conn.execute(select(func.min(d.next_attempt_at)).where(d.status == "pending")).scalar()
        if due is None:
            return attempts
        clock.set(max(due, clock.now()))
    raise AssertionError("deliveries still pending after 100 cycles")


def _failed_total() -> float:
    return REGISTRY.get_sample_value("fiscus_webhook_deliveries_failed_total") or 0.0


# --- pure checks (no database) -------------------------------------------------------------------


def test_event_type_patterns() -> None:
    assert svc.matches(["*"], "invoice.issued")
    assert svc.matches(["invoice.*"], "invoice.issued")
    assert not svc.matches(["invoice.*"], "invoices.issued")
    assert not svc.matches(["invoice.*"], "proforma.issued")
    assert svc.matches(["customer.created", "order.created"], "order.created")
    assert svc.parse_event_types(["invoice.*", "invoice.*", "*"]) == ["invoice.*", "*"]
    for bad in ([], ["Invoice"], ["invoice.*.x"], ["*.created"], [""], "invoice.issued"):
        with pytest.raises(InvalidFieldError):
            svc.parse_event_types(bad)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[64:ff9b::a00:1]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://localhost/",
        "http://api.localhost./",
    ],
)
def test_private_literals_are_blocked_statically(url: str) -> None:
    with pytest.raises(ssrf.BlockedDestination):
        ssrf.check_static(url, allow_private=False)
    ssrf.check_static(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "http://user:pw@example.com/",
        "http:///x",
        "javascript:alert(1)",
        "http://exa mple.com/",
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidFieldError) as err:
        ssrf.check_static(url, allow_private=True)
    assert err.value.field == "url"


def test_every_resolved_address_must_be_public() -> None:
    def mixed(_host: str, _port: int) -> list[str]:
        return ["93.184.216.34", "10.1.2.3"]

    def public(_host: str, _port: int) -> list[str]:
        return ["93.184.216.34", "2606:2800:220:1::1"]

    with pytest.raises(ssrf.BlockedDestination, match=r"10\.1\.2\.3"):
        ssrf.check_url("https://hooks.example.com/x", allow_private=False, resolver=mixed)
    assert (
        ssrf.check_url("https://hooks.example.com/x", allow_private=False, resolver=public) == "93.184.216.34"
    )
    assert ssrf.check_url("http://93.184.216.34:8080/", allow_private=False) == "93.184.216.34"


# --- delivery end to end -------------------------------------------------------------------------


def test_events_arrive_signed_after_two_failures(
    db: Database, clock: FixedClock, sender: WebhookSender
) -> None:
    alpha = build_world(db, clock)[0]
    with Receiver(fail_first=2) as rx, api_client(db, clock, webhooks_allow_private=True) as client:
        created = client.post(
            "/api/v1/webhook_endpoints",
            json={"url": rx.url, "event_types": ["*"], "description": "all events"},
            headers=auth(alpha.key),
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()
        secret = endpoint["secret"]
        assert secret.startswith("whsec_")
        shown = client.get(f"/api/v1/webhook_endpoints/{endpoint['id']}", headers=auth(alpha.key)).json()
        assert "secret" not in shown
        listed = client.get("/api/v1/webhook_endpoints", headers=auth(alpha.key)).json()
        assert [e["id"] for e in listed["data"]] == [endpoint["id"]]
        assert "secret" not in listed["data"][0]

        events = _event_ids(db, alpha.org_id)
        assert len(events) > 10
        dispatched, attempted = run_webhook_cycle(db, clock, sender, allow_private=True)
        assert attempted == len(events)
        assert dispatched >= len(events)  # the other organisation's events fan out to nobody
        clock.advance(RETRY_SCHEDULE[1] - timedelta(seconds=1))
        assert deliver_due(db, clock, sender, allow_private=True) == 0
        clock.advance(timedelta(seconds=1))
        assert deliver_due(db, clock, sender, allow_private=True) == len(events)
        clock.advance(RETRY_SCHEDULE[2])
        assert deliver_due(db, clock, sender, allow_private=True) == len(events)
        assert deliver_due(db, clock, sender, allow_private=True) == 0

        counts = rx.by_id()
        assert counts == {f"evt_{i}": 3 for i in events}
        types = dict(_event_types(db))
        for item in rx.received:
            payload = Webhook(secret).verify(item.body, item.headers)
            assert payload["type"] == types[int(item.webhook_id.removeprefix("evt_"))]
            assert set(payload) == {"type", "timestamp", "data"}
            assert item.headers["content-type"] == "application/json"
            assert item.headers["user-agent"] == "Fiscus-Webhooks/0.1"
            assert item.body == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()

        page = client.get(
            f"/api/v1/webhook_endpoints/{endpoint['id']}/deliveries?limit=100", headers=auth(alpha.key)
        ).json()
        assert len(page["data"]) == len(events)
        assert {(d["status"], d["attempts"], d["next_attempt_at"]) for d in page["data"]} == {
            ("succeeded", 3, None)
        }
        assert {d["event_id"] for d in page["data"]} == set(events)
        one = client.get(f"/api/v1/webhook_deliveries/{page['data'][0]['id']}", headers=auth(alpha.key))
        assert [a["status_code"] for a in one.json()["attempt_log"]] == [500, 500, 200]
        assert one.json()["webhook_id"] == f"evt_{page['data'][0]['event_id']}"


def _event_types(db: Database) -> list[tuple[int, str]]:
    o = t.outbox_events.c
    with db.read() as conn:
        return [(r.id, r.type) for r in conn.execute(select(o.id, o.type))]


def test_rotation_signs_with_both_secrets_until_the_old_one_expires(
    db: Database, clock: FixedClock, sender: WebhookSender
) -> None:
    tenant = make_tenant(db, clock, "us")
    key = create_api_key(db, clock, tenant.org_id).secret
    dispatch_events(db, clock)
    with Receiver() as rx, api_client(db, clock, webhooks_allow_private=True) as client:
        endpoint = client.post(
            "/api/v1/webhook_endpoints",
            json={"url": rx.url, "event_types": ["customer.*"]},
            headers=auth(key),
        ).json()
        old = endpoint["secret"]
        rotated = client.post(f"/api/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", headers=auth(key))
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new != old
        assert rotated.json()["previous_secret_expires_at"] is not None
        make_customer(db, clock, tenant, 1)
        _drive(db, clock, sender, allow_private=True)
        first = rx.received[-1]
        assert len(first.headers["webhook-signature"].split(" ")) == 2
        Webhook(old).verify(first.body, first.headers)
        Webhook(new).verify(first.body, first.headers)

        clock.advance(timedelta(hours=24, seconds=1))
        make_customer(db, clock, tenant, 2)
        _drive(db, clock, sender, allow_private=True)
        second = rx.received[-1]
        assert second.webhook_id != first.webhook_id
        Webhook(new).verify(second.body, second.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(second.body, second.headers)
    assert len(rx.received) == 2


def test_failing_endpoint_ends_failed_and_redeliver_revives_it(
    db: Database, clock: FixedClock, sender: WebhookSender
) -> None:
    tenant = make_tenant(db, clock, "us")
    key = create_api_key(db, clock, tenant.org_id).secret
    dispatch_events(db, clock)
    failed_before = _failed_total()
    with Receiver(always_fail=True) as rx, api_client(db, clock, webhooks_allow_private=True) as client:
        svc.create_endpoint(
            db, clock, tenant.org_id, url=rx.url, event_types=["*"], actor="test", allow_private=True
        )
        make_customer(db, clock, tenant, 1)
        started = clock.now()
        assert _drive(db, clock, sender, allow_private=True) == len(RETRY_SCHEDULE)
        [delivery] = _deliveries(db)
        assert (delivery["status"], delivery["attempts"]) == ("failed", len(RETRY_SCHEDULE))
        assert clock.now() - started >= timedelta(days=3)
        assert _failed_total() == failed_before + 1
        assert len(rx.by_id()) == 1

        rx.always_fail = False
        revived = client.post(f"/api/v1/webhook_deliveries/{delivery['id']}/redeliver", headers=auth(key))
        assert revived.status_code == 200, revived.text
        assert revived.json()["status"] == "pending"
        assert len(revived.json()["attempt_log"]) == len(RETRY_SCHEDULE)
        assert deliver_due(db, clock, sender, allow_private=True) == 1
        [delivery] = _deliveries(db)
        assert (delivery["status"], delivery["attempts"]) == ("succeeded", len(RETRY_SCHEDULE) + 1)
        assert set(rx.by_id().values()) == {len(RETRY_SCHEDULE) + 1}


def test_redirect_is_a_failed_attempt_and_not_followed(
    db: Database, clock: FixedClock, sender: WebhookSender
) -> None:
    tenant = make_tenant(db, clock, "us")
    dispatch_events(db, clock)
    with Receiver(redirect=True) as rx:
        svc.create_endpoint(db, clock, tenant.org_id, url=rx.url, event_types=["*"], allow_private=True)
        make_customer(db, clock, tenant, 1)
        assert run_webhook_cycle(db, clock, sender, allow_private=True) == (1, 1)
    assert len(rx.received) == 1
    with db.read() as conn:
        attempt = conn.execute(select(t.webhook_attempts)).mappings().one()
    assert attempt["status_code"] == 302
    assert "not followed" in attempt["error"]
    assert _deliveries(db)[0]["status"] == "pending"


def test_dispatch_matches_types_and_never_duplicates(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "us")
    dispatch_events(db, clock)
    url = "https://hooks.example.com/"
    invoices, _ = svc.create_endpoint(db, clock, tenant.org_id, url=url, event_types=["invoice.*"])
    customers, _ = svc.create_endpoint(db, clock, tenant.org_id, url=url, event_types=["customer.created"])
    svc.create_endpoint(db, clock, tenant.org_id, url=url, event_types=["*"], enabled=False)
    make_customer(db, clock, tenant, 1)
    make_customer(db, clock, tenant, 2)
    assert dispatch_events(db, clock) == 2
    before = [(d["endpoint_id"], d["event_type"]) for d in _deliveries(db)]
    assert before == [(customers, "customer.created")] * 2
    with db.write() as conn:
        conn.execute(update(t.outbox_events).values(dispatched_at=None))
    assert dispatch_events(db, clock) > 0
    assert [(d["endpoint_id"], d["event_type"]) for d in _deliveries(db)] == before
    assert invoices not in {d["endpoint_id"] for d in _deliveries(db)}


def test_endpoint_changes_are_audited_and_delete_keeps_history(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "us")
    key = create_api_key(db, clock, tenant.org_id).secret
    dispatch_events(db, clock)
    with api_client(db, clock) as client:
        endpoint = client.post(
            "/api/v1/webhook_endpoints", json={"url": "https://hooks.example.com/a"}, headers=auth(key)
        ).json()
        assert endpoint["event_types"] == ["*"]
        path = f"/api/v1/webhook_endpoints/{endpoint['id']}"
        changed = client.post(
            path, json={"url": "https://hooks.example.com/b", "event_types": ["invoice.*"]}, headers=auth(key)
        )
        assert changed.status_code == 200, changed.text
        assert (changed.json()["url"], changed.json()["event_types"]) == (
            "https://hooks.example.com/b",
            ["invoice.*"],
        )
        assert client.post(path, json={"secret": "x"}, headers=auth(key)).status_code == 422
        bad = client.post(path, json={"event_types": ["Invoice!"]}, headers=auth(key))
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "event_types.0"
        client.post(path, json={"event_types": ["*"]}, headers=auth(key))
        make_customer(db, clock, tenant, 1)
        dispatch_events(db, clock)
        [delivery] = _deliveries(db)
        deleted = client.delete(path, headers=auth(key))
        assert deleted.status_code == 200
        assert deleted.json()["enabled"] is False
        assert _deliveries(db)[0]["status"] == "failed"
        shown = client.get(f"/api/v1/webhook_deliveries/{delivery['id']}", headers=auth(key))
        assert shown.json()["status"] == "failed"
        refused = client.post(f"/api/v1/webhook_deliveries/{delivery['id']}/redeliver", headers=auth(key))
        assert refused.status_code == 409
    a = t.audit_events.c
    with db.read() as conn:
        actions = conn.execute(
            select(a.action, a.after).where(a.entity_type == "webhook_endpoint").order_by(a.id)
        ).all()
    assert [r.action for r in actions] == ["created", "updated", "updated", "deleted"]
    assert all("whsec_" not in json.dumps(r.after) for r in actions)


# --- SSRF ----------------------------------------------------------------------------------------


def test_private_destinations_are_refused_at_creation(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "us")
    key = create_api_key(db, clock, tenant.org_id).secret
    with Receiver() as rx, api_client(db, clock) as client:
        for url in (
            rx.url,
            "http://10.0.0.1/",
            "http://169.254.169.254/",
            "http://[::1]/",
            "http://localhost/",
            "ftp://example.com/",
            "http://user:secret@example.com/",
        ):
            r = client.post("/api/v1/webhook_endpoints", json={"url": url}, headers=auth(key))
            assert r.status_code == 422, (url, r.text)
            assert [e["field"] for e in r.json()["errors"]] == ["url"], url
        ok = client.post(
            "/api/v1/webhook_endpoints", json={"url": "https://example.com/hook"}, headers=auth(key)
        )
        assert ok.status_code == 201
        moved = client.post(
            f"/api/v1/webhook_endpoints/{ok.json()['id']}",
            json={"url": "http://10.0.0.1/"},
            headers=auth(key),
        )
        assert moved.status_code == 422
    assert rx.received == []


def test_private_address_at_send_time_is_a_failed_attempt_that_never_connects(
    db: Database, clock: FixedClock
) -> None:
    tenant = make_tenant(db, clock, "us")
    dispatch_events(db, clock)
    with Receiver() as rx:
        host = f"hooks.example.com:{rx.port}"
        svc.create_endpoint(db, clock, tenant.org_id, url=f"http://{host}/in", event_types=["*"])
        make_customer(db, clock, tenant, 1)

        def rebinding(_host: str, _port: int) -> list[str]:
            return ["127.0.0.1"]

        with WebhookSender(resolver=rebinding) as sender:
            assert run_webhook_cycle(db, clock, sender, allow_private=False) == (1, 1)
            assert rx.received == []
            with db.read() as conn:
                attempt = conn.execute(select(t.webhook_attempts)).mappings().one()
            assert attempt["status_code"] is None
            assert attempt["error"].startswith("blocked:")
            assert "loopback" in attempt["error"]
            [delivery] = _deliveries(db)
            assert (delivery["status"], delivery["attempts"]) == ("pending", 1)

            clock.advance(RETRY_SCHEDULE[1])
            assert deliver_due(db, clock, sender, allow_private=True) == 1
    [item] = rx.received
    assert item.headers["host"] == host  # connected to the vetted address, Host header kept
    assert _deliveries(db)[0]["status"] == "succeeded"


# --- tenant isolation ----------------------------------------------------------------------------


def test_other_tenants_get_404_and_customer_tokens_403(db: Database, clock: FixedClock) -> None:
    alpha, beta = build_world(db, clock)
    endpoint_id, _ = svc.create_endpoint(
        db, clock, alpha.org_id, url="https://hooks.example.com/", event_types=["*"]
    )
    dispatch_events(db, clock)
    delivery_id = _deliveries(db)[0]["id"]
    ep, dl = f"/api/v1/webhook_endpoints/{endpoint_id}", f"/api/v1/webhook_deliveries/{delivery_id}"
    with api_client(db, clock) as client:
        other = auth(beta.key)
        assert client.get(ep, headers=auth(alpha.key)).status_code == 200
        assert client.get(dl, headers=auth(alpha.key)).status_code == 200
        for method, path, body in (
            ("GET", ep, None),
            ("POST", ep, {"description": "mine now"}),
            ("DELETE", ep, None),
            ("POST", f"{ep}/rotate_secret", None),
            ("GET", f"{ep}/deliveries", None),
            ("GET", dl, None),
            ("POST", f"{dl}/redeliver", None),
        ):
            r = client.request(method, path, json=body, headers=other)
            assert r.status_code == 404, (method, path, r.text)
        assert client.get("/api/v1/webhook_endpoints", headers=other).json()["data"] == []
        customer = alpha.customers[0]
        token = create_customer_token(db, clock, alpha.org_id, customer).secret
        assert client.get("/api/v1/webhook_endpoints", headers=auth(token)).status_code == 403
        assert client.get(dl, headers=auth(token)).status_code == 403
    with db.read() as conn:
        row = (
            conn.execute(select(t.webhook_endpoints).where(t.webhook_endpoints.c.id == endpoint_id))
            .mappings()
            .one()
        )
    assert (row["enabled"], row["description"], row["previous_secret"]) == (True, "", None)


# --- crash --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_killed_worker_leaves_locks_that_expire_and_a_restart_finishes(
    db: Database, db_url: str, clock: FixedClock
) -> None:
    tenant = make_tenant(db, clock, "us")
    dispatch_events(db, clock)
    with Receiver(delay=0.2) as rx:
        svc.create_endpoint(db, clock, tenant.org_id, url=rx.url, event_types=["*"], allow_private=True)
        for n in range(30):
            make_customer(db, clock, tenant, n)
        assert dispatch_events(db, clock) == 30
        events = {f"evt_{i}" for i in _event_ids(db, tenant.org_id)[-30:]}
        at = clock.now()

        first = CTX.Process(target=webhook_workers.deliver_all, args=(db_url, at, 10, 2))
        first.start()
        deadline = time.monotonic() + 60
        while len(rx.by_id()) < 6:
            assert time.monotonic() < deadline, "the first worker delivered nothing"
            time.sleep(0.02)
        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        first.join(10)
        assert first.exitcode == -signal.SIGKILL

        d = t.webhook_deliveries.c
        with db.read() as conn:
            stuck = conn.execute(
                select(func.count()).where(d.status == "pending", d.locked_until > at)
            ).scalar_one()
        assert stuck > 0  # claimed by the dead worker, invisible until the lock expires
        with WebhookSender() as sender:
            deliver_due(db, FixedClock(at + timedelta(seconds=30)), sender, allow_private=True)
        with db.read() as conn:
            assert (
                conn.execute(
                    select(func.count()).where(d.status == "pending", d.locked_until > at)
                ).scalar_one()
                == stuck
            )

        second = CTX.Process(
            target=webhook_workers.deliver_all, args=(db_url, at + timedelta(seconds=61), 10, 2)
        )
        second.start()
        second.join(120)
        assert second.exitcode == 0
        received = rx.by_id()
    assert events <= set(received)
    statuses = Counter(row["status"] for row in _deliveries(db))
    assert statuses == {"succeeded": 30}
