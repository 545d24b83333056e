"""The Bulgarian VPS host: EUR, proformas first (10-digit numbers), Factur-X, authorise then capture,
Bulgarian consumers and EU businesses billed under reverse charge (and one from Serbia)."""

from __future__ import annotations

import random
from decimal import Decimal

from fiscus.demo.metering import Metering, Report, UsageCharge
from fiscus.demo.scenario import Collection, Offer, Payer, Product, Promotion, Refund, Scenario
from fiscus.domain.documents import DocumentType
from fiscus.services.catalog import ProductSpec
from fiscus.services.customers import CustomerSpec
from fiscus.services.organizations import OrganizationSpec, SeriesSpec, standard_rates
from fiscus.services.usage_metrics import MetricSpec

BANDWIDTH_TIERS = (
    {"up_to": "1000", "unit_price": "0"},
    {"up_to": "5000", "unit_price": "0.012"},
    {"up_to": None, "unit_price": "0.008"},
)
"""Outbound traffic per month: the first terabyte included, then two graduated tiers (EUR per GB)."""
METERING = Metering(
    metrics=(
        MetricSpec("bandwidth", "Трафик", "sum", "gb", rounding="round", precision=3),
        MetricSpec(
            "backup-storage", "Бекъп пространство", "weighted_sum", "gb", rounding="round", precision=2
        ),
    ),
    usage_offers=dict.fromkeys(("vps-1", "vps-1-plus", "vps-2", "vps-4"), ("bandwidth", "backup-storage")),
    reports=(
        Report("bandwidth", "gb", 2, 16_000, 160_000, places=3),
        Report("backup-storage", "gb", 7, 20, 120, delta=15),
    ),
    share_percent=60,
)
"""Most customers' first VPS bills its traffic (graduated, reported every other day) and its backup space held
over the month (a weighted sum of GB, reported as weekly changes), in arrears."""

_BG_MALE = (
    ("Иван", "ivan"),
    ("Георги", "georgi"),
    ("Димитър", "dimitar"),
    ("Николай", "nikolay"),
    ("Петър", "petar"),
)
_BG_FEMALE = (("Мария", "maria"), ("Елена", "elena"), ("Десислава", "desislava"), ("Цветелина", "tsvetelina"))
_BG_LAST = (
    ("Петров", "petrov"),
    ("Иванов", "ivanov"),
    ("Георгиев", "georgiev"),
    ("Димитров", "dimitrov"),
    ("Стоянов", "stoyanov"),
    ("Тодоров", "todorov"),
    ("Христов", "hristov"),
)
_BG_CITIES = (("София", "1000"), ("Пловдив", "4000"), ("Варна", "9000"), ("Бургас", "8000"), ("Русе", "7000"))
_BG_STREETS = ("ул. Витоша", "бул. България", "ул. Шипка", "бул. Марица", "ул. Раковски")
_EU_BUSINESSES = (
    (
        "Nordlicht Software GmbH",
        "DE",
        "DE136695976",
        "Friedrichstraße 12",
        "Berlin",
        "10115",
        "de",
        "Europe/Berlin",
    ),
    (
        "Atelier Lumière SARL",
        "FR",
        "FR40303265045",
        "12 rue de la République",
        "Lyon",
        "69002",
        "fr",
        "Europe/Paris",
    ),
    ("Alpenblick IT GmbH", "AT", "ATU13585627", "Kärntner Straße 5", "Wien", "1010", "de", "Europe/Vienna"),
    (
        "Dijkstra Hosting B.V.",
        "NL",
        "NL004495445B01",
        "Damrak 70",
        "Amsterdam",
        "1012 LM",
        "nl",
        "Europe/Amsterdam",
    ),
)


def _bg_customers(rng: random.Random) -> list[CustomerSpec]:
    people = [(f, last, "") for f in _BG_MALE for last in _BG_LAST]
    people += [(f, last, "а") for f in _BG_FEMALE for last in _BG_LAST]
    out = [
        CustomerSpec(
            name="Облак Хостинг ЕООД",
            email="finance@oblak-hosting.bg",
            country="BG",
            vat_id="BG204234853",
            address_line1="бул. Цариградско шосе 115",
            city="София",
            postal_code="1784",
        )
    ]
    for (first, first_l), (last, last_l), suffix in rng.sample(people, 12):
        city, postal = rng.choice(_BG_CITIES)
        domain = rng.choice(("abv.bg", "mail.bg", "gmail.com"))
        out.append(
            CustomerSpec(
                name=f"{first} {last}{suffix}",
                email=f"{first_l}.{last_l}{'a' if suffix else ''}{rng.randint(1, 99)}@{domain}",
                country="BG",
                address_line1=f"{rng.choice(_BG_STREETS)} {rng.randint(1, 120)}",
                city=city,
                postal_code=postal,
            )
        )
    for name, country, vat_id, street, city, postal, locale, tz in _EU_BUSINESSES:
        out.insert(
            rng.randrange(1, len(out)),
            CustomerSpec(
                name=name,
                email=f"accounts@{name.split()[0].lower()}.example.{country.lower()}",
                country=country,
                vat_id=vat_id,
                locale=locale,
                timezone=tz,
                address_line1=street,
                city=city,
                postal_code=postal,
            ),
        )
    out.insert(
        rng.randrange(1, len(out)),
        CustomerSpec(
            name="Dunav Soft d.o.o.",
            email="office@dunavsoft.example.rs",
            country="RS",
            locale="sr",
            timezone="Europe/Belgrade",
            address_line1="Knez Mihailova 10",
            city="Beograd",
            postal_code="11000",
        ),
    )
    return out


def scenario() -> Scenario:
    ten = "{seq:010}"
    spec = OrganizationSpec(
        slug="bg-vps",
        legal_name="Сървърна Ферма ООД",
        country="BG",
        timezone="Europe/Sofia",
        default_currency="EUR",
        vat_id="BG175074752",
        email="billing@vps.example.bg",
        address_line1="ул. Тинтява 15",
        city="София",
        postal_code="1113",
        locale="bg",
        tax_rates=standard_rates("BG", Decimal("0.20"), Decimal("0.09")),
        series=(
            SeriesSpec(DocumentType.PROFORMA, ten, 7390),
            SeriesSpec(DocumentType.INVOICE, ten, 1590),
            SeriesSpec(DocumentType.CREDIT_NOTE, ten, 1),
        ),
        subscription_document=DocumentType.PROFORMA,
        order_document=DocumentType.PROFORMA,
        facturx_enabled=True,
    )
    cdn = "https://cdn.vps.example.bg"

    def product(code: str, name: str, type_: str, detail: str, offers: tuple[Offer, ...]) -> Product:
        return Product(
            ProductSpec(
                code=code,
                name=name,
                type=type_,
                detail=detail,
                icon=f"{cdn}/{code}.svg",
                tags=[type_],
                modules=["hosting"],
            ),
            offers,
        )

    products = (
        product(
            "vps",
            "VPS",
            "vps",
            "KVM виртуален сървър с NVMe диск в София.",
            (
                Offer("vps-1", "VPS 1", "15", "month", limits=("1 vCPU", "2 GB RAM", "40 GB NVMe")),
                Offer("vps-1-plus", "VPS 1+", "15.50", "month", limits=("1 vCPU", "2 GB RAM", "60 GB NVMe")),
                Offer("vps-2", "VPS 2", "30", "month", limits=("2 vCPU", "4 GB RAM", "80 GB NVMe")),
                Offer("vps-4", "VPS 4", "59.90", "month", limits=("4 vCPU", "8 GB RAM", "160 GB NVMe")),
            ),
        ),
        product(
            "addons",
            "Добавки",
            "addon",
            "Месечни добавки към сървър.",
            (
                Offer("daily-backup", "Дневен бекъп", "3.50", "month", addon=True),
                Offer("ipv4-monthly", "Допълнителен IPv4", "2", "month", addon=True),
            ),
        ),
        product(
            "usage",
            "Потребление",
            "usage",
            "Трафик и бекъп пространство, таксувани след края на месеца.",
            (
                Offer(
                    "bandwidth",
                    "Трафик",
                    "0",
                    "month",
                    usage=UsageCharge("bandwidth", "graduated", {"tiers": list(BANDWIDTH_TIERS)}),
                ),
                Offer(
                    "backup-storage",
                    "Бекъп пространство",
                    "0",
                    "month",
                    usage=UsageCharge("backup-storage", "per_unit", {"unit_price": "0.04"}),
                ),
            ),
        ),
        product(
            "services",
            "Услуги",
            "service",
            "Еднократни услуги.",
            (
                Offer("setup-fee", "Такса инсталация", "10"),
                Offer("extra-ip", "Допълнителен IP адрес", "5"),
                Offer("backup-restore", "Възстановяване от бекъп", "25"),
                Offer("os-reinstall", "Преинсталация на ОС", "7.50"),
            ),
        ),
    )
    collection = Collection(
        capture_mode="authorize",
        special=(Payer.SOFT_FIXED, Payer.DO_NOT_HONOR),
        refunds=((180, Refund.PARTIAL), (290, Refund.FULL)),
        refund_reasons=("Компенсация за прекъсване на услугата", "Възстановяване: отказ от услугата"),
        partial_capture_day=100,
    )
    launch = Promotion("Отстъпка при старт", "20", 3, "START20", credit="25.00")
    return Scenario(
        spec,
        products,
        _bg_customers,
        (("month", 1),),
        4,
        DocumentType.PROFORMA,
        75,
        6,
        collection,
        launch,
        METERING,
    )
