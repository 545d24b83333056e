"""Settings, read once from the environment (prefix FISCUS_) by the composition root."""

from __future__ import annotations

from pydantic import PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FISCUS_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./fiscus.db"
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    billing_batch_size: int = 250
    worker_interval_seconds: float = 30.0
    # The worker's rest between two cycles when a cycle is done (tests shorten it to wait less).
    worker_pause_seconds: float = 1.0
    log_level: str = "INFO"
    access_log: bool = True
    rate_limit_per_second: float = 100.0
    rate_limit_burst: float = 200.0
    max_body_bytes: int = 1_048_576
    # Threads that run the synchronous request handlers (anyio's pool; its default is 40). Measured with
    # 2 and with 40 (ADR 0004, addendum 4): no difference in the ratio to /healthz nor in the tail.
    request_threads: PositiveInt = 40
    webhooks_allow_private: bool = False
    vies_enabled: bool = False
    documents_dir: str = "./var/documents"
    # Path prefixes of the compatibility dialects (e.g. "/compat/vpsbg"); empty mounts them at the paths
    # their own documents show.
    # Payments through the built-in test gateway (`fiscus gateway`); unset, Fiscus collects nothing
    # itself. The public URL is where customers' browsers reach its hosted card form.
    gateway_url: str | None = None
    gateway_public_url: str | None = None
    gateway_webhook_secret: str | None = None
    gateway_timeout_seconds: float = 10.0
    # Signs hosted payment page links; unset, a random key is generated once and kept in the database.
    secret_key: str | None = None
    dialect_billing_prefix: str = ""
    dialect_payments_prefix: str = ""
    dialect_vps_prefix: str = ""
    # Email (docs/emails.md): where the worker sends customers' emails. smtp://user:pass@host:587?starttls=1,
    # smtps://user:pass@host:465, or file:///dir (one .eml per message, for development); unset, emails
    # stay queued. `email_from` is the instance's sender when an organisation has none of its own.
    smtp_url: str | None = None
    smtp_timeout_seconds: float = 30.0
    email_from: str = "billing@localhost"
    # A claimed email not marked sent after this long is taken to be lost with its worker and sent
    # again (the only double-send window: docs/adr/0007-email.md). Longer than one SMTP send can take.
    email_lease_seconds: float = 300.0
