"""Settings, read once from the environment (prefix FISCUS_) by the composition root."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FISCUS_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./fiscus.db"
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    billing_batch_size: int = 250
    worker_interval_seconds: float = 30.0
    log_level: str = "INFO"
    access_log: bool = True
    rate_limit_per_second: float = 100.0
    rate_limit_burst: float = 200.0
    max_body_bytes: int = 1_048_576
    webhooks_allow_private: bool = False
    vies_enabled: bool = False
    documents_dir: str = "./var/documents"
    # Path prefixes of the compatibility dialects (e.g. "/compat/vpsbg"); empty mounts them at the paths
    # their own documents show.
    dialect_billing_prefix: str = ""
    dialect_payments_prefix: str = ""
    dialect_vps_prefix: str = ""
