"""Where `shared/` is absent (a user's clone), the EN 16931 validation says why instead of failing."""

from pathlib import Path

import pytest

from tests import en16931


def test_missing_validators_give_a_clear_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(en16931, "CII_XSLT", tmp_path / "EN16931-CII-validation.xslt")
    reason = en16931.missing_reason()
    assert reason is not None
    assert "shared/" in reason


def test_the_validators_sit_beside_the_repository() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert repo.parent / "shared" / "validators" / "en16931" == en16931.VALIDATORS
