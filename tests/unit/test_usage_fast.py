"""The events body's msgspec fast path (api/usage_fast.py) only ever accepts what pydantic accepts, with
the same values; everything else is left to pydantic, whose 422 problems stay the API's answer."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fiscus.api import usage_schemas
from fiscus.api.usage_fast import decode_events, fast_events
from fiscus.api.usage_schemas import EventsIn

TEXTS = st.one_of(
    st.sampled_from(
        ["", "a", "e1", "x" * 64, "x" * 65, "x" * 128, "x" * 129, "x" * 200, "x" * 201, "a\x00b"]
    ),
    st.text(max_size=8),
)
TIMESTAMPS = st.sampled_from(
    [
        "2026-12-07T10:00:00Z",
        "2026-12-07t10:00:00z",
        "2026-12-07T10:00:00.123456+02:00",
        "2026-12-07T10:00:00.1234567Z",
        "2026-12-07T10:00:00",
        "2026-12-07 10:00:00Z",
        "2026-02-30T10:00:00Z",
        "2026-12-07T10:00:00Z\n",
        "2026-12-07T24:00:00Z",
        "1899-12-07T10:00:00Z",
        "2026-12-07T10:00:60Z",
    ]
)
INTS = st.one_of(
    st.integers(min_value=-2, max_value=3), st.sampled_from([2**53 - 1, 2**53, 2**64, 1.0, 2.5, True])
)
VALUES = st.one_of(
    TEXTS, INTS, st.booleans(), st.none(), st.floats(allow_nan=False), st.just([1]), st.just({})
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {
        "transaction_id": draw(TEXTS),
        "customer_id": draw(INTS),
        "code": draw(TEXTS),
        "timestamp": draw(TIMESTAMPS),
    }
    if draw(st.booleans()):
        event["properties"] = draw(st.dictionaries(TEXTS, VALUES, max_size=3))
    if draw(st.integers(0, 9)) == 0:
        event.pop(draw(st.sampled_from(sorted(event))))
    if draw(st.integers(0, 9)) == 0:
        event["external"] = 1
    return event


def _slow(data: Any, monkeypatch: pytest.MonkeyPatch) -> EventsIn | None:
    with monkeypatch.context() as m:
        m.setattr(usage_schemas, "fast_events", lambda _data: None)
        try:
            return EventsIn.model_validate(data)
        except ValidationError:
            return None


@settings(max_examples=int(os.environ.get("FISCUS_FAST_EXAMPLES", "60")), deadline=None)
@given(body=st.one_of(st.builds(lambda es: {"events": es}, st.lists(events(), max_size=3)), st.just({})))
def test_what_the_fast_path_accepts_pydantic_accepts_alike(body: dict[str, Any]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        slow = _slow(body, monkeypatch)
    raw = json.dumps(body).encode()
    decoded = decode_events(raw)
    if decoded is not None:  # the route's decoder from bytes: what pydantic accepts, the same values
        assert slow is not None, body
        assert [_plain(e) for e in decoded] == [_plain(e) for e in slow.events], body
    if fast_events(body) is None:
        return
    assert slow is not None, body
    assert EventsIn.model_validate(body).model_dump() == slow.model_dump()


def _plain(e: Any) -> tuple[Any, ...]:
    return (e.transaction_id, e.customer_id, e.external_customer_id, e.code, e.timestamp, e.properties)


def test_the_bytes_decoder_leaves_nul_and_non_json_to_pydantic() -> None:
    one = {"transaction_id": "a", "customer_id": 1, "code": "c", "timestamp": "2026-12-07T10:00:00Z"}
    assert decode_events(json.dumps({"events": [one]}).encode()) is not None
    assert decode_events(json.dumps({"events": [{**one, "code": "c\x00"}]}).encode()) is None
    assert decode_events(b'{"events": [{"transaction_id": "\\ud800"}]}') is None
    assert decode_events(b"not json") is None
    assert decode_events(json.dumps({"events": [{**one, "properties": {"v": 1.5}}]}).encode()) is None


def test_a_well_formed_batch_takes_the_fast_path() -> None:
    body = {
        "events": [
            {
                "transaction_id": f"e{i}",
                "customer_id": 7,
                "code": "bandwidth",
                "timestamp": "2026-12-07T10:00:00.5+02:00",
                "properties": {"gb": "1.5", "region": "eu", "n": 3, "ok": True, "none": None},
            }
            for i in range(1000)
        ]
    }
    fast = fast_events(body)
    assert fast is not None
    assert len(fast) == 1000
    assert EventsIn.model_validate(body).events[0].timestamp.utcoffset() is not None
    assert fast_events({"events": [*body["events"], body["events"][0]]}) is None  # 1,001: pydantic says why
