"""The US analytics platform: USD, no VAT, monthly, quarterly and yearly plans with seats, 30-day terms,
and the harshest collection (unpaid invoices become uncollectible); one Canadian customer."""

from __future__ import annotations

import random

from fiscus.demo.scenario import Collection, Offer, Payer, Product, Refund, Scenario
from fiscus.domain.documents import DocumentType
from fiscus.services.catalog import ProductSpec
from fiscus.services.customers import CustomerSpec
from fiscus.services.organizations import OrganizationSpec

_US_WORDS = ("Acme", "Blue Ridge", "Cedar", "Summit", "Harbor", "Lakeside", "Redwood", "Granite", "Beacon")
_US_KINDS = ("Analytics", "Labs", "Media", "Logistics", "Health", "Studio")
_US_CITIES = (
    ("New York, NY", "10001", "America/New_York"),
    ("Austin, TX", "73301", "America/Chicago"),
    ("Denver, CO", "80202", "America/Denver"),
    ("Seattle, WA", "98101", "America/Los_Angeles"),
    ("Boston, MA", "02108", "America/New_York"),
)
_US_STREETS = ("Main", "Oak", "Pine", "Market")
_US_PEOPLE = (("Emily", "Carter"), ("James", "Miller"), ("Olivia", "Nguyen"), ("Daniel", "Brooks"))


def _us_customers(rng: random.Random) -> list[CustomerSpec]:
    out = [
        CustomerSpec(
            name="Northwind Traders Inc.",
            email="ap@northwind.example.com",
            country="US",
            address_line1="500 Fifth Avenue",
            city="New York, NY",
            postal_code="10110",
        )
    ]
    for word, kind in rng.sample([(w, k) for w in _US_WORDS for k in _US_KINDS], 9):
        city, postal, tz = rng.choice(_US_CITIES)
        slug = f"{word}{kind}".lower().replace(" ", "")
        out.append(
            CustomerSpec(
                name=f"{word} {kind} {rng.choice(('LLC', 'Inc.'))}",
                email=f"billing@{slug}.example.com",
                country="US",
                timezone=tz,
                address_line1=f"{rng.randint(10, 999)} {rng.choice(_US_STREETS)} Street",
                city=city,
                postal_code=postal,
            )
        )
    for first, last in _US_PEOPLE[:3]:
        city, postal, tz = rng.choice(_US_CITIES)
        out.append(
            CustomerSpec(
                name=f"{first} {last}",
                email=f"{first.lower()}.{last.lower()}@example.com",
                country="US",
                timezone=tz,
                city=city,
                postal_code=postal,
            )
        )
    out.insert(
        rng.randrange(1, len(out)),
        CustomerSpec(
            name="Maple Leaf Digital Ltd.",
            email="finance@mapleleaf.example.ca",
            country="CA",
            timezone="America/Toronto",
            address_line1="100 King Street West",
            city="Toronto, ON",
            postal_code="M5X 1A9",
        ),
    )
    return out


def scenario() -> Scenario:
    spec = OrganizationSpec(
        slug="us-saas",
        legal_name="Pulseboard, Inc.",
        country="US",
        timezone="America/New_York",
        default_currency="USD",
        vat_registered=False,
        tax_id="84-2795311",
        email="billing@pulseboard.example.com",
        address_line1="228 Park Ave S",
        city="New York, NY",
        postal_code="10003",
        locale="en",
        payment_terms_days=30,
    )
    tiers = {
        "starter": ("Starter", ("5 dashboards", "3 seats")),
        "growth": ("Growth", ("50 dashboards", "10 seats")),
        "scale": ("Scale", ("unlimited dashboards", "25 seats", "SSO")),
    }
    grid = {
        "month": {"starter": "29", "growth": "79", "scale": "199"},
        "quarter": {"starter": "79", "growth": "219", "scale": "549"},
        "year": {"starter": "290", "growth": "790", "scale": "1990"},
    }
    plans = tuple(
        Offer(f"{tier}-{unit}ly", f"{tiers[tier][0]}, {unit}ly", amount, unit, limits=tiers[tier][1])
        for unit, row in grid.items()
        for tier, amount in row.items()
    )
    seats = tuple(
        Offer(f"seat-{unit}ly", f"Extra seat, {unit}ly", amount, unit, addon=True)
        for unit, amount in (("month", "9"), ("quarter", "25"), ("year", "90"))
    )
    products = (
        Product(
            ProductSpec(
                code="pulse",
                name="Pulse Analytics",
                type="saas",
                slogan="Every metric, one board",
                detail="Dashboards and alerts over your product data.",
                tags=["analytics"],
                modules=["reporting"],
                demo_enabled=True,
                demo_duration="14 days",
            ),
            plans,
        ),
        Product(ProductSpec(code="seats", name="Additional seats", type="addon"), seats),
        Product(
            ProductSpec(code="services", name="Professional services", type="service"),
            (
                Offer("onboarding", "Guided onboarding", "499"),
                Offer("data-migration", "Data migration", "1500"),
                Offer("custom-report", "Custom report", "250"),
                Offer("training-hour", "Training, per hour", "150"),
            ),
        ),
    )
    cadences = (("month", 1),) * 3 + (("quarter", 1), ("year", 1))
    collection = Collection(
        final_action="mark_uncollectible",
        special=(Payer.TIMEOUT, Payer.SOFT_FIXED, Payer.SOFT, Payer.DO_NOT_HONOR),
        refunds=((120, Refund.PARTIAL), (160, Refund.REST), (270, Refund.FULL)),
        refund_reasons=(
            "Goodwill credit for a service outage",
            "Refund: cancelled within the 30-day money-back period",
        ),
    )
    return Scenario(spec, products, _us_customers, cadences, 6, DocumentType.INVOICE, 90, 25, collection)
