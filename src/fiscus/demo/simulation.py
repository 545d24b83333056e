"""Replaying one organisation's year through the services, at historical instants read from the
simulation's clock: the catalog first, then each customer's arrival, subscriptions, plan changes,
cancellations and orders, with a billing run every week and, with a gateway, the worker's payment jobs
every day. Bank-transfer customers' payments are recorded a few days after issue."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from zoneinfo import ZoneInfo

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.demo.clock import DAY, STEP, SimulationClock
from fiscus.demo.collection import CardCollection, assign_payers
from fiscus.demo.gateway import Payments
from fiscus.demo.metering import Meter
from fiscus.demo.planning import CustomerPlan, Planner, SubPlan
from fiscus.demo.scenario import Catalog, Items, Payer, Price, Scenario
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentStatus
from fiscus.services.billing_run import run_billing
from fiscus.services.catalog import create_price, create_product, create_variant
from fiscus.services.customers import create_customer
from fiscus.services.discounts import CodeSpec, CouponSpec, create_coupon, create_promotion_code, redeem
from fiscus.services.documents import mark_paid
from fiscus.services.instance import create_with_sandbox
from fiscus.services.orders import create_order
from fiscus.services.payments.settings import update_payment_settings
from fiscus.services.subscriptions import (
    ItemSpec,
    cancel_subscription,
    change_subscription,
    create_subscription,
)
from fiscus.services.usage_prices import UsageSpec
from fiscus.services.wallets import grant_credits


class Simulation:
    """Replays one organisation's year: a time-ordered queue of service calls between weekly billing
    runs, and with a gateway the worker's daily payment jobs (janitor, captures, collection)."""

    def __init__(
        self,
        db: Database,
        scenario: Scenario,
        rng: random.Random,
        start: datetime,
        now: datetime,
        payments: Payments | None = None,
        pay_rng: random.Random | None = None,
        usage_rng: random.Random | None = None,
    ):
        self.db, self.scenario, self.rng, self.start, self.now = db, scenario, rng, start, now
        self.payments = payments
        self.pay_rng = pay_rng or random.Random(0)
        """Payment choices draw from their own stream, so the billing history is the same either way."""
        self.clock = SimulationClock(start)
        self.catalog = Catalog()
        self.planner = Planner(scenario, rng, self.catalog, start, now)
        self.org_id = 0
        """The test-mode sandbox the year is seeded into (its documents show TEST)."""
        self.live_id = 0
        """The live organisation beside it, left empty: where the business would bill for real."""
        self.last_document = 0
        self.subscriptions = 0
        self.customers = 0
        self.cards: CardCollection | None = None
        """The card side of the year; None without a gateway (everyone then pays by bank transfer)."""
        self.usage_rng = usage_rng or random.Random(0)
        """Usage (events, and the payment of usage documents) draws from its own stream too."""
        self.meter: Meter | None = None

    def run(self, clock: Clock) -> int:
        self.live_id, self.org_id = create_with_sandbox(self.db, self.clock, self.scenario.spec, actor="demo")
        collection = self.scenario.collection
        update_payment_settings(
            self.db,
            self.clock,
            self.org_id,
            capture_mode=collection.capture_mode,
            retry_days=list(collection.retry_days),
            retry_final_action=collection.final_action,
            actor="demo",
        )
        if self.payments is not None:
            self.cards = CardCollection(
                self.db, self.clock, self.org_id, collection, self.payments, self.pay_rng, self.start
            )
        if self.scenario.metering is not None:
            self.meter = Meter(self.db, self.org_id, self.scenario.metering, self.usage_rng)
            self.meter.create_metrics(self.clock)
        self._create_catalog()
        self._create_promotion()
        customers = self.scenario.customers(self.rng)
        plans = [
            self.planner.heavy(spec) if index == 0 else self.planner.customer(spec)
            for index, spec in enumerate(customers)
        ]
        payers = assign_payers(plans, collection, self.pay_rng, with_cards=self.cards is not None)
        for plan, payer in zip(plans, payers, strict=True):
            self.clock.at(plan.created, partial(self._start_customer, plan, payer))
        if self.cards is not None:
            for day, kind in collection.refunds:
                when = self.start + timedelta(days=day, minutes=self.pay_rng.randint(1, 24 * 60 - 1))
                self.clock.at(when, partial(self.cards.refund, kind))
        tick = self.start
        days = 0
        while tick <= self.now:
            self.clock.run_until(tick)
            self.clock.set(tick)
            if days % STEP.days == 0:
                self._report_usage(tick)
                run_billing(self.db, self.clock, at=tick, organization_id=self.org_id, actor="demo")
                self._schedule_payments()
            self._collect()
            tick += DAY
            days += 1
        self.clock.run_until(self.now)
        self._report_usage(self.now)
        run_billing(self.db, clock, at=self.now, organization_id=self.org_id, actor="demo")
        self.clock.set(self.now)
        self._collect()
        return self.org_id

    def _report_usage(self, until: datetime) -> None:
        """The metered subscriptions' events up to `until`, sent before the run that bills them."""
        if self.meter is not None:
            self.clock.set(until)
            self.meter.report(self.clock, until)

    def _collect(self) -> None:
        if self.cards is not None:
            self.cards.collect()

    def _create_catalog(self) -> None:
        code = self.scenario.spec.default_currency
        for product in self.scenario.products:
            pid = create_product(self.db, self.clock, self.org_id, product.spec, actor="demo")
            for offer in product.offers:
                vid = create_variant(
                    self.db,
                    self.clock,
                    self.org_id,
                    pid,
                    code=offer.code,
                    name=offer.name,
                    limits=list(offer.limits),
                    actor="demo",
                )
                usage = None
                if offer.usage is not None:
                    assert self.meter is not None, "a usage offer needs the scenario's metering"
                    metric = self.meter.metric_ids[offer.usage.metric]
                    usage = UsageSpec(metric, offer.usage.model, offer.usage.properties)
                price_id = create_price(
                    self.db,
                    self.clock,
                    self.org_id,
                    vid,
                    currency_code=code,
                    unit_amount=offer.amount,
                    interval=offer.interval,
                    interval_count=offer.interval_count,
                    tax_category=offer.tax_category.value,
                    actor="demo",
                    usage=usage,
                )
                self.catalog.prices.append(Price(price_id, product.spec.code, offer))
                if offer.usage is not None and self.meter is not None:
                    self.meter.usage_prices[offer.code] = price_id

    def _create_promotion(self) -> None:
        """The scenario's launch coupon and promotion code (issue 17), redeemable from the start."""
        promo = self.scenario.promotion
        if promo is None:
            return
        spec = CouponSpec(
            promo.coupon, "repeating", percent_off=Decimal(promo.percent_off), duration_periods=promo.periods
        )
        coupon = create_coupon(self.db, self.clock, self.org_id, spec, actor="demo")
        create_promotion_code(self.db, self.clock, self.org_id, CodeSpec(coupon, promo.code), actor="demo")

    # -- replay: the service calls, each at its own historical instant

    def _start_customer(self, plan: CustomerPlan, payer: Payer) -> None:
        cid = create_customer(self.db, self.clock, self.org_id, plan.spec, actor="demo")
        self.customers += 1
        promo = self.scenario.promotion
        if promo is not None and Decimal(promo.credit) > 0 and self.customers % promo.every == 2:
            grant_credits(
                self.db,
                self.clock,
                self.org_id,
                cid,
                currency_code=self.scenario.spec.default_currency,
                amount=Decimal(promo.credit),
                reason="Welcome credit",
                actor="demo",
            )
        if self.cards is not None:
            self.cards.welcome(cid, payer, plan.spec.name)
        for sub in plan.subscriptions:
            self.clock.at(sub.start, partial(self._start_subscription, cid, sub))
        for when, items in plan.orders:
            self.clock.at(when, partial(self._order, cid, items))

    def _start_subscription(self, customer_id: int, plan: SubPlan) -> None:
        first = self._offer(plan.items[0][0])
        metered = self.meter is not None and self.meter.wants(
            customer_id, first.offer.code, first.offer.cadence == ("month", 1)
        )
        start_at = local_midnight(plan.start, self.scenario.spec.timezone)
        sid = create_subscription(
            self.db,
            self.clock,
            self.org_id,
            customer_id,
            self._with_usage(plan.items, metered),
            start_at=start_at,
            trial_days=plan.trial_days,
            actor="demo",
        )
        if metered and self.meter is not None:
            trial_end = start_at + timedelta(days=plan.trial_days)
            self.meter.start(sid, customer_id, max(self.clock.now(), trial_end))
        self.subscriptions += 1
        promo = self.scenario.promotion
        if promo is not None and self.subscriptions % promo.every == 1:  # as the customer typed it
            redeem(
                self.db, self.clock, self.org_id, subscription_id=sid, code=promo.code.lower(), actor="demo"
            )
        for when, items in plan.changes:
            self.clock.at(
                when,
                partial(
                    change_subscription,
                    self.db,
                    self.clock,
                    self.org_id,
                    sid,
                    self._with_usage(items, metered),
                    actor="demo",
                ),
            )
        if plan.cancel is not None:
            when, at_end = plan.cancel
            self.clock.at(
                when,
                partial(
                    cancel_subscription,
                    self.db,
                    self.clock,
                    self.org_id,
                    sid,
                    at_period_end=at_end,
                    actor="demo",
                ),
            )

    def _offer(self, price_id: int) -> Price:
        return next(p for p in self.catalog.prices if p.id == price_id)

    def _with_usage(self, items: Items, metered: bool) -> list[ItemSpec]:
        """The items, with the usage prices of the first plan when the subscription is metered (a plan
        change keeps them, or swaps them for the new plan's: usage then splits at the change)."""
        specs = _specs(items)
        if metered and self.meter is not None:
            specs += [ItemSpec(pid, 1) for pid in self.meter.usage_items(self._offer(items[0][0]).offer.code)]
        return specs

    def _order(self, customer_id: int, items: Items) -> None:
        create_order(self.db, self.clock, self.org_id, customer_id, _specs(items), actor="demo")

    def _schedule_payments(self) -> None:
        """Customers without a card pay most new documents by bank transfer a few days after issue; the
        rest stay open (for the hosted payment page). A downgrade can leave a document with a credit
        total, which nobody pays. Card payers are charged by the collection jobs instead."""
        d = t.documents.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(d.id, d.type, d.status, d.issued_at, d.total_minor, d.customer_id)
                .where(d.organization_id == self.org_id, d.id > self.last_document)
                .order_by(d.id)
            ).all()
            u = tu.usage_lines.c
            usage = set(
                conn.execute(
                    select(u.document_id).where(
                        u.organization_id == self.org_id, u.document_id > self.last_document
                    )
                ).scalars()
            )
        payers = self.cards.payers if self.cards is not None else {}
        for row in rows:
            self.last_document = max(self.last_document, row.id)
            if row.type != self.scenario.pay_type.value or row.status != DocumentStatus.OPEN.value:
                continue
            if row.total_minor <= 0 or payers.get(row.customer_id, Payer.BANK) is not Payer.BANK:
                continue
            rng = self.usage_rng if row.id in usage else self.rng  # the year's other draws stay the same
            if rng.randrange(100) < self.scenario.paid_percent:
                when = row.issued_at + timedelta(days=rng.randint(1, self.scenario.pay_within_days))
                self.clock.at(
                    when + timedelta(minutes=rng.randint(1, 24 * 60 - 1)),  # as `planner.minutes()`
                    partial(mark_paid, self.db, self.clock, self.org_id, row.id, actor="demo"),
                )


def _specs(items: Items) -> list[ItemSpec]:
    return [ItemSpec(price_id, quantity) for price_id, quantity in items]


def local_midnight(instant: datetime, zone: str) -> datetime:
    """The start of `instant`'s day in the organisation's zone (in UTC): the demo's subscriptions start,
    and so are anchored, at midnight where the organisation is, as a business's own would be."""
    local = instant.astimezone(ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
