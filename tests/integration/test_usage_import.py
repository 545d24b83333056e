"""`fiscus events import`: NDJSON and CSV, streamed in batches, exactly once when run again."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.cli_usage import BadLine, import_file
from fiscus.domain.clock import FixedClock
from fiscus.services.usage_metrics import MetricSpec, create_metric
from tests.builders import make_customer, make_tenant
from tests.integration.test_cli import fiscus


def _stored(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(tu.usage_events)).scalar_one())


def test_ndjson_and_csv_import_once(db: Database, db_url: str, clock: FixedClock, tmp_path: Path) -> None:
    tenant = make_tenant(db, clock, "bg", slug="import")
    customer = make_customer(db, clock, tenant)
    create_metric(db, clock, tenant.org_id, MetricSpec("gb", "GB", "sum", "gb"))
    at = clock.now() - timedelta(days=30)
    ndjson = tmp_path / "events.ndjson"
    ndjson.write_text(
        "\n".join(
            json.dumps(
                {
                    "transaction_id": f"n{i}",
                    "customer_id": customer,
                    "code": "gb",
                    "timestamp": (at + timedelta(minutes=i)).isoformat(),
                    "properties": {"gb": "1.5"},
                }
            )
            for i in range(250)
        )
    )
    assert import_file(db, clock, tenant.org_id, ndjson, fmt="ndjson", batch=100, late_days=60) == 250
    assert import_file(db, clock, tenant.org_id, ndjson, fmt="ndjson", batch=100, late_days=60) == 250
    assert _stored(db) == 250
    rows = ["transaction_id,customer_id,code,timestamp,gb"] + [
        f"c{i},{customer},gb,{(at + timedelta(hours=i)).isoformat()},2" for i in range(20)
    ]
    (tmp_path / "events.csv").write_text("\n".join(rows) + "\n")
    assert (
        import_file(db, clock, tenant.org_id, tmp_path / "events.csv", fmt="csv", batch=7, late_days=60) == 20
    )
    assert _stored(db) == 270
    bad = tmp_path / "bad.ndjson"
    bad.write_text(ndjson.read_text().splitlines()[0] + "\n" + '{"transaction_id": "x", "customer_id": 1}\n')
    with pytest.raises(BadLine, match="line 2: missing code, timestamp"):
        import_file(db, clock, tenant.org_id, bad, fmt="ndjson", batch=100, late_days=60)
    too_old = tmp_path / "old.ndjson"
    too_old.write_text(ndjson.read_text().splitlines()[5].replace('"n5"', '"old"'))
    with pytest.raises(BadLine, match="line 1: timestamp: older than the late window"):
        import_file(db, clock, tenant.org_id, too_old, fmt="ndjson", batch=100, late_days=None)
    if db.is_sqlite:  # the command itself, once
        out = fiscus(
            db_url, "events", "import", str(ndjson), "--org", str(tenant.org_id), "--late-days", "400"
        )
        assert out.returncode == 0, out.stderr
        assert "250 events sent" in out.stderr
