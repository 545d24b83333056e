"""`fiscus demo`: three organisations with a year of simulated history, written through the services.

The history is replayed rather than inserted so that every row comes from the same use cases
production runs, at historical instants read from a `FixedClock`: the demo data then satisfies every
invariant `fiscus reconcile` checks, and exercises trials, proration, cancellations, proformas and
reverse charge the way real traffic would.

With a gateway (`fiscus demo` starts the built-in test gateway as its own process), customers also pay:
cards tokenised at the gateway as a browser would, charged by the collection worker on issue with
retries on schedule, declines, a lost answer settled by the janitor, authorisations captured (one
partly), and refunds with their credit notes; all over real HTTP with the simulation's moving clock.
"""

from __future__ import annotations

import base64
import heapq
import random
import secrets
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text
from sqlalchemy import ColumnElement, Connection, Table, func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.payments.gateway import NAME as GATEWAY
from fiscus.adapters.payments.gateway import GatewayProvider
from fiscus.config import Settings
from fiscus.domain.clock import Clock, FixedClock
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.money import currency, from_minor
from fiscus.domain.payments import IN_FLIGHT, AttemptStatus, ChargeSnapshot, amount_due
from fiscus.domain.periods import Interval, boundary
from fiscus.domain.tax import TaxCategory
from fiscus.gateway import cards
from fiscus.services.access import create_api_key, create_customer_token
from fiscus.services.billing_run import run_billing
from fiscus.services.catalog import ProductSpec, create_price, create_product, create_variant
from fiscus.services.customers import CustomerSpec, create_customer
from fiscus.services.documents import mark_paid
from fiscus.services.orders import create_order
from fiscus.services.organizations import OrganizationSpec, SeriesSpec, create_organization, standard_rates
from fiscus.services.payment_links import link_secret, payment_url
from fiscus.services.payments.captures import capture_payment
from fiscus.services.payments.collection import run_collection
from fiscus.services.payments.janitor import settle_unknown
from fiscus.services.payments.methods import add_card
from fiscus.services.payments.refunds import refund_payment
from fiscus.services.payments.settings import update_payment_settings
from fiscus.services.subscriptions import (
    ItemSpec,
    cancel_subscription,
    change_subscription,
    create_subscription,
)

HISTORY = timedelta(days=365)
STEP = timedelta(weeks=1)
DAY = timedelta(days=1)
MIN_PERIOD_DAYS = {"day": 1, "week": 7, "month": 28, "quarter": 89, "year": 365}
"""The shortest length of one unit, so an event placed this far into a period stays inside it."""

Items = tuple[tuple[int, int], ...]
"""(price id, quantity) pairs of a subscription or an order."""


@dataclass
class DemoOrganization:
    id: int
    slug: str
    name: str
    customer_ids: list[int]
    country: str = ""
    currency: str = ""
    timezone: str = ""
    subscriptions: dict[str, int] = field(default_factory=dict)
    documents: dict[tuple[str, str], int] = field(default_factory=dict)
    totals: dict[str, Decimal] = field(default_factory=dict)
    api_key: str | None = None
    customer_tokens: dict[int, str] = field(default_factory=dict)
    payments: dict[str, int] = field(default_factory=dict)
    """Card payment attempts through the gateway, by status."""
    refunds: int = 0


@dataclass(frozen=True, slots=True)
class PaymentLink:
    """An open document's hosted payment page, to try in a browser."""

    organization: str
    document_id: int
    number: str | None
    type: str
    amount_due: Decimal
    currency: str
    url: str
    partly_paid: bool


TEST_CARDS: Final = {"success": "4242 4242 4242 4242", "decline": "4000 0000 0000 0002"}
"""The test cards printed next to the payment links (`fiscus.gateway.cards.SUCCESS`, `DO_NOT_HONOR`)."""


@dataclass
class DemoResult:
    organizations: list[DemoOrganization]
    created: bool
    documents: int
    totals: dict[str, Decimal]
    gateway_url: str | None = None
    payment_links: list[PaymentLink] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        """The machine-readable summary a script needs to call every API with real credentials."""
        return {
            "organizations": [
                {
                    "id": o.id,
                    "slug": o.slug,
                    "name": o.name,
                    "api_key": o.api_key,
                    "customers": [{"id": c, "token": o.customer_tokens.get(c)} for c in o.customer_ids],
                    "payments": o.payments,
                    "refunds": o.refunds,
                }
                for o in self.organizations
            ],
            "documents": self.documents,
            "totals": {code: str(amount) for code, amount in self.totals.items()},
            "gateway": {"url": self.gateway_url, "test_cards": TEST_CARDS} if self.gateway_url else None,
            "payment_links": [
                {
                    "organization": link.organization,
                    "document_id": link.document_id,
                    "number": link.number,
                    "type": link.type,
                    "amount_due": str(link.amount_due),
                    "currency": link.currency,
                    "partly_paid": link.partly_paid,
                    "url": link.url,
                }
                for link in self.payment_links
            ],
        }


# ---------------------------------------------------------------------------------------------- catalog


@dataclass(frozen=True, slots=True)
class _Offer:
    """A variant with its single price."""

    code: str
    name: str
    amount: str
    interval: str | None = None
    interval_count: int = 1
    limits: tuple[str, ...] = ()
    addon: bool = False
    tax_category: TaxCategory = TaxCategory.STANDARD

    @property
    def cadence(self) -> tuple[str, int] | None:
        return (self.interval, self.interval_count) if self.interval else None


@dataclass(frozen=True, slots=True)
class _Product:
    spec: ProductSpec
    offers: tuple[_Offer, ...]


@dataclass(frozen=True, slots=True)
class _Price:
    id: int
    product: str
    offer: _Offer


@dataclass(slots=True)
class _Catalog:
    prices: list[_Price] = field(default_factory=list)

    def plans(self, cadence: tuple[str, int]) -> list[_Price]:
        return [
            p
            for p in self.prices
            if p.offer.cadence == cadence and not p.offer.addon and Decimal(p.offer.amount) > 0
        ]

    def addons(self, cadence: tuple[str, int]) -> list[_Price]:
        return [p for p in self.prices if p.offer.cadence == cadence and p.offer.addon]

    def one_offs(self) -> list[_Price]:
        return [p for p in self.prices if p.offer.cadence is None]


class _Payer(StrEnum):
    """How a customer pays, which decides the card (a test card) they give the gateway."""

    CARD = "card"
    BANK = "bank"
    """No card: pays by bank transfer (recorded as paid) or leaves the document open for the hosted page."""
    SOFT_FIXED = "soft_fixed"
    """Insufficient funds until, after a couple of failures, they add a good card: a retry then succeeds."""
    SOFT = "soft"
    """Insufficient funds throughout: every retry fails, then the organisation's final action applies."""
    DO_NOT_HONOR = "do_not_honor"
    EXPIRED = "expired"
    TIMEOUT = "timeout"
    """A card whose charge succeeds at the gateway but whose answer is lost; the janitor settles it. They
    then switch to a good card, so only their first charge waits for the timeout."""


CARD_NUMBERS: Final = {
    _Payer.CARD: cards.SUCCESS,
    _Payer.SOFT_FIXED: cards.INSUFFICIENT_FUNDS,
    _Payer.SOFT: cards.INSUFFICIENT_FUNDS,
    _Payer.DO_NOT_HONOR: cards.DO_NOT_HONOR,
    _Payer.EXPIRED: cards.EXPIRED_CARD,
    _Payer.TIMEOUT: cards.TIMEOUT,
}
FIXED_AFTER_FAILURES = 2
"""A SOFT_FIXED customer adds a good card after this many failed charges."""


class _Refund(StrEnum):
    PARTIAL = "partial"
    """A third of a recently paid invoice."""
    REST = "rest"
    """The rest of the invoice refunded partly before: any number of partial refunds up to the capture."""
    FULL = "full"


@dataclass(frozen=True, slots=True)
class _Collection:
    """An organisation's payment settings and the payment events of its year."""

    capture_mode: str = "sale"
    retry_days: tuple[int, ...] = (1, 3, 5, 7)
    final_action: str = "leave_open"
    special: tuple[_Payer, ...] = (_Payer.SOFT_FIXED,)
    """Given to the customers who arrive earliest (after the heavy one), so their story plays out."""
    bank_percent: int = 30
    """Of the other customers, the share without a card."""
    refunds: tuple[tuple[int, _Refund], ...] = ()
    """(day of the simulated year, kind)."""
    refund_reasons: tuple[str, str] = ("Goodwill credit for a service outage", "Refund of a cancelled order")
    """(partial, full or rest)."""
    partial_capture_day: int | None = None
    """From this day on, the next authorisation is captured only partly (authorize mode)."""


@dataclass(frozen=True, slots=True)
class _OrgDef:
    spec: OrganizationSpec
    products: tuple[_Product, ...]
    customers: Callable[[random.Random], list[CustomerSpec]]
    cadences: tuple[tuple[str, int], ...]
    """Weighted (repeats count) choice of billing cadence for new subscriptions."""
    heavy_subscriptions: int
    pay_type: DocumentType
    paid_percent: int
    """Of the documents of customers without a card, the share paid by bank transfer."""
    pay_within_days: int
    collection: _Collection = _Collection()


def _tiers(
    basic: tuple[str, str], pro: tuple[str, str], basic_limits: tuple[str, ...], pro_limits: tuple[str, ...]
) -> tuple[_Offer, ...]:
    """The marketplace's usual grid: basic and pro, each monthly and yearly."""
    return (
        _Offer("basic-monthly", "Basic, monthly", basic[0], "month", limits=basic_limits),
        _Offer("basic-yearly", "Basic, yearly", basic[1], "year", limits=basic_limits),
        _Offer("pro-monthly", "Pro, monthly", pro[0], "month", limits=pro_limits),
        _Offer("pro-yearly", "Pro, yearly", pro[1], "year", limits=pro_limits),
    )


def _kz_bin(first11: str) -> str | None:
    """Complete 11 digits into a Kazakhstan BIN (weighted mod 11, second weight set on a 10)."""
    digits = [int(c) for c in first11]
    for weights in (range(1, 12), (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)):
        check = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        if check != 10:
            return first11 + str(check)
    return None


_KZ_CDN = "https://cdn.integrations.example.kz"
_KZ_BASIC = ("1000 requests/day", "3 users")
_KZ_PRO = ("20000 requests/day", "25 users", "priority support")


def _kz_product(
    code: str,
    name: str,
    comment: str,
    slogan: str,
    detail: str,
    tags: list[str],
    modules: list[str],
    extra: object,
    offers: tuple[_Offer, ...],
) -> _Product:
    spec = ProductSpec(
        code=code,
        name=name,
        slug=code,
        comment=comment,
        slogan=slogan,
        type="integration",
        detail=detail,
        icon=f"{_KZ_CDN}/icons/{code}.svg",
        image=f"{_KZ_CDN}/images/{code}.png",
        image_alt=f"{name}: экран настроек",
        extra=extra,
        demo_enabled=True,
        demo_duration="14 days",
        tags=tags,
        modules=modules,
    )
    return _Product(spec, offers)


_KZ_WORDS = (
    ("Алтын", "altyn"),
    ("Береке", "bereke"),
    ("Жулдыз", "zhuldyz"),
    ("Сункар", "sunkar"),
    ("Тулпар", "tulpar"),
    ("Нурлы", "nurly"),
    ("Дала", "dala"),
    ("Арман", "arman"),
    ("Самал", "samal"),
    ("Коктем", "koktem"),
)
_KZ_KINDS = (
    ("Трейд", "trade"),
    ("Логистик", "logistic"),
    ("Маркет", "market"),
    ("Сервис", "service"),
    ("Групп", "group"),
    ("Строй", "stroy"),
)
_KZ_CITIES = (("Алматы", "050000"), ("Астана", "010000"), ("Шымкент", "160000"), ("Караганда", "100000"))
_KZ_STREETS = ("пр. Абая", "ул. Толе би", "пр. Достык", "ул. Сатпаева", "пр. Республики")


def _kz_customers(rng: random.Random) -> list[CustomerSpec]:
    out = []
    for word, kind in rng.sample([(w, k) for w in _KZ_WORDS for k in _KZ_KINDS], 17):
        city, postal = rng.choice(_KZ_CITIES)
        bin_ = None
        while bin_ is None:
            bin_ = _kz_bin(f"{rng.randint(0, 23):02d}{rng.randint(1, 12):02d}4{rng.randint(0, 99999):06d}")
        out.append(
            CustomerSpec(
                name=f"ТОО «{word[0]} {kind[0]}»",
                email=f"info@{word[1]}-{kind[1]}.kz",
                country="KZ",
                vat_id=bin_ if rng.randrange(100) < 60 else None,
                locale=rng.choice(("ru", "ru", "kk")),
                address_line1=f"{rng.choice(_KZ_STREETS)}, {rng.randint(1, 180)}",
                city=city,
                postal_code=postal,
            )
        )
    out.insert(
        rng.randrange(1, len(out)),
        CustomerSpec(
            name="ООО «Самарканд Софт»",
            email="billing@samarkand-soft.uz",
            country="UZ",
            timezone="Asia/Tashkent",
            address_line1="ул. Амира Темура, 15",
            city="Ташкент",
            postal_code="100000",
        ),
    )
    return out


def _kz_marketplace() -> _OrgDef:
    spec = OrganizationSpec(
        slug="kz-marketplace",
        legal_name="ТОО «Интеграции Маркет»",
        country="KZ",
        timezone="Asia/Almaty",
        default_currency="KZT",
        vat_id=_kz_bin("18044001234"),
        email="billing@integrations.example.kz",
        address_line1="пр. Аль-Фараби, 77/7",
        city="Алматы",
        postal_code="050040",
        locale="ru",
        tax_rates=standard_rates("KZ", Decimal("0.12")),
    )
    products = (
        _kz_product(
            "kaspi-orders",
            "Kaspi Заказы",
            "Заказы и остатки Kaspi.kz",
            "Заказы Kaspi в вашей CRM за минуту",
            "Двусторонняя синхронизация заказов, остатков и цен с магазином на Kaspi.kz.",
            ["crm"],
            ["sales"],
            {"api": "kaspi-shop-v2", "webhooks": True},
            _tiers(("4990", "49900"), ("12990", "129900"), _KZ_BASIC, _KZ_PRO),
        ),
        _kz_product(
            "onec-sync",
            "1С Синхронизация",
            "Обмен с 1С:Бухгалтерия",
            "Документы попадают в 1С без ручного ввода",
            "Выгрузка счетов, актов и оплат в 1С:Бухгалтерию для Казахстана.",
            ["accounting"],
            ["finance"],
            None,
            _tiers(("6990", "69900"), ("15990", "159900"), _KZ_BASIC, _KZ_PRO),
        ),
        _kz_product(
            "wa-notify",
            "WhatsApp Уведомления",
            "Статусы заказов в WhatsApp",
            "Клиент узнаёт о заказе раньше, чем спросит",
            "Шаблонные уведомления о статусе заказа и оплаты через WhatsApp Business API.",
            ["messaging", "crm"],
            ["sales", "support"],
            {"channel": "whatsapp", "templates": 12},
            _tiers(("1234.565", "12345.65"), ("3990", "39900"), _KZ_BASIC, _KZ_PRO),
        ),
        _kz_product(
            "esf-gateway",
            "ЭСФ Шлюз",
            "Электронные счета-фактуры в ИС ЭСФ",
            "ЭСФ уходят сами, в срок",
            "Автоматическая выписка и отправка электронных счетов-фактур в ИС ЭСФ.",
            ["tax"],
            ["finance"],
            None,
            _tiers(("7990", "79900"), ("19990", "199900"), _KZ_BASIC, _KZ_PRO),
        ),
        _kz_product(
            "bitrix-bridge",
            "Bitrix24 Мост",
            "Сделки Bitrix24 в маркетплейсе",
            "Бесплатный старт, без ограничений по времени",
            "Передача сделок и контактов между Bitrix24 и маркетплейсом.",
            ["free"],
            ["sales"],
            {"marketplace_id": "fiscus.bitrix"},
            _tiers(("0", "0"), ("2990", "29900"), _KZ_BASIC, _KZ_PRO),
        ),
        _Product(
            ProductSpec(
                code="onboarding",
                name="Внедрение",
                slug="onboarding",
                comment="Услуги внедрения",
                slogan="Настроим за вас",
                type="service",
                detail="Настройка интеграций и обучение сотрудников.",
                icon=f"{_KZ_CDN}/icons/onboarding.svg",
                image=f"{_KZ_CDN}/images/onboarding.png",
                image_alt="Внедрение: специалист на связи",
                tags=["services"],
                modules=["finance", "sales"],
            ),
            (
                _Offer("setup", "Настройка интеграции", "25000"),
                _Offer("custom-mapping", "Настройка полей", "9990.50"),
                _Offer("training", "Обучение сотрудников, час", "15000", tax_category=TaxCategory.EXEMPT),
            ),
        ),
    )
    collection = _Collection(
        retry_days=(1, 3, 7),
        special=(_Payer.SOFT_FIXED, _Payer.EXPIRED),
        refunds=((140, _Refund.PARTIAL), (250, _Refund.FULL)),
        refund_reasons=(
            "Компенсация за перебои в работе сервиса",
            "Возврат: отказ от подписки в течение 14 дней",
        ),
    )
    return _OrgDef(
        spec,
        products,
        _kz_customers,
        (("month", 1),) * 3 + (("year", 1),),
        6,
        DocumentType.INVOICE,
        85,
        10,
        collection,
    )


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


def _bg_vps() -> _OrgDef:
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

    def product(code: str, name: str, type_: str, detail: str, offers: tuple[_Offer, ...]) -> _Product:
        return _Product(
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
                _Offer("vps-1", "VPS 1", "15", "month", limits=("1 vCPU", "2 GB RAM", "40 GB NVMe")),
                _Offer("vps-1-plus", "VPS 1+", "15.50", "month", limits=("1 vCPU", "2 GB RAM", "60 GB NVMe")),
                _Offer("vps-2", "VPS 2", "30", "month", limits=("2 vCPU", "4 GB RAM", "80 GB NVMe")),
                _Offer("vps-4", "VPS 4", "59.90", "month", limits=("4 vCPU", "8 GB RAM", "160 GB NVMe")),
            ),
        ),
        product(
            "addons",
            "Добавки",
            "addon",
            "Месечни добавки към сървър.",
            (
                _Offer("daily-backup", "Дневен бекъп", "3.50", "month", addon=True),
                _Offer("ipv4-monthly", "Допълнителен IPv4", "2", "month", addon=True),
            ),
        ),
        product(
            "services",
            "Услуги",
            "service",
            "Еднократни услуги.",
            (
                _Offer("setup-fee", "Такса инсталация", "10"),
                _Offer("extra-ip", "Допълнителен IP адрес", "5"),
                _Offer("backup-restore", "Възстановяване от бекъп", "25"),
                _Offer("os-reinstall", "Преинсталация на ОС", "7.50"),
            ),
        ),
    )
    collection = _Collection(
        capture_mode="authorize",
        special=(_Payer.SOFT_FIXED, _Payer.DO_NOT_HONOR),
        refunds=((180, _Refund.PARTIAL), (290, _Refund.FULL)),
        refund_reasons=("Компенсация за прекъсване на услугата", "Възстановяване: отказ от услугата"),
        partial_capture_day=100,
    )
    return _OrgDef(
        spec, products, _bg_customers, (("month", 1),), 4, DocumentType.PROFORMA, 75, 6, collection
    )


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


def _us_saas() -> _OrgDef:
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
        _Offer(f"{tier}-{unit}ly", f"{tiers[tier][0]}, {unit}ly", amount, unit, limits=tiers[tier][1])
        for unit, row in grid.items()
        for tier, amount in row.items()
    )
    seats = tuple(
        _Offer(f"seat-{unit}ly", f"Extra seat, {unit}ly", amount, unit, addon=True)
        for unit, amount in (("month", "9"), ("quarter", "25"), ("year", "90"))
    )
    products = (
        _Product(
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
        _Product(ProductSpec(code="seats", name="Additional seats", type="addon"), seats),
        _Product(
            ProductSpec(code="services", name="Professional services", type="service"),
            (
                _Offer("onboarding", "Guided onboarding", "499"),
                _Offer("data-migration", "Data migration", "1500"),
                _Offer("custom-report", "Custom report", "250"),
                _Offer("training-hour", "Training, per hour", "150"),
            ),
        ),
    )
    cadences = (("month", 1),) * 3 + (("quarter", 1), ("year", 1))
    collection = _Collection(
        final_action="mark_uncollectible",
        special=(_Payer.TIMEOUT, _Payer.SOFT_FIXED, _Payer.SOFT, _Payer.DO_NOT_HONOR),
        refunds=((120, _Refund.PARTIAL), (160, _Refund.REST), (270, _Refund.FULL)),
        refund_reasons=(
            "Goodwill credit for a service outage",
            "Refund: cancelled within the 30-day money-back period",
        ),
    )
    return _OrgDef(spec, products, _us_customers, cadences, 6, DocumentType.INVOICE, 90, 25, collection)


def _definitions() -> list[_OrgDef]:
    return [_kz_marketplace(), _bg_vps(), _us_saas()]


SLUGS = ("kz-marketplace", "bg-vps", "us-saas")


# ------------------------------------------------------------------------------------------- simulation


@dataclass(frozen=True, slots=True)
class _SubPlan:
    start: datetime
    trial_days: int
    items: Items
    changes: tuple[tuple[datetime, Items], ...] = ()
    cancel: tuple[datetime, bool] | None = None
    """When, and whether at the end of the period (else immediately)."""


@dataclass(frozen=True, slots=True)
class _CustomerPlan:
    spec: CustomerSpec
    created: datetime
    subscriptions: tuple[_SubPlan, ...]
    orders: tuple[tuple[datetime, Items], ...]


class _Simulation:
    """Replays one organisation's year: a time-ordered queue of service calls between weekly billing
    runs, and with a gateway the worker's daily payment jobs (janitor, captures, collection)."""

    def __init__(
        self,
        db: Database,
        od: _OrgDef,
        rng: random.Random,
        start: datetime,
        now: datetime,
        payments: _Payments | None = None,
        pay_rng: random.Random | None = None,
    ):
        self.db, self.od, self.rng, self.start, self.now = db, od, rng, start, now
        self.payments = payments
        self.pay_rng = pay_rng or random.Random(0)
        """Payment choices draw from their own stream, so the billing history is the same either way."""
        self.clock = FixedClock(start)
        self.tz = ZoneInfo(od.spec.timezone)
        self.catalog = _Catalog()
        self.org_id = 0
        self.last_document = 0
        self.payers: dict[int, _Payer] = {}
        self.to_fix: set[int] = set()
        """Customers who will replace their card (SOFT_FIXED, TIMEOUT)."""
        self.partly_refunded: list[int] = []
        self.partial_capture_done = False
        self._queue: list[tuple[datetime, int, Callable[[], object]]] = []
        self._seq = 0

    def at(self, when: datetime, action: Callable[[], object]) -> None:
        heapq.heappush(self._queue, (when, self._seq, action))
        self._seq += 1

    def run_until(self, until: datetime) -> None:
        while self._queue and self._queue[0][0] <= until:
            when, _seq, action = heapq.heappop(self._queue)
            self.clock.set(when)
            action()

    def run(self, clock: Clock) -> int:
        self.org_id = create_organization(self.db, self.clock, self.od.spec, actor="demo")
        collection = self.od.collection
        update_payment_settings(
            self.db,
            self.clock,
            self.org_id,
            capture_mode=collection.capture_mode,
            retry_days=list(collection.retry_days),
            retry_final_action=collection.final_action,
            actor="demo",
        )
        self._create_catalog()
        customers = self.od.customers(self.rng)
        plans = [
            self._plan_heavy(spec) if index == 0 else self._plan_customer(spec)
            for index, spec in enumerate(customers)
        ]
        for plan, payer in zip(plans, self._payers(plans), strict=True):
            self.at(plan.created, partial(self._start_customer, plan, payer))
        if self.payments is not None:
            for day, kind in collection.refunds:
                when = self.start + timedelta(days=day, minutes=self.pay_rng.randint(1, 24 * 60 - 1))
                self.at(when, partial(self._refund, kind))
        tick = self.start
        days = 0
        while tick <= self.now:
            self.run_until(tick)
            self.clock.set(tick)
            if days % STEP.days == 0:
                run_billing(self.db, self.clock, at=tick, organization_id=self.org_id, actor="demo")
                self._schedule_payments()
            self._collect()
            tick += DAY
            days += 1
        self.run_until(self.now)
        run_billing(self.db, clock, at=self.now, organization_id=self.org_id, actor="demo")
        self.clock.set(self.now)
        self._collect()
        return self.org_id

    def _create_catalog(self) -> None:
        code = self.od.spec.default_currency
        for product in self.od.products:
            pid = create_product(self.db, self.clock, self.org_id, product.spec, actor="demo")
            for offer in product.offers:
                vid = create_variant(
                    self.db,
                    self.clock,
                    self.org_id,
                    pid,
                    code=offer.code,
                    name=offer.name,
                    limits=list(offer.limits),
                    actor="demo",
                )
                price_id = create_price(
                    self.db,
                    self.clock,
                    self.org_id,
                    vid,
                    currency_code=code,
                    unit_amount=offer.amount,
                    interval=offer.interval,
                    interval_count=offer.interval_count,
                    tax_category=offer.tax_category.value,
                    actor="demo",
                )
                self.catalog.prices.append(_Price(price_id, product.spec.code, offer))

    # -- planning: every random choice is made here, before any service call, so a seed fixes the data

    def _minutes(self) -> timedelta:
        return timedelta(minutes=self.rng.randint(1, 24 * 60 - 1))

    def _items(self, cadence: tuple[str, int], multi: bool) -> Items:
        plan = self.rng.choice(self.catalog.plans(cadence))
        if not multi:
            return ((plan.id, self.rng.choice((1, 1, 1, 2))),)
        extras = self.catalog.addons(cadence) or [
            p for p in self.catalog.plans(cadence) if p.product != plan.product
        ]
        return ((plan.id, 1), (self.rng.choice(extras).id, self.rng.randint(2, 5)))

    def _switch(self, items: Items) -> Items:
        """The same items with the first plan replaced by another tier, up or down."""
        by_id = {p.id: p for p in self.catalog.prices}
        current = by_id[items[0][0]]
        cadence = current.offer.cadence
        assert cadence is not None
        others = [p for p in self.catalog.plans(cadence) if p.id != current.id]
        same = [p for p in others if p.product == current.product]
        target = self.rng.choice(same or others)
        return ((target.id, items[0][1]), *items[1:])

    def _moments(self, first: datetime, cadence: tuple[str, int], count: int) -> list[datetime]:
        """Up to `count` instants, each well inside a later billed period (so changes prorate)."""
        interval = Interval.parse(*cadence)
        span = MIN_PERIOD_DAYS[cadence[0]] * cadence[1] - 2
        out: list[datetime] = []
        k = 0
        for _ in range(count):
            k += self.rng.randint(1 if out else 0, 3)
            when = boundary(first, interval, k, self.tz) + timedelta(days=self.rng.randint(8, span))
            when += self._minutes()
            if when >= self.now - DAY:
                break
            out.append(when)
        return out

    def _plan_subscription(self, start: datetime) -> _SubPlan:
        rng = self.rng
        cadence = rng.choice(self.od.cadences)
        items = self._items(cadence, multi=rng.randrange(100) < 30)
        trial = rng.choice((7, 14)) if rng.randrange(100) < 25 else 0
        if trial and rng.randrange(100) < 25:
            return _SubPlan(
                start, trial, items, cancel=(start + timedelta(days=rng.randint(1, trial - 1)), False)
            )
        first = start + timedelta(days=trial)
        wanted = rng.choice((0, 0, 1, 1, 2, 3))
        moments = self._moments(first, cadence, wanted)
        cancel = None
        if moments and rng.randrange(100) < 40:
            cancel = (moments.pop(), rng.randrange(100) < 50)
        changes = []
        current = items
        for when in moments:
            current = self._switch(current)
            changes.append((when, current))
        return _SubPlan(start, trial, items, tuple(changes), cancel)

    def _order_items(self) -> Items:
        picked = self.rng.sample(self.catalog.one_offs(), self.rng.randint(1, 3))
        return tuple((p.id, self.rng.choice((1, 1, 2, 3))) for p in picked)

    def _plan_customer(self, spec: CustomerSpec) -> _CustomerPlan:
        rng = self.rng
        created = self.start + timedelta(days=rng.randint(0, 320)) + self._minutes()
        subs = tuple(
            self._plan_subscription(created + timedelta(days=rng.randint(0, 20)) + self._minutes())
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))
        )
        days = (self.now - created).days - 1
        orders = tuple(
            sorted(
                (created + timedelta(days=rng.randint(0, days)) + self._minutes(), self._order_items())
                for _ in range(rng.choice((0, 0, 1, 1, 2, 3)))
            )
        )
        return _CustomerPlan(spec, created, subs, orders)

    def _plan_heavy(self, spec: CustomerSpec) -> _CustomerPlan:
        """A customer with enough documents to page through: many monthly plans and regular orders."""
        created = self.start + timedelta(minutes=10)
        subs = []
        for i in range(self.od.heavy_subscriptions):
            start = created + timedelta(hours=1 + 5 * i)
            items = self._items(("month", 1), multi=i == 1)
            changes: tuple[tuple[datetime, Items], ...] = ()
            if i in (2, 3):
                up = self._switch(items)
                moments = self._moments(start, ("month", 1), 2)
                changes = tuple(zip(moments, (up, items), strict=False))
            subs.append(_SubPlan(start, 0, items, changes))
        orders = tuple(
            (created + timedelta(weeks=4 * k + 2) + self._minutes(), self._order_items()) for k in range(12)
        )
        return _CustomerPlan(spec, created, tuple(subs), orders)

    # -- replay: the service calls, each at its own historical instant

    def _payers(self, plans: list[_CustomerPlan]) -> list[_Payer]:
        """The heavy customer pays by bank transfer (keeping the demo quick: card payments cross HTTP);
        the special payers go to the earliest other customers (so their retries, fixes and settlements
        happen within the year); of the rest a share has no card."""
        if self.payments is None:
            return [_Payer.BANK] * len(plans)
        payers = [_Payer.BANK] + [_Payer.CARD] * (len(plans) - 1)
        rest = sorted(range(1, len(plans)), key=lambda i: plans[i].created)
        special = self.od.collection.special
        for index, payer in zip(rest, special, strict=False):
            payers[index] = payer
        others = rest[len(special) :]
        bank = max(2, len(others) * self.od.collection.bank_percent // 100)
        for index in self.pay_rng.sample(others, min(bank, len(others))):
            payers[index] = _Payer.BANK
        return payers

    def _start_customer(self, plan: _CustomerPlan, payer: _Payer) -> None:
        cid = create_customer(self.db, self.clock, self.org_id, plan.spec, actor="demo")
        self.payers[cid] = payer
        if payer is not _Payer.BANK:
            self._give_card(cid, CARD_NUMBERS[payer], plan.spec.name)
            if payer in (_Payer.SOFT_FIXED, _Payer.TIMEOUT):
                self.to_fix.add(cid)
        for sub in plan.subscriptions:
            self.at(sub.start, partial(self._start_subscription, cid, sub))
        for when, items in plan.orders:
            self.at(when, partial(self._order, cid, items))

    def _start_subscription(self, customer_id: int, plan: _SubPlan) -> None:
        sid = create_subscription(
            self.db,
            self.clock,
            self.org_id,
            customer_id,
            _specs(plan.items),
            start_at=plan.start,
            trial_days=plan.trial_days,
            actor="demo",
        )
        for when, items in plan.changes:
            self.at(
                when,
                partial(
                    change_subscription, self.db, self.clock, self.org_id, sid, _specs(items), actor="demo"
                ),
            )
        if plan.cancel is not None:
            when, at_end = plan.cancel
            self.at(
                when,
                partial(
                    cancel_subscription,
                    self.db,
                    self.clock,
                    self.org_id,
                    sid,
                    at_period_end=at_end,
                    actor="demo",
                ),
            )

    def _order(self, customer_id: int, items: Items) -> None:
        create_order(self.db, self.clock, self.org_id, customer_id, _specs(items), actor="demo")

    def _schedule_payments(self) -> None:
        """Customers without a card pay most new documents by bank transfer a few days after issue; the
        rest stay open (for the hosted payment page). A downgrade can leave a document with a credit
        total, which nobody pays. Card payers are charged by the collection jobs instead."""
        d = t.documents.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(d.id, d.type, d.status, d.issued_at, d.total_minor, d.customer_id)
                .where(d.organization_id == self.org_id, d.id > self.last_document)
                .order_by(d.id)
            ).all()
        for row in rows:
            self.last_document = max(self.last_document, row.id)
            if row.type != self.od.pay_type.value or row.status != DocumentStatus.OPEN.value:
                continue
            if row.total_minor <= 0 or self.payers.get(row.customer_id, _Payer.BANK) is not _Payer.BANK:
                continue
            if self.rng.randrange(100) < self.od.paid_percent:
                when = row.issued_at + timedelta(days=self.rng.randint(1, self.od.pay_within_days))
                self.at(
                    when + self._minutes(),
                    partial(mark_paid, self.db, self.clock, self.org_id, row.id, actor="demo"),
                )

    # -- payments: what the worker's jobs and the customers do, at the simulation's instants

    def _give_card(self, customer_id: int, number: str, holder: str) -> None:
        """The customer types a card into the gateway's form (tokenised there, never seen by Fiscus);
        the token is attached as their default payment method."""
        assert self.payments is not None
        exp_month = self.pay_rng.randint(1, 12)
        exp_year = self.start.year + self.pay_rng.randint(3, 5)
        token = self.payments.tokenise(number, exp_month, exp_year, holder)
        if number == cards.TIMEOUT:
            self.payments.provider.impatient_tokens.add(token)
        add_card(
            self.db,
            self.clock,
            self.payments.provider,
            self.org_id,
            customer_id,
            token=token,
            holder=holder,
            make_default=True,
            actor="demo",
        )

    def _collect(self) -> None:
        """One day of the worker's payment jobs: settle lost answers, capture yesterday's
        authorisations, charge what is due (first attempts and retries); then customers whose card
        failed may give a new one."""
        if self.payments is None:
            return
        provider = self.payments.provider
        settle_unknown(self.db, self.clock, provider)
        self._capture_authorized()
        run_collection(self.db, self.clock, provider)
        if self.to_fix:
            self._fix_cards()

    def _capture_authorized(self) -> None:
        """Authorize mode: capture once the service is provisioned, a day later; one capture is partial
        (a server delivered smaller than ordered), which leaves the invoice open with the rest due."""
        assert self.payments is not None
        pa = t.payment_attempts.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(pa.id, pa.authorized_minor)
                .where(
                    pa.organization_id == self.org_id,
                    pa.status == AttemptStatus.AUTHORIZED.value,
                    pa.created_at < self.clock.now(),
                )
                .order_by(pa.id)
            ).all()
        partial_from = self.od.collection.partial_capture_day
        for attempt_id, authorized in rows:
            amount = None
            if (
                partial_from is not None
                and not self.partial_capture_done
                and self.clock.now() >= self.start + timedelta(days=partial_from)
                and authorized >= 500
            ):
                amount = authorized - authorized // 5
                self.partial_capture_done = True
            capture_payment(
                self.db,
                self.clock,
                self.payments.provider,
                self.org_id,
                attempt_id,
                amount_minor=amount,
                actor="demo",
            )

    def _fix_cards(self) -> None:
        """A SOFT_FIXED customer gives a good card after a couple of failed charges (the next retry then
        succeeds); the TIMEOUT customer after their first charge."""
        pa = t.payment_attempts.c
        for customer_id in sorted(self.to_fix):
            payer = self.payers[customer_id]
            query = select(func.count()).where(pa.customer_id == customer_id)
            if payer is _Payer.SOFT_FIXED:
                query = query.where(pa.status == AttemptStatus.FAILED.value)
            needed = FIXED_AFTER_FAILURES if payer is _Payer.SOFT_FIXED else 1
            with self.db.read() as conn:
                if int(conn.execute(query).scalar_one()) < needed:
                    continue
            with self.db.read() as conn:
                holder = conn.execute(
                    select(t.customers.c.name).where(t.customers.c.id == customer_id)
                ).scalar_one()
            self._give_card(customer_id, cards.SUCCESS, holder)
            self.to_fix.discard(customer_id)

    def _refund(self, kind: _Refund) -> None:
        """Refund an invoice paid by card in the last two months: a third of it, the rest of one refunded
        partly before, or all of it. Each refund goes with a credit note."""
        assert self.payments is not None
        partial_reason, full_reason = self.od.collection.refund_reasons
        if kind is _Refund.REST:
            if not self.partly_refunded:
                return
            doc_id = self.partly_refunded.pop()
            amount = None
        else:
            candidates = self._refundable(self.clock.now() - timedelta(days=60))
            if not candidates:
                return
            doc_id, paid = self.pay_rng.choice(candidates)
            amount = max(1, paid // 3) if kind is _Refund.PARTIAL else None
        refund_payment(
            self.db,
            self.clock,
            self.payments.provider,
            self.org_id,
            doc_id,
            amount_minor=amount,
            reason=partial_reason if kind is _Refund.PARTIAL else full_reason,
            actor="demo",
        )
        if kind is _Refund.PARTIAL:
            self.partly_refunded.append(doc_id)

    def _refundable(self, since: datetime) -> list[tuple[int, int]]:
        """Paid invoices (id, amount paid) whose money came through the gateway, not refunded or
        credited yet."""
        d, pc, pa = t.documents.c, t.payment_captures.c, t.payment_attempts.c
        paid_by_card = (
            select(pc.document_id)
            .join(t.payment_attempts, pa.id == pc.attempt_id)
            .where(pc.status == "succeeded", pa.provider == GATEWAY, pa.organization_id == self.org_id)
        )
        with self.db.read() as conn:
            rows = conn.execute(
                select(d.id, d.amount_paid_minor)
                .where(
                    d.organization_id == self.org_id,
                    d.type == DocumentType.INVOICE.value,
                    d.status == DocumentStatus.PAID.value,
                    d.paid_at >= since,
                    d.amount_refunded_minor == 0,
                    d.amount_credited_minor == 0,
                    d.amount_paid_minor >= 300,
                    d.id.in_(paid_by_card),
                )
                .order_by(d.id)
            ).all()
        return [(int(row.id), int(row.amount_paid_minor)) for row in rows]


def _specs(items: Items) -> list[ItemSpec]:
    return [ItemSpec(price_id, quantity) for price_id, quantity in items]


# --------------------------------------------------------------------------------------------- gateway

GATEWAY_HOLD_SECONDS: Final = 2.0
"""How long the demo's gateway holds the answer to the timeout test card (`--timeout-seconds`)."""
IMPATIENT_TIMEOUT_SECONDS: Final = 1.0
"""The client timeout for that card's charge: shorter than the hold, so the answer is lost."""


class _DemoProvider(GatewayProvider):
    """The gateway adapter the demo charges through. The timeout test card's charges go through a
    client that gives up before the gateway answers, so the attempt's outcome is unknown until the
    janitor asks; every other call waits as long as production would."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self._impatient = GatewayProvider(base_url, timeout_seconds=IMPATIENT_TIMEOUT_SECONDS)
        self.impatient_tokens: set[str] = set()

    def charge(
        self, *, token: str, amount_minor: int, currency: str, capture: bool, reference: str, key: str
    ) -> ChargeSnapshot:
        if token in self.impatient_tokens:
            return self._impatient.charge(
                token=token,
                amount_minor=amount_minor,
                currency=currency,
                capture=capture,
                reference=reference,
                key=key,
            )
        return super().charge(
            token=token,
            amount_minor=amount_minor,
            currency=currency,
            capture=capture,
            reference=reference,
            key=key,
        )

    def close(self) -> None:
        self._impatient.close()
        super().close()


class _Payments:
    """The demo's side of the gateway: customers' cards tokenised as their browser would (straight at
    the gateway, so Fiscus only ever sees tokens), and the provider Fiscus charges through."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.provider = _DemoProvider(url)
        self._client = httpx.Client(base_url=url, timeout=10.0)

    def tokenise(self, number: str, exp_month: int, exp_year: int, holder: str) -> str:
        body = {
            "card_number": number,
            "exp_month": exp_month,
            "exp_year": exp_year,
            "cvc": "123",
            "holder": holder,
        }
        response = self._client.post(
            "/v1/payment_methods",
            json=body,
            headers={"Idempotency-Key": f"demo_pm_{secrets.token_urlsafe(12)}"},
        )
        response.raise_for_status()
        return str(response.json()["token"])

    def close(self) -> None:
        self._client.close()
        self.provider.close()


def free_port(preferred: int | None = None) -> int:
    """`preferred` if nothing listens there on the loopback interface, else a free one."""
    for candidate in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port")


def new_webhook_secret() -> str:
    """A standard-webhooks secret for the gateway to sign its events with and Fiscus to check them."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def reset_gateway_ledger(path: Path) -> bool:
    """Remove the gateway's ledger (SQLite file with its WAL), so a fresh Fiscus database starts with a
    fresh gateway and the two ledgers match one to one. Returns whether there was one."""
    existed = path.exists()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return existed


class GatewayProcess:
    """`fiscus gateway` as its own process: its own ledger file, reached only over real HTTP. Started on
    construction; `wait_ready` before use, `stop` (or leave the `with` block) to end it. Its output goes
    to `log_path` (default: next to the ledger, `.log`)."""

    def __init__(
        self,
        ledger: Path,
        port: int,
        *,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        log_path: Path | None = None,
    ) -> None:
        ledger.parent.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "fiscus.cli", "gateway", "--port", str(port), "--db", str(ledger)]
        args += ["--timeout-seconds", str(GATEWAY_HOLD_SECONDS)]
        if webhook_url and webhook_secret:
            args += ["--webhook-url", webhook_url, "--webhook-secret", webhook_secret]
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path or ledger.with_suffix(".log")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Block until it answers; returns its URL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the gateway exited ({self.process.returncode}); see {self.log_path}")
            try:
                r = httpx.get(f"{self.url}/v1/health", timeout=1.0)
                if r.status_code == 200 and r.json().get("pid") == self.process.pid:
                    return self.url
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the gateway did not start within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@contextmanager
def gateway_process(
    ledger: Path,
    port: int,
    *,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    log_path: Path | None = None,
) -> Iterator[str]:
    """A ready gateway process for the duration of the block; yields its URL."""
    with GatewayProcess(
        ledger, port, webhook_url=webhook_url, webhook_secret=webhook_secret, log_path=log_path
    ) as gateway:
        yield gateway.wait_ready()


# ---------------------------------------------------------------------------------------------- entry


def is_seeded(db: Database) -> bool:
    """Whether any demo organisation exists (the demo seeds only those that do not)."""
    with db.read() as conn:
        return (
            conn.execute(select(t.organizations.c.id).where(t.organizations.c.slug.in_(SLUGS))).first()
            is not None
        )


def seed_demo(
    db: Database,
    clock: Clock,
    *,
    quiet: bool = False,
    seed: int = 20261123,
    gateway_url: str | None = None,
) -> DemoResult:
    """Seed the organisations that do not exist yet with a year of history, then bill up to now and,
    with a gateway, collect what is due.

    Each organisation draws from its own `Random(seed, slug)` (payments from a stream of their own), so
    it comes out the same whether it is seeded alone or with the others. Without a gateway nobody pays
    by card: customers pay by bank transfer, as recorded payments.
    """
    err = Console(stderr=True, quiet=quiet)
    now = clock.now()
    with db.read() as conn:
        existing = set(conn.execute(select(t.organizations.c.slug)).scalars())
    created = False
    payments = _Payments(gateway_url) if gateway_url else None
    try:
        for od in _definitions():
            slug = od.spec.slug
            if slug in existing:
                err.print(f"[dim]{slug}: already seeded[/dim]")
                continue
            began = time.perf_counter_ns()
            sim = _Simulation(
                db,
                od,
                random.Random(f"{seed}:{slug}"),
                now - HISTORY,
                now,
                payments,
                random.Random(f"{seed}:{slug}:payments"),
            )
            org_id = sim.run(clock)
            created = True
            with db.read() as conn:
                documents = _count(conn, t.documents, org_id)
                customers = _count(conn, t.customers, org_id)
                attempts = _count(conn, t.payment_attempts, org_id, t.payment_attempts.c.provider == GATEWAY)
            elapsed_ms = (time.perf_counter_ns() - began) // 1_000_000
            err.print(
                f"[green]{slug}[/green]: {customers} customers, {documents} documents, "
                f"{attempts} card payment attempts, {elapsed_ms} ms"
            )
        run_billing(db, clock)
        if payments is not None:
            settle_unknown(db, clock, payments.provider)
            run_collection(db, clock, payments.provider)
    finally:
        if payments is not None:
            payments.close()
    result = _summary(db, created)
    result.gateway_url = gateway_url
    _issue_credentials(db, clock, result)
    return result


def _issue_credentials(db: Database, clock: Clock, result: DemoResult) -> None:
    """A fresh API key per organisation and a token per customer on every run: secrets are stored
    only as hashes, so earlier ones cannot be shown again."""
    for org in result.organizations:
        org.api_key = create_api_key(db, clock, org.id, name="demo", actor="demo").secret
        org.customer_tokens = {
            c: create_customer_token(db, clock, org.id, c, actor="demo").secret for c in org.customer_ids
        }


def _count(conn: Connection, table: Table, org_id: int, *where: ColumnElement[bool]) -> int:
    query = select(func.count()).select_from(table).where(table.c.organization_id == org_id, *where)
    return int(conn.execute(query).scalar_one())


def _totals(conn: Connection, org_id: int | None) -> dict[str, Decimal]:
    """What was billed: live documents only (a converted proforma lives on as its invoice)."""
    d = t.documents.c
    query = (
        select(d.currency, func.sum(d.total_minor))
        .where(d.status.not_in(["void", "converted", "draft"]))
        .group_by(d.currency)
        .order_by(d.currency)
    )
    if org_id is not None:
        query = query.where(d.organization_id == org_id)
    return {code: from_minor(int(total), currency(code)) for code, total in conn.execute(query)}


def _summary(db: Database, created: bool) -> DemoResult:
    o, c, s, d = t.organizations.c, t.customers.c, t.subscriptions.c, t.documents.c
    out: list[DemoOrganization] = []
    with db.read() as conn:
        rows = {r.slug: r for r in conn.execute(select(t.organizations).where(o.slug.in_(SLUGS)))}
        for slug in SLUGS:
            row = rows.get(slug)
            if row is None:
                continue
            customer_ids = conn.execute(
                select(c.id).where(c.organization_id == row.id).order_by(c.id)
            ).scalars()
            subscriptions = conn.execute(
                select(s.status, func.count()).where(s.organization_id == row.id).group_by(s.status)
            ).all()
            documents = conn.execute(
                select(d.type, d.status, func.count())
                .where(d.organization_id == row.id)
                .group_by(d.type, d.status)
            ).all()
            pa = t.payment_attempts.c
            attempts = conn.execute(
                select(pa.status, func.count())
                .where(pa.organization_id == row.id, pa.provider == GATEWAY)
                .group_by(pa.status)
            ).all()
            refunds = _count(conn, t.payment_refunds, row.id, t.payment_refunds.c.status == "succeeded")
            out.append(
                DemoOrganization(
                    id=row.id,
                    slug=slug,
                    name=row.legal_name,
                    customer_ids=list(customer_ids),
                    country=row.country,
                    currency=row.default_currency,
                    timezone=row.timezone,
                    subscriptions={status: int(n) for status, n in sorted(subscriptions)},
                    documents={(kind, status): int(n) for kind, status, n in sorted(documents)},
                    totals=_totals(conn, row.id),
                    payments={status: int(n) for status, n in sorted(attempts)},
                    refunds=refunds,
                )
            )
        total_documents = int(conn.execute(select(func.count()).select_from(t.documents)).scalar_one())
        totals = _totals(conn, None)
    return DemoResult(out, created, total_documents, totals)


def server_url(settings: Settings) -> str:
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def find_payment_links(db: Database, clock: Clock, settings: Settings, limit: int = 2) -> list[PaymentLink]:
    """Hosted payment page links of open demo documents worth trying in a browser: the newest partly
    paid one (the remainder is due), then the newest of customers without a card, in other
    organisations. Only where a card payment is taken at once (capture mode `sale`: elsewhere it would
    wait for a capture), and never with a payment in progress."""
    d, o, c, pa = t.documents.c, t.organizations.c, t.customers.c, t.payment_attempts.c
    busy = select(pa.document_id).where(pa.status.in_([s.value for s in IN_FLIGHT]))
    with db.read() as conn:
        rows = conn.execute(
            select(
                d.id,
                d.organization_id,
                o.slug,
                d.number,
                d.type,
                d.currency,
                d.total_minor,
                d.amount_paid_minor,
                d.amount_refunded_minor,
                d.amount_credited_minor,
                c.default_payment_method_id,
            )
            .join(t.organizations, o.id == d.organization_id)
            .join(t.customers, c.id == d.customer_id)
            .where(
                o.slug.in_(SLUGS),
                o.capture_mode == "sale",
                d.status == DocumentStatus.OPEN.value,
                d.type.in_([DocumentType.INVOICE.value, DocumentType.PROFORMA.value]),
                d.total_minor > 0,
                d.id.not_in(busy),
            )
            .order_by(d.id.desc())
        ).all()
    due = {
        row.id: amount_due(
            row.total_minor, row.amount_paid_minor, row.amount_refunded_minor, row.amount_credited_minor
        )
        for row in rows
    }
    candidates = [row for row in rows if due[row.id] > 0]
    partly = [row for row in candidates if row.amount_paid_minor > 0][:1]
    picked = list(partly)
    for row in candidates:
        if len(picked) >= limit:
            break
        if row.default_payment_method_id is None and row.slug not in {p.slug for p in picked}:
            picked.append(row)
    if not picked:
        return []
    secret = link_secret(db, clock, settings.secret_key)
    base = server_url(settings)
    return [
        PaymentLink(
            organization=row.slug,
            document_id=row.id,
            number=row.number,
            type=row.type,
            amount_due=from_minor(due[row.id], currency(row.currency)),
            currency=row.currency,
            url=payment_url(base, secret, row.organization_id, row.id),
            partly_paid=row.amount_paid_minor > 0,
        )
        for row in picked[:limit]
    ]


def describe(result: DemoResult, console: Console, settings: Settings, *, serving: bool = True) -> None:
    """What was seeded, and where to look at it next."""
    for org in result.organizations:
        table = RichTable(title=Text(f"{org.name} ({org.slug})"), show_header=False, title_justify="left")
        table.add_column("what", style="bold")
        table.add_column("value")
        table.add_row("id", str(org.id))
        table.add_row("country", org.country)
        table.add_row("currency", org.currency)
        table.add_row("time zone", org.timezone)
        table.add_row("customers", str(len(org.customer_ids)))
        table.add_row("subscriptions", _joined(org.subscriptions.items()))
        by_type: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for (kind, status), n in org.documents.items():
            by_type[kind].append((status, n))
        for kind, statuses in by_type.items():
            table.add_row(f"{kind.replace('_', ' ')}s", _joined(statuses))
        for code, amount in org.totals.items():
            table.add_row(f"total {code}", f"{amount:,}")
        if org.payments:
            table.add_row("card payments", _joined(org.payments.items()))
            table.add_row("refunds", str(org.refunds))
        console.print(table)
    state = "seeded" if result.created else "already present"
    console.print(f"{result.documents} documents in all ({state}).")
    base = server_url(settings)
    console.print(f"Server: [bold]{base}[/bold]")
    for path in ("/healthz", "/readyz", "/docs"):
        console.print(f"  {base}{path}")
    for org in result.organizations:
        console.print(f"{org.slug}: API key [bold]{org.api_key}[/bold]")
        if org.customer_ids:
            first = org.customer_ids[0]
            console.print(f"  customer {first} token {org.customer_tokens.get(first)}")
    if result.organizations:
        sample = result.organizations[0]
        console.print(
            f"Try: curl -H 'Authorization: Bearer {sample.api_key}' '{base}/api/v1/documents?limit=3'"
        )
    if result.gateway_url:
        state = "its ledger: GET /v1/ledger" if serving else "stopped: it runs while `fiscus demo` serves"
        console.print(f"Test payment gateway: [bold]{result.gateway_url}[/bold] ({state})")
    for link in result.payment_links:
        what = f"{link.type} {link.number or link.document_id} of {link.organization}"
        left = "remainder due" if link.partly_paid else "due"
        console.print(f"Pay {what} ({link.amount_due:,} {link.currency} {left}) in a browser:")
        console.print(f"  [bold]{link.url}[/bold]")
    if result.payment_links:
        console.print(
            f"  test cards: {TEST_CARDS['success']} succeeds, {TEST_CARDS['decline']} is declined "
            "(any future expiry, any CVC)"
        )
    console.print("Bill what is due now: [bold]fiscus bill[/bold]")
    console.print("Check the invariants:  [bold]fiscus reconcile[/bold]")


def _joined(counts: Iterable[tuple[str, int]]) -> str:
    return " · ".join(f"{name} {n}" for name, n in counts) or "none"
