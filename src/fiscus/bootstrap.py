"""The composition root: settings, database and clock, built once per process and passed down."""

from __future__ import annotations

from dataclasses import dataclass

from fiscus.adapters.db.engine import Database
from fiscus.config import Settings
from fiscus.domain.clock import Clock, SystemClock
from fiscus.domain.payments import PaymentProvider
from fiscus.domain.tax import VatRegistry


class NotMigratedError(RuntimeError):
    """The database schema is missing or older than this code."""


@dataclass(frozen=True, slots=True)
class Container:
    settings: Settings
    db: Database
    clock: Clock
    vat_registry: VatRegistry | None = None
    payments: PaymentProvider | None = None


def build(
    settings: Settings | None = None, *, clock: Clock | None = None, require_migrated: bool = True
) -> Container:
    settings = settings or Settings()
    db = Database(settings.database_url)
    from fiscus.adapters.db.schema_version import is_up_to_date  # without Alembic (start-up time)

    if require_migrated and not is_up_to_date(db.engine):
        db.dispose()
        raise NotMigratedError(
            f"the database at {settings.database_url} is not migrated to the current schema; "
            "run `fiscus db upgrade` first"
        )
    registry: VatRegistry | None = None
    if settings.vies_enabled:
        from fiscus.adapters.vies import ViesRegistry

        registry = ViesRegistry()
    return Container(settings, db, clock or SystemClock(), registry, payment_provider(settings))


def payment_provider(settings: Settings) -> PaymentProvider | None:
    """The configured payment provider adapter, or None when Fiscus is not set up to collect."""
    if not settings.gateway_url:
        return None
    from fiscus.adapters.payments.gateway import GatewayProvider

    return GatewayProvider(
        settings.gateway_url,
        webhook_secret=settings.gateway_webhook_secret,
        timeout_seconds=settings.gateway_timeout_seconds,
    )
