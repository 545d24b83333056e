"""The demo's subscriptions start, and so are anchored, at midnight in their organisation's zone."""

from __future__ import annotations

from datetime import UTC, datetime

from fiscus.demo.simulation import local_midnight


def test_midnight_in_the_organisations_zone() -> None:
    afternoon = datetime(2026, 3, 10, 14, 25, tzinfo=UTC)
    assert local_midnight(afternoon, "Asia/Almaty") == datetime(2026, 3, 9, 19, 0, tzinfo=UTC)  # UTC+5
    assert local_midnight(afternoon, "Europe/Sofia") == datetime(2026, 3, 9, 22, 0, tzinfo=UTC)  # UTC+2
    assert local_midnight(afternoon, "America/New_York") == datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # EDT


def test_late_evening_utc_is_already_the_next_day_east_of_greenwich() -> None:
    late = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)  # 01:30 on 2 July in Sofia (EEST)
    assert local_midnight(late, "Europe/Sofia") == datetime(2026, 7, 1, 21, 0, tzinfo=UTC)
