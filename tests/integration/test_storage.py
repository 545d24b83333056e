"""Exactness at rest: decimals, minor units and instants round-trip unchanged on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, insert, select

from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.types import ExactDecimal, UtcDateTime
from fiscus.domain.money import currency, from_minor, to_minor

scratch = MetaData()
roundtrip = Table(
    "roundtrip_probe",
    scratch,
    Column("id", Integer, primary_key=True),
    Column("exact", ExactDecimal),
    Column("minor", BigInteger),
    Column("at", UtcDateTime),
)

decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=0, min_value=-(10**20), max_value=10**20),
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**17), max_value=10**17),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**16), max_value=10**16),
    st.decimals(allow_nan=False, allow_infinity=False, places=12, min_value=-(10**6), max_value=10**6),
    st.sampled_from(
        [
            Decimal("-0"),
            Decimal("0.1"),
            Decimal("12345678901234567.89"),
            Decimal("1E-10"),
            Decimal("99999999999999999.99"),
            Decimal("1234567890123456789"),
        ]
    ),
)
instants = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5)), timezone(timedelta(hours=-9, minutes=-30))]
    ),
)


@pytest.fixture
def probe(db: Database) -> Database:
    scratch.create_all(db.engine)
    return db


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=decimals,
    minor=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    at=instants,
    code=st.sampled_from(["JPY", "EUR", "KWD", "KZT"]),
)
def test_values_round_trip_exactly(
    probe: Database, value: Decimal, minor: int, at: datetime, code: str
) -> None:
    with probe.write() as conn:
        row_id = conn.execute(
            insert(roundtrip).values(exact=value, minor=minor, at=at).returning(roundtrip.c.id)
        ).scalar_one()
    with probe.read() as conn:
        back = conn.execute(select(roundtrip).where(roundtrip.c.id == row_id)).one()
    assert back.exact == value
    assert back.minor == minor
    assert back.at == at
    assert back.at.tzinfo is not None
    cur = currency(code)
    settled = from_minor(minor, cur)
    assert to_minor(settled, cur) == back.minor


def test_floats_and_naive_datetimes_never_reach_the_database(probe: Database) -> None:
    with pytest.raises(Exception, match="Decimal"), probe.write() as conn:
        conn.execute(insert(roundtrip).values(exact=0.1))
    with pytest.raises(Exception, match="aware"), probe.write() as conn:
        conn.execute(insert(roundtrip).values(at=datetime(2026, 1, 1)))
