"""Promotion codes entered by customers over HTTP, without a browser, on both databases (issue 17):
the hosted page of an open proforma takes a code (CSRF-checked form, no JS) and sends the browser to
the reissued proforma; an issued invoice refuses one and says why; the portal redeems a code onto the
customer's subscription, shows each refusal's reason in the customer's language, and nothing is
offered or accepted until the organisation allows it."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape
from urllib.parse import urlsplit

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.discounts import DiscountRefusedError, Refusal
from fiscus.domain.documents import DocumentType
from fiscus.domain.errors import NotFoundError
from fiscus.services.discounts import CodeSpec, CouponSpec, create_coupon, create_promotion_code
from fiscus.services.org_settings import update_settings
from fiscus.services.payment_links import link_secret
from fiscus.web.csrf import Csrf
from fiscus.web.promo_labels import PROMO_LABELS, promo_labels, refusal_message
from tests.api_support import api_client
from tests.pages.support import billed_document, follow, link_of


def _error(html: str) -> str:
    found = re.search(r'data-testid="promo-error">([^<]*)<', html)
    assert found, html
    return unescape(found.group(1))


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_every_refusal_is_said_in_every_language() -> None:
    for lang in ("en", "bg", "ru", "kk"):
        assert set(PROMO_LABELS[lang]) == set(PROMO_LABELS["en"]), lang
        t = promo_labels(lang)
        for reason in Refusal:
            text, status = refusal_message(t, DiscountRefusedError("promotion_code", reason))
            assert status == 409
            assert text == PROMO_LABELS[lang][f"promo_{reason.value}"]
        assert refusal_message(t, NotFoundError("promotion code", "X"))[1] == 404
    assert promo_labels("bg")["promo_code_expired"] != promo_labels("en")["promo_code_expired"]


def test_hosted_page_reissues_an_open_proforma_and_refuses_an_invoice(
    db: Database, clock: FixedClock
) -> None:
    tenant, _cid, proforma = billed_document(db, clock, "bg", slug="pro", document=DocumentType.PROFORMA)
    org = tenant.org_id
    coupon = create_coupon(db, clock, org, CouponSpec("Spring", "once", percent_off=Decimal(10)))
    create_promotion_code(db, clock, org, CodeSpec(coupon, "SPRING"))
    path = link_of(db, clock, org, proforma)
    with api_client(db, clock) as client:
        page = client.get(path)
        assert page.status_code == 200
        assert 'data-testid="promo-form"' not in page.text  # not allowed yet
        update_settings(db, clock, org, {"customer_promotion_codes": True})
        page = client.get(path)
        assert 'data-testid="promo-form"' in page.text
        token = _csrf(page.text)
        assert client.post(f"{path}/promotion_code", data={"code": "spring"}).status_code == 403  # no token
        unknown = client.post(f"{path}/promotion_code", data={"code": "winter", "csrf_token": token})
        assert unknown.status_code == 404
        assert _error(unknown.text) == promo_labels("en")["promo_unknown"]
        done = client.post(
            f"{path}/promotion_code", data={"code": "spring", "csrf_token": token}, follow_redirects=False
        )
        assert done.status_code == 303
        new_path = urlsplit(done.headers["location"]).path
        assert new_path != path
        reissued = follow(client, done.headers["location"])
        assert reissued.status_code == 200
        assert promo_labels("en")["promo_applied"] in reissued.text
        assert 'data-testid="discount">−' in reissued.text  # the discount, as the PDF shows it
        assert reissued.text.count('data-testid="line-discount"') == 1
        replaced = client.get(path).text  # the replaced proforma links to its successor
        assert "void" in replaced
        assert f'href="{new_path}"' in replaced, replaced
        # 2 × 15.00 = 30.00 − 10 % = 27.00 + 20 % VAT = 32.40
        assert re.search(r'data-testid="total">[^<]*32[.,]40', reissued.text), reissued.text

        # An issued invoice cannot change: the code is refused, saying why, and nothing is written.
        other, _, invoice = billed_document(db, clock, "bg", slug="inv", locale="bg")
        update_settings(db, clock, other.org_id, {"customer_promotion_codes": True})
        create_promotion_code(
            db,
            clock,
            other.org_id,
            CodeSpec(
                create_coupon(db, clock, other.org_id, CouponSpec("Ten", "once", percent_off=Decimal(10))),
                "TEN",
            ),
        )
        inv_path = link_of(db, clock, other.org_id, invoice)
        assert 'data-testid="promo-form"' not in client.get(inv_path).text  # offered only where it applies
        token = Csrf(link_secret(db, clock, None)).issue(f"pay:{invoice}", clock.now())
        client.cookies.clear()
        client.cookies.set("fiscus_pay_csrf", token)
        refused = client.post(f"{inv_path}/promotion_code", data={"code": "ten", "csrf_token": token})
        assert refused.status_code == 409
        assert _error(refused.text) == promo_labels("bg")["promo_document_final"]  # the buyer's language
        with db.read() as conn:
            docs = (
                conn.execute(
                    select(t.documents.c.status).where(t.documents.c.organization_id == other.org_id)
                )
                .scalars()
                .all()
            )
            redeemed = conn.execute(
                select(td.promotion_codes.c.times_redeemed).where(
                    td.promotion_codes.c.organization_id == other.org_id
                )
            ).scalar_one()
        assert (docs, redeemed) == (["open"], 0)
