"""The EU's VIES service: is a VAT number registered right now? An adapter behind `VatRegistry`.

Format and checksum are checked offline (domain/tax.py) on every input; this online check is extra,
opt-in (`FISCUS_VIES_ENABLED=true`), and never called by the test suite, which uses a fake registry.
"""

from __future__ import annotations

import httpx

from fiscus.domain.tax import VatCheck

VIES_URL = "https://ec.europa.eu/taxation_customs/vies/rest-api/check-vat-number"


class ViesRegistry:
    def __init__(self, client: httpx.Client | None = None, url: str = VIES_URL) -> None:
        self._client = client or httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
        self._url = url

    def check(self, vat_id: str) -> VatCheck:
        country, number = vat_id[:2], vat_id[2:]
        try:
            response = self._client.post(self._url, json={"countryCode": country, "vatNumber": number})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return VatCheck(valid=None, name=None, detail=f"VIES unavailable: {exc}")
        return VatCheck(valid=bool(body.get("valid")), name=body.get("name") or None, detail="")
