"""axe-core (from the npm registry, `make install`) run inside a page Chromium has open: the accessibility
check every page test makes. Serious and critical violations fail; the rest are reported by axe's own
severity and left to review."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = frozenset({"serious", "critical"})


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """The page's context must run JavaScript (`java_script_enabled=True`, the default): with it off,
    axe never answers. Every violation axe-core finds on the page as it is now (WCAG 2.x A and AA rules
    and best practice)."""
    # Evaluated through the browser's devtools channel, not as an inline <script>: the page's own CSP
    # (which allows no inline script but its hashed ones) stays exactly as served.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result: dict[str, Any] = page.evaluate("async () => await axe.run(document)")
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def assert_accessible(page: Page) -> None:
    """No serious or critical violation; the message lists each with the elements at fault."""
    blocking = [v for v in axe_violations(page) if v.get("impact") in BLOCKING]
    report = "\n".join(
        f"{v['impact']}: {v['id']}: {v['help']} at {[n['target'] for n in v['nodes']][:5]}" for v in blocking
    )
    assert not blocking, f"axe-core on {page.url}:\n{report}"
