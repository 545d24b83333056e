"""The Kazakhstan integrations marketplace: KZT, 12 % VAT, invoices, Russian and Kazakh customers (and one
from Uzbekistan), products with rich marketplace metadata, a free tier and an exempt service."""

from __future__ import annotations

import random
from decimal import Decimal

from fiscus.demo.metering import Metering, Report, UsageCharge
from fiscus.demo.scenario import Collection, Offer, Payer, Product, Refund, Scenario
from fiscus.domain.documents import DocumentType
from fiscus.domain.tax import TaxCategory
from fiscus.services.catalog import ProductSpec
from fiscus.services.customers import CustomerSpec
from fiscus.services.organizations import OrganizationSpec, standard_rates
from fiscus.services.usage_metrics import MetricSpec

API_PRICE = "0.125"
"""KZT per API request over the plan's included requests: more digits than the tiyn."""
METERING = Metering(
    metrics=(MetricSpec("api-requests", "API-запросы", "sum", "requests"),),
    usage_offers={"basic-monthly": ("api-requests-basic",), "pro-monthly": ("api-requests-pro",)},
    reports=(Report("api-requests", "requests", 2, 1_200, 3_000),),
    share_percent=60,
)
"""Most customers' first monthly plan bills the API requests its integration makes (reported every other day)
beyond what the plan includes: 30,000 a month on Basic (1000 a day), 600,000 on Pro."""


def _tiers(
    basic: tuple[str, str], pro: tuple[str, str], basic_limits: tuple[str, ...], pro_limits: tuple[str, ...]
) -> tuple[Offer, ...]:
    """The marketplace's usual grid: basic and pro, each monthly and yearly."""
    return (
        Offer("basic-monthly", "Basic, monthly", basic[0], "month", limits=basic_limits),
        Offer("basic-yearly", "Basic, yearly", basic[1], "year", limits=basic_limits),
        Offer("pro-monthly", "Pro, monthly", pro[0], "month", limits=pro_limits),
        Offer("pro-yearly", "Pro, yearly", pro[1], "year", limits=pro_limits),
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
    offers: tuple[Offer, ...],
) -> Product:
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
    return Product(spec, offers)


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


def scenario() -> Scenario:
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
        Product(
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
                Offer("setup", "Настройка интеграции", "25000"),
                Offer("custom-mapping", "Настройка полей", "9990.50"),
                Offer("training", "Обучение сотрудников, час", "15000", tax_category=TaxCategory.EXEMPT),
            ),
        ),
        Product(
            ProductSpec(
                code="api-requests",
                name="API-запросы",
                slug="api-requests",
                type="usage",
                detail="Запросы сверх включённых в тариф, по итогам месяца.",
                tags=["usage"],
                modules=["sales"],
            ),
            tuple(
                Offer(
                    f"api-requests-{tier}",
                    f"API-запросы сверх {included} в месяц",
                    "0",
                    "month",
                    usage=UsageCharge(
                        "api-requests", "per_unit", {"unit_price": API_PRICE, "free_units": included}
                    ),
                )
                for tier, included in (("basic", "30000"), ("pro", "600000"))
            ),
        ),
    )
    collection = Collection(
        retry_days=(1, 3, 7),
        special=(Payer.SOFT_FIXED, Payer.EXPIRED),
        refunds=((140, Refund.PARTIAL), (250, Refund.FULL)),
        refund_reasons=(
            "Компенсация за перебои в работе сервиса",
            "Возврат: отказ от подписки в течение 14 дней",
        ),
    )
    return Scenario(
        spec,
        products,
        _kz_customers,
        (("month", 1),) * 3 + (("year", 1),),
        6,
        DocumentType.INVOICE,
        85,
        10,
        collection,
        metering=METERING,
    )
