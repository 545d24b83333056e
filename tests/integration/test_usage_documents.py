"""A usage invoice everywhere it shows: EN 16931 (CII and UBL), /api/v1 usage lines, the current-usage
endpoint, the upcoming preview and the billing dialect's `count`, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.services.usage_ingest import EventIn, ingest_events
from tests.api_support import api_client, auth
from tests.en16931 import Schematron
from tests.integration.test_en16931_validation import _validate
from tests.usage_support import usage_world


def test_a_usage_invoice_is_valid_and_stated_everywhere(
    db: Database, clock: FixedClock, en16931: tuple[Schematron, Schematron]
) -> None:
    w = usage_world(db, clock, facturx=True)
    key = create_api_key(db, clock, w.org_id).secret
    s = w.start
    events = [
        EventIn(
            f"bw{i}",
            "bandwidth",
            s + timedelta(hours=3 * i),
            {"gb": "12.5", "region": ["eu", "us"][i % 2]},
            w.customer,
        )
        for i in range(90)
    ]
    events += [
        EventIn(f"api{i}", "api_calls", s + timedelta(minutes=37 * i), {}, w.customer) for i in range(300)
    ]
    events += [
        EventIn("st1", "storage", s + timedelta(days=1), {"gb": "100"}, w.customer),
        EventIn("st2", "storage", s + timedelta(days=10), {"gb": "-40"}, w.customer),
        EventIn("pay1", "payments", s + timedelta(days=2), {"amount": "1999.99", "status": "ok"}, w.customer),
        EventIn("pay2", "payments", s + timedelta(days=3), {"amount": "500", "status": "failed"}, w.customer),
        EventIn("seat1", "seats", s + timedelta(days=4), {"user": "ada"}, w.customer),
        EventIn("seat2", "seats", s + timedelta(days=5), {"user": "bob"}, w.customer),
        EventIn("seat3", "seats", s + timedelta(days=6), {"user": "ada"}, w.customer),
        EventIn("cpu1", "peak", s + timedelta(days=7), {"cpus": 5}, w.customer),
    ]
    events.sort(key=lambda e: e.timestamp)
    for i in range(0, len(events), 50):
        chunk = events[i : i + 50]
        clock.set(max(e.timestamp for e in chunk) + timedelta(minutes=1))
        ingest_events(db, clock, w.org_id, chunk)
    clock.set(s + timedelta(days=20))
    with api_client(db, clock) as client:
        usage = client.get(
            f"/api/v1/customers/{w.customer}/usage",
            params={"subscription": w.subscription},
            headers=auth(key),
        )
        assert usage.status_code == 200, usage.text
        current = usage.json()
        upcoming = client.get(
            f"/api/v1/subscriptions/{w.subscription}/upcoming_document", headers=auth(key)
        ).json()
        assert upcoming["usage"]["subtotal"] == current["amount"]
        by_code = {(c["metric_code"], c["group"]): c for c in current["charges"]}
        assert by_code[("api_calls", "")]["quantity"] == "300"
        assert by_code[("api_calls", "")]["amount"] == "0.04"  # 290 × 0.000125 = 0.03625
        assert by_code[("seats", "")]["quantity"] == "2"
        assert by_code[("payments", "")]["events"] == 1
        assert by_code[("payments", "")]["amount"] == "58.30"  # 2.9 % of 1999.99 = 58.00 (rounded) + 0.30
        assert by_code[("peak", "")]["amount"] == "14.97"  # ceil(5 / 2) = 3 packages

        end = datetime.fromisoformat(current["period_end"])
        clock.set(end + timedelta(hours=2))
        run_billing(db, clock)
        with db.read() as conn:
            doc_id = conn.execute(
                select(t.document_lines.c.document_id).where(t.document_lines.c.kind == "usage").distinct()
            ).scalar_one()
        lines = client.get(f"/api/v1/documents/{doc_id}/usage", headers=auth(key)).json()["data"]
        billed = {(u["metric_code"], u["group"]): u for u in lines}
        for k, c in by_code.items():
            if k[0] != "storage":  # the weighted mean moves with time: its current value is a projection
                assert billed[k]["quantity"] == c["quantity"]
                assert billed[k]["amount"] == c["amount"]
        storage = Decimal(billed[("storage", "")]["quantity"])
        length = (end - s).total_seconds()
        exact = (
            Decimal(100) * Decimal(length - 86400) - Decimal(40) * Decimal(length - 10 * 86400)
        ) / Decimal(length)
        assert abs(storage - exact) < Decimal("1e-9")
        doc = client.get(
            f"/api/v1/documents/{doc_id}", params={"expand[]": "lines"}, headers=auth(key)
        ).json()
        assert {ln["period_start"] for ln in doc["lines"]} == {s.isoformat().replace("+00:00", "Z")}
        assert any("Bandwidth · eu · tier 2" in ln["description"] for ln in doc["lines"])
    found = _validate(db, w.org_id, en16931)
    assert found.fatal == []
    assert found.checked >= 2
