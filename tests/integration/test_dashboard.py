"""The dashboard reconciles with the ledger: a small organisation is built through the services (a
billing run, card payments succeeded, declined and recovered, a credit note, a refund across local
midnight, plan changes up and down, a cancellation now, one at period end, one inside a trial, a
churned customer coming back) on SQLite and PostgreSQL; then every figure is recomputed here from the
raw rows in plain Python and compared to the minor unit, for each grain."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Table, event, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.errors import InvalidFieldError, NotFoundError
from fiscus.domain.payments import amount_due
from fiscus.gateway import cards
from fiscus.queries.dashboard import AGEING, Dashboard, Ratio, dashboard, dashboard_currencies
from fiscus.queries.dashboard_sql import DashboardQueries
from fiscus.services.billing_run import run_billing
from fiscus.services.catalog import create_price
from fiscus.services.credit_notes import issue_credit_note
from fiscus.services.customers import CustomerSpec, create_customer
from fiscus.services.documents import mark_paid
from fiscus.services.orders import create_order
from fiscus.services.payments.collection import run_collection
from fiscus.services.payments.methods import add_card
from fiscus.services.payments.refunds import refund_payment
from fiscus.services.subscriptions import (
    ItemSpec,
    cancel_subscription,
    change_subscription,
    create_subscription,
)
from tests.builders import Tenant, make_customer, make_tenant
from tests.conftest import BACKENDS, new_database_url
from tests.payments_support import GatewayProcess, gateway_process

pytestmark = pytest.mark.xdist_group("dashboard")  # one worker builds each story once (make test: loadgroup)

TZ = ZoneInfo("Europe/Sofia")
START, END = date(2026, 1, 1), date(2026, 3, 31)
PER_MONTH = {"day": Decimal(365) / 12, "week": Decimal(52) / 12, "month": Decimal(1)}


@dataclass
class World:
    db: Database
    tenant: Tenant
    now: datetime
    customers: dict[str, int]


def _doc(db: Database, org: int, customer: int, **where: Any) -> int:
    d = t.documents.c
    with db.read() as conn:
        q = select(d.id).where(d.organization_id == org, d.customer_id == customer)
        for k, v in where.items():
            q = q.where(d[k] == v)
        return int(conn.execute(q.order_by(d.id)).scalars().first())  # type: ignore[arg-type]


def ten_variant(db: Database, ten: Tenant) -> int:
    v = t.variants.c
    with db.read() as conn:
        found = (
            conn.execute(select(v.id).where(v.organization_id == ten.org_id).order_by(v.id)).scalars().first()
        )
    assert found is not None
    return int(found)


def _build(db: Database, gw: GatewayProcess) -> World:
    clock = FixedClock(datetime(2026, 1, 5, 8, 0, tzinfo=UTC))
    provider = gw.provider()
    ten = make_tenant(db, clock, "bg", slug="dash")
    c: dict[str, int] = {}
    plan = {
        "steady": (cards.SUCCESS, ten.monthly, 1, 0),
        "declined": (cards.INSUFFICIENT_FUNDS, ten.monthly_big, 1, 0),
        "yearly": (cards.SUCCESS, ten.yearly, 1, 0),
        "trial": (None, ten.monthly, 2, 7),
        "hard": (cards.DO_NOT_HONOR, ten.monthly, 1, 0),
        "tried": (cards.SUCCESS, ten.monthly, 1, 14),
    }
    subs: dict[str, int] = {}
    for n, (name, (card, price, qty, trial)) in enumerate(plan.items()):
        c[name] = make_customer(db, clock, ten, n)
        if card:
            add_card(db, clock, provider, ten.org_id, c[name], token=gw.tokenise(card))
        subs[name] = create_subscription(
            db, clock, ten.org_id, c[name], [ItemSpec(price, qty)], trial_days=trial
        )
    c["dollars"] = create_customer(
        db,
        clock,
        ten.org_id,
        CustomerSpec(name="Usd", email="u@example.com", country="US", currency="USD"),
    )
    usd_price = create_price(
        db, clock, ten.org_id, ten_variant(db, ten), currency_code="USD", unit_amount="20"
    )
    add_card(db, clock, provider, ten.org_id, c["dollars"], token=gw.tokenise(cards.SUCCESS))
    create_order(db, clock, ten.org_id, c["dollars"], [ItemSpec(usd_price, 2)])
    run_billing(db, clock)
    run_collection(db, clock, provider)  # steady, yearly, dollars paid; declined soft, hard hard-declined
    clock.advance(timedelta(days=1))
    add_card(db, clock, provider, ten.org_id, c["declined"], token=gw.tokenise(cards.SUCCESS))
    assert run_collection(db, clock, provider).succeeded == 1  # the retry recovers it
    clock.advance(timedelta(days=1))
    steady_invoice = _doc(db, ten.org_id, c["steady"])
    issue_credit_note(
        db,
        clock,
        ten.org_id,
        steady_invoice,
        mode="amount",
        amount=Decimal("5.00"),
        reason="goodwill",
        disposition="customer_credit",
    )
    clock.advance(timedelta(days=1))
    cancel_subscription(db, clock, ten.org_id, subs["tried"], at_period_end=False)  # inside its trial
    clock.set(datetime(2026, 1, 15, 10, 0, tzinfo=UTC))
    run_billing(db, clock)  # the trial's first period (from Jan 12)
    change_subscription(db, clock, ten.org_id, subs["steady"], [ItemSpec(ten.monthly_big, 1)])
    cancel_subscription(db, clock, ten.org_id, subs["hard"], at_period_end=False)
    cancel_subscription(db, clock, ten.org_id, subs["trial"], at_period_end=True)
    clock.set(datetime(2026, 1, 31, 22, 30, tzinfo=UTC))  # 00:30 on Feb 1 in Sofia
    refund_payment(db, clock, provider, ten.org_id, _doc(db, ten.org_id, c["yearly"]), amount_minor=5000)
    clock.set(datetime(2026, 2, 14, 9, 0, tzinfo=UTC))
    run_billing(db, clock)
    run_collection(db, clock, provider)
    mark_paid(db, clock, ten.org_id, _doc(db, ten.org_id, c["trial"]))
    clock.set(datetime(2026, 2, 20, 9, 0, tzinfo=UTC))
    change_subscription(db, clock, ten.org_id, subs["declined"], [ItemSpec(ten.monthly, 1)])
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    create_subscription(db, clock, ten.org_id, c["hard"], [ItemSpec(ten.monthly, 3)])  # comes back
    run_billing(db, clock)
    run_collection(db, clock, provider)
    clock.set(datetime(2026, 3, 30, 12, 0, tzinfo=UTC))  # after the switch to summer time
    run_billing(db, clock)
    run_collection(db, clock, provider)
    return World(db, ten, clock.now(), c)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway process for both databases' stories (each tokenises its own cards)."""
    with gateway_process(tmp_path_factory.mktemp("dash-gw"), extra_args=("--timeout-seconds", "3")) as gw:
        yield gw


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, gateway: GatewayProcess
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"dash-{request.param}")
    db = Database(new_database_url(str(request.param), request, tmp))
    try:
        yield _build(db, gateway)
    finally:
        db.dispose()


# --- the independent recomputation ------------------------------------------------------------------


def _key(day: date, grain: str) -> date:
    if grain == "month":
        return date(day.year, day.month, 1)
    if grain == "week":
        return day - timedelta(days=day.isoweekday() - 1)
    return day


def _local(at: datetime) -> date:
    return at.astimezone(TZ).date()


def _rows(db: Database, table: Table, org: int) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [dict(r) for r in conn.execute(select(table).where(table.c.organization_id == org)).mappings()]


def _sums(
    rows: list[dict[str, Any]],
    day_of: Callable[[dict[str, Any]], date | None],
    grain: str,
    value: Callable[[dict[str, Any]], int],
) -> dict[date, int]:
    out: dict[date, int] = defaultdict(int)
    for r in rows:
        day = day_of(r)
        if day is not None and START <= day <= END:
            out[_key(day, grain)] += value(r)
    return {k: v for k, v in out.items() if v}


def _series(dash: Dashboard, grain: str, values: list[int]) -> dict[date, int]:
    return {_key(b.start, grain): v for b, v in zip(dash.buckets, values, strict=True) if v}


def _monthly(items: list[tuple[int, Decimal]], prices: dict[int, dict[str, Any]]) -> int:
    exact = sum((q * prices[p]["unit_amount"] for p, q in items), Decimal(0))
    unit = prices[items[0][0]]["interval"]
    months = exact * PER_MONTH[unit] if unit in PER_MONTH else exact / (12 if unit == "year" else 3)
    return int((months * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _expected_mrr(world: World, at: datetime) -> dict[int, int]:
    """Each customer's MRR at instant `at` (what happened strictly before it), from raw rows: items
    from the audit trail's "after" of the last change before `at`, else the first change's "before",
    else the current items."""
    org = world.tenant.org_id
    prices = {p["id"]: p for p in _rows(world.db, t.prices, org)}
    items: dict[int, list[tuple[int, Decimal]]] = defaultdict(list)
    for i in _rows(world.db, t.subscription_items, org):
        items[i["subscription_id"]].append((i["price_id"], i["quantity"]))
    changes = sorted(
        (
            a
            for a in _rows(world.db, t.audit_events, org)
            if a["entity_type"] == "subscription" and a["action"] == "changed"
        ),
        key=lambda a: (a["at"], a["id"]),
    )
    out: dict[int, int] = defaultdict(int)
    for s in _rows(world.db, t.subscriptions, org):
        begin = s["trial_end"] or s["start_at"]
        until = s["ended_at"] or s["cancel_at"]
        if (
            s["currency"] != "EUR"
            or not begin < at
            or (until is not None and until < at)
            or (until is not None and until <= begin)
        ):
            continue
        mine = [a for a in changes if a["entity_id"] == s["id"]]
        before = [a for a in mine if a["at"] < at]
        raw = before[-1]["after"]["items"] if before else (mine[0]["before"]["items"] if mine else None)
        its = [(r["price_id"], Decimal(r["quantity"])) for r in raw] if raw is not None else items[s["id"]]
        out[s["customer_id"]] += _monthly(its, prices)
    return out


@pytest.mark.parametrize("grain", ["month", "week", "day"])
def test_every_figure_reconciles_with_the_rows(world: World, grain: str) -> None:
    org = world.tenant.org_id
    with world.db.read() as conn:
        dash = dashboard(conn, org, "EUR", START, END, grain, now=world.now)
    docs = [d for d in _rows(world.db, t.documents, org) if d["currency"] == "EUR"]
    live = [d for d in docs if d["status"] in ("open", "paid", "uncollectible")]
    attempts = {a["id"]: a for a in _rows(world.db, t.payment_attempts, org)}
    eur = {a["id"] for a in attempts.values() if a["currency"] == "EUR"}
    captures = [c for c in _rows(world.db, t.payment_captures, org) if c["status"] == "succeeded"]
    assert {c["attempt_id"] in eur for c in captures} == {True, False}  # a USD payment to leave out
    captures = [c for c in captures if c["attempt_id"] in eur]
    refunds = [
        r
        for r in _rows(world.db, t.payment_refunds, org)
        if r["status"] == "succeeded" and r["attempt_id"] in eur
    ]

    def issued(kind: str, value: Callable[[dict[str, Any]], int]) -> dict[date, int]:
        return _sums([d for d in live if d["type"] == kind], lambda d: d["issue_date"], grain, value)

    rev = dash.revenue
    assert _series(dash, grain, [r.invoiced_minor for r in rev]) == issued(
        "invoice", lambda d: d["total_minor"]
    )
    assert _series(dash, grain, [r.invoices for r in rev]) == issued("invoice", lambda d: 1)
    assert _series(dash, grain, [r.credit_notes_minor for r in rev]) == issued(
        "credit_note", lambda d: d["total_minor"]
    )
    assert _series(dash, grain, [r.credit_notes for r in rev]) == issued("credit_note", lambda d: 1)
    settled: Callable[[dict[str, Any]], date] = lambda m: _local(m["settled_at"] or m["created_at"])  # noqa: E731
    assert _series(dash, grain, [r.collected_minor for r in rev]) == _sums(
        captures, settled, grain, lambda m: m["amount_minor"]
    )
    assert _series(dash, grain, [r.refunded_minor for r in rev]) == _sums(
        refunds, settled, grain, lambda m: m["amount_minor"]
    )
    assert _series(dash, grain, [r.refunds for r in rev]) == _sums(refunds, settled, grain, lambda m: 1)
    assert sum(r.refunds for r in rev) == 1
    assert sum(r.credit_notes for r in rev) >= 2

    # payment success: settled card attempts by creation; recovery: documents whose first card attempt failed
    card = [a for a in attempts.values() if a["provider"] != "external" and a["currency"] == "EUR"]
    done = [a for a in card if a["status"] in ("succeeded", "failed")]
    created: Callable[[dict[str, Any]], date] = lambda a: _local(a["created_at"])  # noqa: E731
    assert _series(dash, grain, [p.success.denominator for p in dash.payments]) == _sums(
        done, created, grain, lambda a: 1
    )
    assert _series(dash, grain, [p.success.numerator for p in dash.payments]) == _sums(
        done, created, grain, lambda a: a["status"] == "succeeded"
    )
    first: dict[int, dict[str, Any]] = {}
    for a in sorted(card, key=lambda a: a["id"]):
        first.setdefault(a["document_id"], a)
    failed_first = [a for a in first.values() if a["status"] == "failed"]
    paid_docs = {a["document_id"] for a in attempts.values() if a["status"] == "succeeded"}
    assert _series(dash, grain, [p.recovery.denominator for p in dash.payments]) == _sums(
        failed_first, created, grain, lambda a: 1
    )
    assert _series(dash, grain, [p.recovery.numerator for p in dash.payments]) == _sums(
        failed_first, created, grain, lambda a: a["document_id"] in paid_docs
    )
    assert sum(p.recovery.numerator for p in dash.payments) == 1  # the declined card, replaced
    assert sum(p.recovery.denominator for p in dash.payments) == 3  # and two hard declines (Jan, Mar)

    # receivables now, aged by due date in the organisation's zone
    today = _local(world.now)
    expected_age: dict[str, list[int]] = {k: [0, 0] for k in AGEING}
    for d in docs:
        if d["type"] != "invoice" or d["status"] != "open":
            continue
        late = (today - d["due_date"]).days if d["due_date"] else 0
        label = AGEING[0 if late <= 0 else 1 if late <= 30 else 2 if late <= 60 else 3 if late <= 90 else 4]
        expected_age[label][0] += 1
        expected_age[label][1] += amount_due(
            d["total_minor"], d["amount_paid_minor"], d["amount_refunded_minor"], d["amount_credited_minor"]
        )
    assert {a.label: [a.documents, a.amount_minor] for a in dash.receivables} == expected_age
    assert dash.receivables_minor > 0

    # MRR at every bucket end, customer by customer, and the movements adding up to it
    ends = [datetime.combine(b.end + timedelta(days=1), datetime.min.time(), TZ) for b in dash.buckets]
    start_at = datetime.combine(START, datetime.min.time(), TZ)
    assert dash.opening_mrr_minor == sum(_expected_mrr(world, start_at).values()) == 0
    previous = dash.opening_mrr_minor
    for end_at, point in zip(ends, dash.mrr, strict=True):
        assert point.mrr_minor == sum(_expected_mrr(world, end_at).values()), end_at
        moved = point.new_minor + point.expansion_minor + point.reactivation_minor
        assert point.mrr_minor == previous + moved - point.contraction_minor - point.churn_minor
        previous = point.mrr_minor

    # active and churned subscriptions
    subs = [s for s in _rows(world.db, t.subscriptions, org) if s["currency"] == "EUR"]
    spans = [(s["trial_end"] or s["start_at"], s["ended_at"] or s["cancel_at"]) for s in subs]
    paid = [(a, z) for a, z in spans if z is None or z > a]
    for b, end_at, counts in zip(dash.buckets, ends, dash.subscriptions, strict=True):
        lo = datetime.combine(b.start, datetime.min.time(), TZ)
        assert counts.active == sum(1 for a, z in paid if a < end_at and (z is None or z >= end_at))
        assert counts.churned == sum(1 for a, z in paid if z is not None and lo <= z < end_at)


def test_movements_of_the_story_by_month(world: World) -> None:
    """What the story did, month by month: who is new, who grew, shrank, left and came back."""
    org = world.tenant.org_id
    with world.db.read() as conn:
        dash = dashboard(conn, org, "EUR", START, END, "month", now=world.now)
    jan, feb, mar = dash.mrr
    # EUR 15 / 30.50 monthly, 150 yearly (12.50 a month)
    assert jan.new_minor == 1500 + 3050 + 1250 + 3000 + 1500
    assert (jan.expansion_minor, jan.churn_minor) == (3050 - 1500, 1500)
    assert (feb.churn_minor, feb.contraction_minor, feb.new_minor) == (3000, 3050 - 1500, 0)
    assert (mar.reactivation_minor, mar.new_minor, mar.churn_minor) == (4500, 0, 0)
    assert mar.mrr_minor == 3050 + 1500 + 1250 + 4500
    assert [s.churned for s in dash.subscriptions] == [1, 1, 0]  # the trial cancellation is not churn
    assert [s.active for s in dash.subscriptions] == [4, 3, 4]


def test_a_fixed_number_of_statements_and_clear_errors(world: World) -> None:
    org = world.tenant.org_id
    seen: list[str] = []

    def count(*args: Any) -> None:
        if str(args[2]).lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append(str(args[2]))

    event.listen(world.db.engine, "before_cursor_execute", count)
    try:
        with world.db.read() as conn:
            dashboard(conn, org, "EUR", START, END, "day", now=world.now)
            first = len(seen)
            dashboard(conn, org, "EUR", date(2025, 1, 1), END, "week", now=world.now)
    finally:
        event.remove(world.db.engine, "before_cursor_execute", count)
    assert first == len(seen) - first == 9
    with world.db.read() as conn:
        assert dashboard_currencies(conn, org) == ["EUR", "USD"]
        usd = dashboard(conn, org, "USD", START, END, "month", now=world.now)
        assert [(r.invoiced_minor, r.collected_minor) for r in usd.revenue] == [(4000, 4000), (0, 0), (0, 0)]
        assert usd.mrr[-1].mrr_minor == 0
        assert usd.payments[0].success == Ratio(1, 1)
        with pytest.raises(InvalidFieldError):
            dashboard(conn, org, "EUR", END, START, "month", now=world.now)
        with pytest.raises(InvalidFieldError):
            dashboard(conn, org, "EUR", START, END, "year", now=world.now)
        with pytest.raises(InvalidFieldError):
            dashboard(conn, org, "EUR", date(2020, 1, 1), END, "day", now=world.now)
        with pytest.raises(InvalidFieldError):
            dashboard(conn, org, "XYZ", START, END, "day", now=world.now)
        with pytest.raises(NotFoundError):
            dashboard(conn, org + 999, "EUR", START, END, "day", now=world.now)


def test_the_hourly_rollups_agree_with_the_payments(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sofia's midnights are whole UTC hours, so success and collected come from `payment_hours`; a
    half-hour zone reads the attempts and captures themselves: both give the same figures."""
    org = world.tenant.org_id
    with world.db.read() as conn:
        rolled = dashboard(conn, org, "EUR", START, END, "day", now=world.now)
        monkeypatch.setattr(DashboardQueries, "_whole_hours", lambda self: False)
        raw = dashboard(conn, org, "EUR", START, END, "day", now=world.now)
    assert sum(p.success.denominator for p in raw.payments) > 0
    assert rolled == raw
