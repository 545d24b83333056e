"""Fault injection: charges with the gateway killed mid-charge, the client timing out, Fiscus crashing
between the intent and the settlement, and webhooks delivered twice, many times over with a fixed seed.

After each fault the janitor (clock past the grace) and the collection worker run, as in production.
At the end no document is charged twice, none is paid without a capture, every attempt is settled,
every invoice on a card that works is paid exactly once, and Fiscus's records match the gateway's
ledger one to one.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.payments.gateway import GatewayProvider
from fiscus.domain.clock import FixedClock
from fiscus.domain.errors import InvalidStateError
from fiscus.domain.payments import ChargeSnapshot, Trigger
from fiscus.gateway import cards
from fiscus.services.documents import mark_paid, void_document
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.payments.charging import charge_document
from fiscus.services.payments.collection import run_collection
from fiscus.services.payments.janitor import settle_unknown
from fiscus.services.payments.methods import add_card
from fiscus.services.payments.provider_events import handle_provider_event
from fiscus.services.reconcile import reconcile, reconcile_with_provider
from fiscus.services.subscriptions import ItemSpec
from tests.api_support import free_port
from tests.builders import Tenant, make_customer, make_tenant
from tests.payments.test_webhook_order import WebhookReceiver, webhook_receiver
from tests.payments_support import WEBHOOK_SECRET, GatewayProcess, gateway_process

pytestmark = pytest.mark.slow

SEED = 1234
ITERATIONS = int(os.environ.get("FISCUS_FAULT_ITERATIONS", "20"))
"""Per database leg; raise it for a longer soak (the seed keeps any run reproducible). The default covers
every fault with every card it can meet (`_plan`) and each fault five times: 40 random picks repeated
the same cases and left some crash-and-card pairs to chance, at twice the time."""
CLIENT_TIMEOUT = 0.6
GATEWAY_ARGS = ("--slow-seconds", "0.3", "--timeout-seconds", "2.0")
"""SLOW answers inside the client's timeout; TIMEOUT answers well after it (an unknown outcome)."""
CARDS = (cards.SUCCESS, cards.INSUFFICIENT_FUNDS, cards.SLOW, cards.TIMEOUT)
PAYS = frozenset({cards.SUCCESS, cards.SLOW, cards.TIMEOUT})
FAULTS = ("gateway_killed", "client_timeout", "fiscus_crash", "duplicate_webhook")

CRASHING_WORKER = """
import sys
from datetime import datetime
from fiscus.adapters.db.engine import Database
from fiscus.adapters.payments.gateway import GatewayProvider
from fiscus.domain.clock import FixedClock
from fiscus.domain.payments import Trigger
from fiscus.services.payments.charging import charge_document

url, gateway, now, org_id, doc_id, timeout = sys.argv[1:]
db = Database(url)
provider = GatewayProvider(gateway, timeout_seconds=float(timeout))
print("ready", flush=True)
outcome = charge_document(
    db, FixedClock(datetime.fromisoformat(now)), provider, int(org_id), int(doc_id),
    trigger=Trigger.AUTOMATIC, actor="crashing-worker",
)
print("done", outcome.status, flush=True)
"""


class Crash(BaseException):
    """Fiscus's process dying: nothing after this point runs (not an Exception, so nothing catches it)."""


class CrashAfterAnswer:
    """Fiscus dies once the gateway call is over (answered or timed out), before writing the
    settlement."""

    def __init__(self, provider: GatewayProvider) -> None:
        self._provider = provider
        self.name = provider.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    def charge(self, **kwargs: Any) -> ChargeSnapshot:
        with suppress(Exception):
            self._provider.charge(**kwargs)
        raise Crash


WARM_GATEWAY = """
import sys
import fiscus.gateway.app
from fiscus.cli import app
sys.stdin.readline()  # imported and waiting: told to go once the previous gateway is dead
app(args=sys.argv[1:], prog_name="fiscus")
"""


@dataclass
class Gateway:
    """`fiscus gateway` as a separate process, SIGKILLed and restarted on the same port and ledger file.

    The next process is always started ahead and waits, imports done, until the previous one is dead,
    so a restart costs a bind rather than a Python start-up.
    """

    tmp_path: Path
    port: int
    webhook_url: str
    stack: ExitStack
    process: GatewayProcess | None = None
    spare: tuple[subprocess.Popen[bytes], Path] | None = None
    restarts: int = 0
    spawned: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> tuple[subprocess.Popen[bytes], Path]:
        db_path = self.tmp_path / "gateway.db"
        args = ["gateway", "--port", str(self.port), "--db", str(db_path), "--webhook-url", self.webhook_url]
        args += ["--webhook-secret", WEBHOOK_SECRET, *GATEWAY_ARGS]
        self.spawned += 1
        log_path = self.tmp_path / f"gateway-{self.spawned}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", WARM_GATEWAY, *args], stdin=subprocess.PIPE, stdout=log, stderr=log
            )
        self.stack.callback(_stop, process)
        return process, log_path

    def start(self) -> GatewayProcess:
        process, log_path = self.spare or self._spawn()
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        process.stdin.close()
        deadline = time.monotonic() + 120  # a ceiling: the first start is a cold one
        while True:
            assert process.poll() is None, log_path.read_text()[-2000:]
            try:
                if httpx.get(f"{self.url}/v1/ledger", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.02)
        self.process = GatewayProcess(self.url, self.tmp_path / "gateway.db", process, log_path)
        self.spare = self._spawn()
        return self.process

    @property
    def gw(self) -> GatewayProcess:
        assert self.process is not None
        return self.process

    def kill(self) -> None:
        self.gw.kill()

    def restart(self) -> None:
        if self.gw.process.poll() is None:
            self.kill()
        self.restarts += 1
        self.start()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)


@dataclass
class Run:
    db: Database
    clock: FixedClock
    tenant: Tenant
    gateway: Gateway
    receiver: WebhookReceiver
    provider: GatewayProvider
    """The worker's client, with a short timeout."""
    api: GatewayProvider
    """The API's client (attaching cards), with a generous one."""
    rng: random.Random
    docs: dict[int, str] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    replays_ignored: int = 0
    janitor_settled: int = 0
    collected: Counter[str] = field(default_factory=Counter)

    def new_invoice(self, n: int, card: str) -> int:
        org = self.tenant.org_id
        cid = make_customer(self.db, self.clock, self.tenant, n)
        add_card(self.db, self.clock, self.api, org, cid, token=self.gateway.gw.tokenise(card))
        order = create_order(
            self.db, self.clock, org, cid, [ItemSpec(self.tenant.one_off, self.rng.randint(1, 4))]
        )
        doc_id = bill_order_now(self.db, self.clock, org, order)
        self.docs[doc_id] = card
        return doc_id

    def charge(self, doc_id: int, provider: Any = None) -> str:
        outcome = charge_document(
            self.db,
            self.clock,
            provider or self.provider,
            self.tenant.org_id,
            doc_id,
            trigger=Trigger.AUTOMATIC,
            actor="worker",
        )
        return outcome.status.value

    def gateway_killed(self, doc_id: int) -> str:
        """SIGKILL the gateway while it holds a SLOW charge (before, during or after it commits), then
        start a new gateway process on the same port and ledger file."""
        early = self.rng.random() < 0.3
        delay = self.rng.uniform(0.0, 0.03) if early else self.rng.uniform(0.03, 0.5)
        killer = threading.Timer(delay, self.gateway.kill)
        killer.start()
        try:
            status = self.charge(doc_id)
        finally:
            killer.join()
            self.gateway.restart()
        return status

    def client_timeout(self, doc_id: int) -> str:
        return self.charge(doc_id)

    def fiscus_crash(self, doc_id: int) -> str:
        """Either a worker process SIGKILLed at a random moment of the charge, or this process
        'dying' once the gateway call is over, before the settlement is written."""
        if self.rng.random() < 0.5:
            try:
                self.charge(doc_id, CrashAfterAnswer(self.provider))
            except Crash:
                return "crashed_after_answer"
            raise AssertionError("the crash was not injected")
        args = [
            sys.executable,
            "-c",
            CRASHING_WORKER,
            self.db.url,
            self.gateway.gw.url,
            self.clock.now().isoformat(),
            str(self.tenant.org_id),
            str(doc_id),
            str(CLIENT_TIMEOUT),
        ]
        worker = subprocess.Popen(args, stdout=subprocess.PIPE, env=os.environ.copy())
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == b"ready"
        time.sleep(self.rng.uniform(0.0, 0.4))
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        rest = worker.stdout.read().decode()
        worker.stdout.close()
        # The real-time part of the grace: a request the worker sent before dying is finished by the
        # gateway within milliseconds; the janitor's grace (a minute in production) covers that.
        time.sleep(0.3)
        return "worker_finished" if rest.startswith("done") else "worker_killed"

    def duplicate_webhook(self, doc_id: int) -> str:
        """The charge's webhooks delivered twice or three times, in a shuffled order."""
        status = self.charge(doc_id)
        with self.db.read() as conn:
            key = conn.execute(
                select(t.payment_attempts.c.idempotency_key)
                .where(t.payment_attempts.c.document_id == doc_id)
                .order_by(t.payment_attempts.c.id.desc())
                .limit(1)
            ).scalar_one()
        deliveries = self.receiver.wait_for(key, 1)
        sequence = [d for d in deliveries for _ in range(self.rng.randint(2, 3))]
        self.rng.shuffle(sequence)
        seen: set[str] = set()
        for delivery in sequence:
            event = self.provider.parse_webhook(delivery.body, delivery.headers)
            new = handle_provider_event(self.db, self.clock, self.provider.name, event)
            assert new is (event.event_id not in seen)
            self.replays_ignored += not new
            seen.add(event.event_id)
        return status

    def janitor_and_worker(self) -> None:
        """What production runs every few seconds, with the clock moved past the janitor's grace and
        then a day on, so that scheduled retries come due."""
        self.clock.advance(timedelta(minutes=2))
        self.janitor_settled += settle_unknown(self.db, self.clock, self.provider)
        self.clock.advance(timedelta(days=1))
        summary = run_collection(self.db, self.clock, self.provider)
        self.collected.update({k: v for k, v in asdict(summary).items() if v and k != "attempted"})


@pytest.fixture
def run(db: Database, clock: FixedClock, tmp_path: Path) -> Iterator[Run]:
    with ExitStack() as stack:
        receiver = stack.enter_context(webhook_receiver())
        gateway = Gateway(tmp_path / "gateway", free_port(), receiver.url, stack)
        gateway.tmp_path.mkdir()
        gw = gateway.start()
        provider = GatewayProvider(gw.url, webhook_secret=WEBHOOK_SECRET, timeout_seconds=CLIENT_TIMEOUT)
        api = GatewayProvider(gw.url, webhook_secret=WEBHOOK_SECRET, timeout_seconds=10)
        stack.callback(provider.close)
        stack.callback(api.close)
        tenant = make_tenant(db, clock, "bg")
        yield Run(db, clock, tenant, gateway, receiver, provider, api, random.Random(SEED))


def test_no_double_charge_and_no_payment_without_capture_under_faults(run: Run) -> None:
    started = time.monotonic()
    plan = _plan(ITERATIONS)
    run.rng.shuffle(plan)
    for n, (fault, card) in enumerate(plan):
        doc_id = run.new_invoice(n, card)
        run.faults[fault] += 1
        run.outcomes[getattr(run, fault)(doc_id)] += 1
        run.janitor_and_worker()
    rounds = 0
    while _unsettled(run.db) or _due(run.db, run.clock):
        rounds += 1
        assert rounds <= 12, "collection does not converge"
        run.clock.advance(timedelta(days=1))
        run.janitor_and_worker()
    # Every webhook the gateway sent, replayed late and out of order, changes nothing.
    before = _money(run.db)
    late = run.receiver.snapshot()
    run.rng.shuffle(late)
    for delivery in late:
        event = run.provider.parse_webhook(delivery.body, delivery.headers)
        handle_provider_event(run.db, run.clock, run.provider.name, event)
    assert _money(run.db) == before

    statuses, charges = _check_invariants(run)
    print(
        f"\nfault loop [{run.db.dialect}] seed={SEED}: {ITERATIONS} iterations in "
        f"{time.monotonic() - started:.1f}s; faults {dict(sorted(run.faults.items()))}; "
        f"first outcomes {dict(sorted(run.outcomes.items()))}; gateway restarts {run.gateway.restarts}; "
        f"janitor settled {run.janitor_settled}; worker {dict(sorted(run.collected.items()))}; "
        f"webhook replays ignored {run.replays_ignored}, late deliveries {len(late)}; "
        f"documents {dict(sorted(statuses.items()))}; gateway charges {dict(sorted(charges.items()))}; "
        "double charges 0; paid without capture 0; unsettled 0"
    )


def _plan(iterations: int) -> list[tuple[str, str]]:
    """Each fault in turn, with the cards it can meet in turn: a killed gateway catches a SLOW charge in
    flight, a client timeout needs the TIMEOUT card, a crash or a duplicate webhook meets every card."""
    meets = {"gateway_killed": (cards.SLOW,), "client_timeout": (cards.TIMEOUT,)}
    seen: Counter[str] = Counter()
    plan = []
    for n in range(iterations):
        fault = FAULTS[n % len(FAULTS)]
        options = meets.get(fault, CARDS)
        plan.append((fault, options[seen[fault] % len(options)]))
        seen[fault] += 1
    return plan


def _unsettled(db: Database) -> int:
    pa, pc, pr = t.payment_attempts.c, t.payment_captures.c, t.payment_refunds.c
    with db.read() as conn:
        return sum(
            len(conn.execute(q).all())
            for q in (
                select(pa.id).where(pa.status.in_(("pending", "unknown"))),
                select(pc.id).where(pc.status == "pending"),
                select(pr.id).where(pr.status == "pending"),
            )
        )


def _due(db: Database, clock: FixedClock) -> int:
    d = t.documents.c
    with db.read() as conn:
        return len(
            conn.execute(
                select(d.id).where(
                    d.next_payment_attempt_at.is_not(None), d.next_payment_attempt_at <= clock.now()
                )
            ).all()
        )


def _money(db: Database) -> list[tuple[Any, ...]]:
    with db.read() as conn:
        docs = conn.execute(
            select(t.documents.c.id, t.documents.c.status, t.documents.c.amount_paid_minor).order_by(
                t.documents.c.id
            )
        ).all()
        attempts = conn.execute(
            select(t.payment_attempts.c.id, t.payment_attempts.c.status).order_by(t.payment_attempts.c.id)
        ).all()
        captures = conn.execute(select(t.payment_captures.c.id, t.payment_captures.c.amount_minor)).all()
    return [tuple(r) for r in [*docs, *attempts, *captures]]


def _check_invariants(run: Run) -> tuple[Counter[str], Counter[str]]:
    """Asserts the invariants; returns document statuses and gateway charge statuses, for the summary."""
    db = run.db
    ledger = run.gateway.gw.ledger()
    gateway_charges: list[dict[str, Any]] = ledger["charges"]  # type: ignore[assignment]
    with db.read() as conn:
        docs = {
            r.id: r
            for r in conn.execute(
                select(t.documents).where(t.documents.c.organization_id == run.tenant.org_id)
            )
        }
        attempts = list(conn.execute(select(t.payment_attempts)))
        captures = list(conn.execute(select(t.payment_captures)))
    key_to_doc = {a.idempotency_key: a.document_id for a in attempts}
    assert not [a.id for a in attempts if a.status in ("pending", "unknown")], "unsettled attempts"
    assert not [c.id for c in captures if c.status == "pending"], "unsettled captures"

    # Every charge the gateway holds was made for an attempt Fiscus recorded first.
    orphans = [c["id"] for c in gateway_charges if c["reference"] not in key_to_doc]
    assert not orphans, f"gateway charges without a Fiscus attempt: {orphans}"

    captured_by_doc: Counter[int] = Counter()
    charges_by_doc: Counter[int] = Counter()
    for charge in gateway_charges:
        if charge["captured_amount"]:
            doc = key_to_doc[charge["reference"]]
            captured_by_doc[doc] += int(charge["captured_amount"])
            charges_by_doc[doc] += 1
    fiscus_captured: Counter[int] = Counter()
    for c in captures:
        if c.status == "succeeded":
            fiscus_captured[c.document_id] += c.amount_minor
    statuses: Counter[str] = Counter()
    for doc_id, card in run.docs.items():
        doc = docs[doc_id]
        statuses[f"{doc.status}"] += 1
        assert charges_by_doc[doc_id] <= 1, f"document {doc_id} charged {charges_by_doc[doc_id]} times"
        assert captured_by_doc[doc_id] <= doc.total_minor
        assert captured_by_doc[doc_id] == doc.amount_paid_minor == fiscus_captured[doc_id], doc_id
        if doc.status == "paid":
            assert fiscus_captured[doc_id] == doc.total_minor, f"document {doc_id} paid without a capture"
        if card in PAYS:
            assert doc.status == "paid", (doc_id, card, doc.status)
        else:
            assert doc.status == "open", (doc_id, card, doc.status)
            assert doc.amount_paid_minor == 0, doc_id

    # One to one: each succeeded attempt is one captured gateway charge, and the reverse.
    by_id = {c["id"]: c for c in gateway_charges}
    succeeded = {a.provider_charge_id: a for a in attempts if a.status == "succeeded"}
    assert set(succeeded) == {c["id"] for c in gateway_charges if c["captured_amount"]}
    for charge_id, attempt in succeeded.items():
        assert by_id[charge_id]["reference"] == attempt.idempotency_key
        assert by_id[charge_id]["captured_amount"] == attempt.authorized_minor
    for a in attempts:
        if a.status == "failed" and a.provider_charge_id is not None:
            assert by_id[a.provider_charge_id]["status"] in ("declined", "failed")

    bad = {k: v for k, v in reconcile(db).items() if v}
    assert not bad, bad
    assert reconcile_with_provider(db, run.provider) == []
    return statuses, Counter(str(c["status"]) for c in gateway_charges)


@pytest.fixture
def lone_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path, extra_args=GATEWAY_ARGS) as gw:
        yield gw


def _unknown_charge(db: Database, clock: FixedClock, gw: GatewayProcess) -> tuple[int, int]:
    tenant = make_tenant(db, clock, "bg")
    cid = make_customer(db, clock, tenant)
    add_card(db, clock, gw.provider(), tenant.org_id, cid, token=gw.tokenise(cards.TIMEOUT))
    doc_id = bill_order_now(
        db, clock, tenant.org_id, create_order(db, clock, tenant.org_id, cid, [ItemSpec(tenant.one_off, 1)])
    )
    provider = gw.provider(timeout_seconds=CLIENT_TIMEOUT)
    assert charge_document(db, clock, provider, tenant.org_id, doc_id).status.value == "unknown"
    return tenant.org_id, doc_id


def test_marking_paid_while_a_charge_is_unknown_is_refused(
    db: Database, clock: FixedClock, lone_gateway: GatewayProcess
) -> None:
    """The card may have been charged: recording a bank payment too would collect twice."""
    org, doc_id = _unknown_charge(db, clock, lone_gateway)
    with pytest.raises(InvalidStateError):
        mark_paid(db, clock, org, doc_id)
    clock.advance(timedelta(minutes=2))
    assert settle_unknown(db, clock, lone_gateway.provider()) == 1
    with db.read() as conn:
        doc = conn.execute(select(t.documents).where(t.documents.c.id == doc_id)).mappings().one()
    assert doc["status"] == "paid"
    assert doc["amount_paid_minor"] == doc["total_minor"]
    bad = {k: v for k, v in reconcile(db).items() if v}
    assert not bad, bad


def test_voiding_while_a_charge_is_unknown_is_refused(
    db: Database, clock: FixedClock, lone_gateway: GatewayProcess
) -> None:
    """Voiding an invoice whose card charge may have gone through would keep the money of a void
    invoice."""
    org, doc_id = _unknown_charge(db, clock, lone_gateway)
    with pytest.raises(InvalidStateError, match="unknown"):
        void_document(db, clock, org, doc_id)
    with db.read() as conn:
        status = conn.execute(select(t.documents.c.status).where(t.documents.c.id == doc_id)).scalar_one()
    assert status == "open"


def test_a_credit_off_the_due_while_a_charge_is_unknown_is_refused(
    db: Database, clock: FixedClock, lone_gateway: GatewayProcess
) -> None:
    """The charge in flight is for the amount due before the credit: lowering the due now could leave the
    customer charged more than they owe."""
    from decimal import Decimal

    from fiscus.services.credit_notes import issue_credit_note

    org, doc_id = _unknown_charge(db, clock, lone_gateway)
    with pytest.raises(InvalidStateError, match="unknown"):
        issue_credit_note(
            db,
            clock,
            org,
            doc_id,
            mode="amount",
            amount=Decimal("1.00"),
            reason="goodwill",
            disposition="reduce_due",
        )
    with db.read() as conn:
        notes = conn.execute(
            select(t.documents.c.id).where(t.documents.c.corrected_document_id == doc_id)
        ).all()
    assert notes == []


class LostRequest:
    """The charge request is lost before it reaches the gateway, and Fiscus cannot tell (a timeout)."""

    def __init__(self, provider: GatewayProvider) -> None:
        self._provider = provider
        self.name = provider.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    def charge(self, **kwargs: Any) -> ChargeSnapshot:
        from fiscus.domain.payments import OutcomeUnknown

        raise OutcomeUnknown("timed out before the gateway answered")


def test_an_invoice_due_for_collection_is_collected_after_a_lost_manual_charge(
    db: Database, clock: FixedClock, lone_gateway: GatewayProcess
) -> None:
    """A charge from the API or the hosted page is in flight when the worker comes to the invoice: the
    worker leaves it for later rather than dropping it from the schedule, so when the janitor finds
    the charge never happened the invoice is still collected automatically."""
    gw = lone_gateway
    tenant = make_tenant(db, clock, "bg")
    cid = make_customer(db, clock, tenant)
    add_card(db, clock, gw.provider(), tenant.org_id, cid, token=gw.tokenise(cards.SUCCESS))
    order = create_order(db, clock, tenant.org_id, cid, [ItemSpec(tenant.one_off, 1)])
    doc_id = bill_order_now(db, clock, tenant.org_id, order)  # due for automatic collection now
    lost = charge_document(db, clock, LostRequest(gw.provider()), tenant.org_id, doc_id, trigger=Trigger.API)
    assert lost.status.value == "unknown"
    summary = run_collection(db, clock, gw.provider())
    assert (summary.attempted, summary.skipped) == (0, 1)
    for _ in range(3):
        clock.advance(timedelta(minutes=2))
        settle_unknown(db, clock, gw.provider())
        run_collection(db, clock, gw.provider())
    with db.read() as conn:
        doc = conn.execute(select(t.documents).where(t.documents.c.id == doc_id)).mappings().one()
        attempts = conn.execute(
            select(t.payment_attempts.c.status, t.payment_attempts.c.error_code, t.payment_attempts.c.trigger)
            .where(t.payment_attempts.c.document_id == doc_id)
            .order_by(t.payment_attempts.c.id)
        ).all()
    assert attempts == [("failed", "not_processed", "api"), ("succeeded", None, "automatic")]
    assert doc["status"] == "paid"
    assert doc["next_payment_attempt_at"] is None
    assert len(gw.ledger()["charges"]) == 1  # type: ignore[arg-type]
