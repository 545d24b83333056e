"""The demo's organisations, in the order they are seeded (which fixes their ids). A fourth organisation
is a new module exposing `scenario() -> Scenario`, added to this list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from fiscus.demo.bg_vps import scenario as bg_vps
from fiscus.demo.kz_marketplace import scenario as kz_marketplace
from fiscus.demo.scenario import Scenario
from fiscus.demo.us_saas import scenario as us_saas
from fiscus.services.instance import sandbox_slug

SCENARIOS: Final[tuple[Callable[[], Scenario], ...]] = (
    kz_marketplace,
    bg_vps,
    us_saas,
)


def definitions() -> list[Scenario]:
    """Every scenario, built afresh (each holds the customers' generator for its own random stream)."""
    return [make() for make in SCENARIOS]


SLUGS: Final = tuple(s.spec.slug for s in definitions())
"""The demo organisations' slugs: how a seeded one is recognised."""
SANDBOX_SLUGS: Final = tuple(sandbox_slug(slug) for slug in SLUGS)
"""The test-mode sandboxes the demo's data lives in (their live organisations stay empty)."""
