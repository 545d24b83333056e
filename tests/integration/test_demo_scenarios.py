"""The demo's organisations are registered scenarios of one shape: adding one is a module and a line."""

from __future__ import annotations

import random

from fiscus.demo import SLUGS
from fiscus.demo.registry import SCENARIOS, definitions
from fiscus.demo.scenario import Scenario


def test_every_registered_scenario_has_the_same_shape_and_its_own_slug() -> None:
    scenarios = definitions()
    assert len(scenarios) == len(SCENARIOS) == 3
    assert all(isinstance(s, Scenario) for s in scenarios)
    assert SLUGS == ("kz-marketplace", "bg-vps", "us-saas")
    assert len(set(SLUGS)) == len(SLUGS)
    for scenario in scenarios:
        assert scenario.products, scenario.spec.slug
        assert scenario.cadences, scenario.spec.slug
        assert scenario.heavy_subscriptions > 0, scenario.spec.slug
        # customers come from the scenario's own random stream: the same seed, the same people
        first = scenario.customers(random.Random(f"1:{scenario.spec.slug}"))
        again = scenario.customers(random.Random(f"1:{scenario.spec.slug}"))
        assert first == again, scenario.spec.slug
        assert len(first) >= 10, scenario.spec.slug
