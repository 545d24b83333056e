"""The payment side of a demo organisation's year: who pays how (a test card per story), and what the
worker's payment jobs and the customers do at the simulation's instants: cards given, lost answers
settled, authorisations captured, what is due charged and retried, cards replaced, refunds made."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.payments.gateway import NAME as GATEWAY
from fiscus.demo.gateway import Payments
from fiscus.demo.planning import CustomerPlan
from fiscus.demo.scenario import CARD_NUMBERS, FIXED_AFTER_FAILURES, Collection, Payer, Refund
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.payments import AttemptStatus
from fiscus.gateway import cards
from fiscus.services.payments.captures import capture_payment
from fiscus.services.payments.collection import run_collection
from fiscus.services.payments.janitor import settle_unknown
from fiscus.services.payments.methods import add_card
from fiscus.services.payments.refunds import refund_payment


def assign_payers(
    plans: list[CustomerPlan], collection: Collection, pay_rng: random.Random, *, with_cards: bool
) -> list[Payer]:
    """The heavy customer pays by bank transfer (keeping the demo quick: card payments cross HTTP);
    the special payers go to the earliest other customers (so their retries, fixes and settlements
    happen within the year); of the rest a share has no card."""
    if not with_cards:
        return [Payer.BANK] * len(plans)
    payers = [Payer.BANK] + [Payer.CARD] * (len(plans) - 1)
    rest = sorted(range(1, len(plans)), key=lambda i: plans[i].created)
    special = collection.special
    for index, payer in zip(rest, special, strict=False):
        payers[index] = payer
    others = rest[len(special) :]
    bank = max(2, len(others) * collection.bank_percent // 100)
    for index in pay_rng.sample(others, min(bank, len(others))):
        payers[index] = Payer.BANK
    return payers


class CardCollection:
    """One organisation's card customers and the worker's daily payment jobs, through the gateway.
    Its random choices draw from the payment stream, so the billing history is the same either way."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        org_id: int,
        collection: Collection,
        payments: Payments,
        pay_rng: random.Random,
        start: datetime,
    ) -> None:
        self.db, self.clock, self.org_id, self.collection = db, clock, org_id, collection
        self.payments, self.pay_rng, self.start = payments, pay_rng, start
        self.payers: dict[int, Payer] = {}
        self.to_fix: set[int] = set()
        """Customers who will replace their card (SOFT_FIXED, TIMEOUT)."""
        self.partly_refunded: list[int] = []
        self.partial_capture_done = False

    def welcome(self, customer_id: int, payer: Payer, holder: str) -> None:
        """A new customer who pays by card gives theirs (a test card that plays their story)."""
        self.payers[customer_id] = payer
        if payer is not Payer.BANK:
            self.give_card(customer_id, CARD_NUMBERS[payer], holder)
            if payer in (Payer.SOFT_FIXED, Payer.TIMEOUT):
                self.to_fix.add(customer_id)

    def give_card(self, customer_id: int, number: str, holder: str) -> None:
        """The customer types a card into the gateway's form (tokenised there, never seen by Fiscus);
        the token is attached as their default payment method."""
        exp_month = self.pay_rng.randint(1, 12)
        exp_year = self.start.year + self.pay_rng.randint(3, 5)
        token = self.payments.tokenise(number, exp_month, exp_year, holder)
        if number == cards.TIMEOUT:
            self.payments.provider.impatient_tokens.add(token)
        add_card(
            self.db,
            self.clock,
            self.payments.provider,
            self.org_id,
            customer_id,
            token=token,
            holder=holder,
            make_default=True,
            actor="demo",
        )

    def collect(self) -> None:
        """One day of the worker's payment jobs: settle lost answers, capture yesterday's
        authorisations, charge what is due (first attempts and retries); then customers whose card
        failed may give a new one."""
        provider = self.payments.provider
        settle_unknown(self.db, self.clock, provider)
        self._capture_authorized()
        run_collection(self.db, self.clock, provider)
        if self.to_fix:
            self._fix_cards()

    def _capture_authorized(self) -> None:
        """Authorize mode: capture once the service is provisioned, a day later; one capture is partial
        (a server delivered smaller than ordered), which leaves the invoice open with the rest due."""
        pa = t.payment_attempts.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(pa.id, pa.authorized_minor)
                .where(
                    pa.organization_id == self.org_id,
                    pa.status == AttemptStatus.AUTHORIZED.value,
                    pa.created_at < self.clock.now(),
                )
                .order_by(pa.id)
            ).all()
        partial_from = self.collection.partial_capture_day
        for attempt_id, authorized in rows:
            amount = None
            if (
                partial_from is not None
                and not self.partial_capture_done
                and self.clock.now() >= self.start + timedelta(days=partial_from)
                and authorized >= 500
            ):
                amount = authorized - authorized // 5
                self.partial_capture_done = True
            capture_payment(
                self.db,
                self.clock,
                self.payments.provider,
                self.org_id,
                attempt_id,
                amount_minor=amount,
                actor="demo",
            )

    def _fix_cards(self) -> None:
        """A SOFT_FIXED customer gives a good card after a couple of failed charges (the next retry then
        succeeds); the TIMEOUT customer after their first charge."""
        pa = t.payment_attempts.c
        for customer_id in sorted(self.to_fix):
            payer = self.payers[customer_id]
            query = select(func.count()).where(pa.customer_id == customer_id)
            if payer is Payer.SOFT_FIXED:
                query = query.where(pa.status == AttemptStatus.FAILED.value)
            needed = FIXED_AFTER_FAILURES if payer is Payer.SOFT_FIXED else 1
            with self.db.read() as conn:
                if int(conn.execute(query).scalar_one()) < needed:
                    continue
            with self.db.read() as conn:
                holder = conn.execute(
                    select(t.customers.c.name).where(t.customers.c.id == customer_id)
                ).scalar_one()
            self.give_card(customer_id, cards.SUCCESS, holder)
            self.to_fix.discard(customer_id)

    def refund(self, kind: Refund) -> None:
        """Refund an invoice paid by card in the last two months: a third of it, the rest of one refunded
        partly before, or all of it. Each refund goes with a credit note."""
        partial_reason, full_reason = self.collection.refund_reasons
        if kind is Refund.REST:
            if not self.partly_refunded:
                return
            doc_id = self.partly_refunded.pop()
            amount = None
        else:
            candidates = self._refundable(self.clock.now() - timedelta(days=60))
            if not candidates:
                return
            doc_id, paid = self.pay_rng.choice(candidates)
            amount = max(1, paid // 3) if kind is Refund.PARTIAL else None
        refund_payment(
            self.db,
            self.clock,
            self.payments.provider,
            self.org_id,
            doc_id,
            amount_minor=amount,
            reason=partial_reason if kind is Refund.PARTIAL else full_reason,
            actor="demo",
        )
        if kind is Refund.PARTIAL:
            self.partly_refunded.append(doc_id)

    def _refundable(self, since: datetime) -> list[tuple[int, int]]:
        """Paid invoices (id, amount paid) whose money came through the gateway, not refunded or
        credited yet."""
        d, pc, pa = t.documents.c, t.payment_captures.c, t.payment_attempts.c
        paid_by_card = (
            select(pc.document_id)
            .join(t.payment_attempts, pa.id == pc.attempt_id)
            .where(pc.status == "succeeded", pa.provider == GATEWAY, pa.organization_id == self.org_id)
        )
        with self.db.read() as conn:
            rows = conn.execute(
                select(d.id, d.amount_paid_minor)
                .where(
                    d.organization_id == self.org_id,
                    d.type == DocumentType.INVOICE.value,
                    d.status == DocumentStatus.PAID.value,
                    d.paid_at >= since,
                    d.amount_refunded_minor == 0,
                    d.amount_credited_minor == 0,
                    d.amount_paid_minor >= 300,
                    d.id.in_(paid_by_card),
                )
                .order_by(d.id)
            ).all()
        return [(int(row.id), int(row.amount_paid_minor)) for row in rows]
