"""The European Commission's EN 16931 Schematron (compiled to XSLT) run under saxonche, for the suite.

The stylesheets live in `shared/validators/en16931/` beside the repository's root (the CI clones the
repository next to `shared/`); where that folder is absent (a user's clone) the tests that need it skip.
Compiling a stylesheet takes seconds, so each is compiled once per session and reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lxml import etree  # type: ignore[import-untyped]

SVRL: Final = {"svrl": "http://purl.oclc.org/dsdl/svrl"}
VALIDATORS: Final = Path(__file__).resolve().parents[1].parent / "shared" / "validators" / "en16931"
CII_XSLT: Final = VALIDATORS / "EN16931-CII-validation.xslt"
UBL_XSLT: Final = VALIDATORS / "EN16931-UBL-validation.xslt"


@dataclass(frozen=True, slots=True)
class Assert:
    """One failed assert of the SVRL report: its rule id, flag (fatal or warning), where and what."""

    rule: str
    flag: str
    location: str
    text: str

    def __str__(self) -> str:
        return f"{self.rule} [{self.flag}] {self.text} at {self.location}"


class Schematron:
    """A compiled EN 16931 validation stylesheet; `check` returns the failed asserts of one XML."""

    def __init__(self, stylesheet: Path) -> None:
        from saxonche import PySaxonProcessor  # type: ignore[import-not-found]

        self._processor = PySaxonProcessor(license=False)
        compiler = self._processor.new_xslt30_processor()
        self._executable = compiler.compile_stylesheet(stylesheet_file=str(stylesheet))
        self.name = stylesheet.name

    def check(self, xml: bytes) -> list[Assert]:
        node = self._processor.parse_xml(xml_text=xml.decode("utf-8"))
        report = self._executable.transform_to_string(xdm_node=node)
        if report is None:
            raise RuntimeError(f"{self.name} produced no SVRL report")
        root = etree.fromstring(report.encode("utf-8"))
        return [
            Assert(
                rule=str(x.get("id") or ""),
                flag=str(x.get("flag") or ""),
                location=str(x.get("location") or ""),
                text=" ".join((x.findtext("svrl:text", default="", namespaces=SVRL) or "").split()),
            )
            for x in root.iterfind(".//svrl:failed-assert", SVRL)
        ]


def missing_reason() -> str | None:
    """Why the official validators cannot run here, or None when they can."""
    if not CII_XSLT.is_file() or not UBL_XSLT.is_file():
        return (
            f"EN 16931 validators not found at {VALIDATORS} (the `shared/` folder beside the repository); "
            "the CI has them, a plain clone does not"
        )
    return None
