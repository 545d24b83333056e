"""The emails no change causes, found by the worker with the clock it is given: a card expiring next
month, a trial ending within the organisation's notice days, a yearly plan renewing within its notice
days. Idempotent by message key (the card and month, the subscription and date), so running it every
tick queues each once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.email_queue import Wanted, email_settings, queue
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.email import EmailKind, message_key

MAX_NOTICE_DAYS = 60


def next_month(now: datetime) -> tuple[int, int]:
    return (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)


def queue_scheduled(db: Database, clock: Clock) -> int:
    """Queue every time-based email now due; returns how many rows were written."""
    with db.write() as conn:
        now = clock.now()
        wanted: list[Wanted] = []
        year, month = next_month(now)
        pm = t.payment_methods.c
        for r in conn.execute(
            select(
                pm.id, pm.organization_id, pm.customer_id, pm.brand, pm.last4, pm.exp_month, pm.exp_year
            ).where(pm.status == "active", pm.type == "card", pm.exp_year == year, pm.exp_month == month)
        ).all():
            data = {"brand": r.brand, "last4": r.last4, "exp_month": r.exp_month, "exp_year": r.exp_year}
            key = message_key(EmailKind.CARD_EXPIRING, "payment_method", r.id, f"{year:04}-{month:02}")
            wanted.append(Wanted(r.organization_id, EmailKind.CARD_EXPIRING, key, r.customer_id, None, data))
        s = t.subscriptions.c
        horizon = now + timedelta(days=MAX_NOTICE_DAYS)
        trials = conn.execute(
            select(s.id, s.organization_id, s.customer_id, s.trial_end).where(
                s.status == "trialing", s.trial_end > now, s.trial_end <= horizon
            )
        ).all()
        renewals = conn.execute(
            select(s.id, s.organization_id, s.customer_id, s.next_period_start).where(
                s.status == "active",
                s.interval == "year",
                s.cancel_at.is_(None),
                s.next_period_start > now,
                s.next_period_start <= horizon,
            )
        ).all()
        settings = email_settings(
            conn, {r.organization_id for r in trials} | {r.organization_id for r in renewals}
        )
        for tr in trials:
            if tr.trial_end <= now + timedelta(days=int(settings[tr.organization_id]["trial_notice_days"])):
                key = message_key(
                    EmailKind.TRIAL_ENDING, "subscription", tr.id, tr.trial_end.date().isoformat()
                )
                data = {"subscription_id": tr.id, "at": tr.trial_end.isoformat()}
                wanted.append(
                    Wanted(tr.organization_id, EmailKind.TRIAL_ENDING, key, tr.customer_id, None, data)
                )
        for rn in renewals:
            at = rn.next_period_start
            if at <= now + timedelta(days=int(settings[rn.organization_id]["renewal_notice_days"])):
                key = message_key(EmailKind.RENEWAL_UPCOMING, "subscription", rn.id, at.date().isoformat())
                data = {"subscription_id": rn.id, "at": at.isoformat()}
                wanted.append(
                    Wanted(rn.organization_id, EmailKind.RENEWAL_UPCOMING, key, rn.customer_id, None, data)
                )
        return queue(conn, now, wanted)
