"""The simulation's clock: a `FixedClock` that the replay moves along a time-ordered queue of actions,
so every service call is made at its own historical instant."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import datetime, timedelta

from fiscus.domain.clock import FixedClock

HISTORY = timedelta(days=365)
STEP = timedelta(weeks=1)
DAY = timedelta(days=1)


class SimulationClock(FixedClock):
    """A clock with an agenda: `at` queues an action for an instant, `run_until` performs the queued
    actions in time order (ties in the order they were queued), each with the clock set to its instant.
    Actions may queue further actions."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self._queue: list[tuple[datetime, int, Callable[[], object]]] = []
        self._seq = 0

    def at(self, when: datetime, action: Callable[[], object]) -> None:
        heapq.heappush(self._queue, (when, self._seq, action))
        self._seq += 1

    def run_until(self, until: datetime) -> None:
        while self._queue and self._queue[0][0] <= until:
            when, _seq, action = heapq.heappop(self._queue)
            self.set(when)
            action()
