"""The demo's organisations, in the order they are seeded (which fixes their ids). A fourth organisation
is a new module exposing `scenario() -> Scenario`, added to this list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from fiscus.demo import bg_vps, kz_marketplace, us_saas
from fiscus.demo.scenario import Scenario

SCENARIOS: Final[tuple[Callable[[], Scenario], ...]] = (
    kz_marketplace.scenario,
    bg_vps.scenario,
    us_saas.scenario,
)


def definitions() -> list[Scenario]:
    """Every scenario, built afresh (each holds the customers' generator for its own random stream)."""
    return [make() for make in SCENARIOS]


SLUGS: Final = tuple(s.spec.slug for s in definitions())
"""The demo organisations' slugs: how a seeded one is recognised."""
