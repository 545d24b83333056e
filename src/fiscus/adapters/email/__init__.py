"""Email adapters behind the domain's `Mailer` port: SMTP (`smtp://`, `smtps://`) and a directory of
.eml files for development (`file:///path`). `mailer_from_url` picks one from `FISCUS_SMTP_URL`."""

from __future__ import annotations

from urllib.parse import urlsplit

from fiscus.domain.email import Mailer


def mailer_from_url(url: str, *, timeout_seconds: float = 30.0) -> Mailer:
    """The mailer a `FISCUS_SMTP_URL` names; ValueError for a scheme we do not know."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("smtp", "smtps"):
        from fiscus.adapters.email.smtp import SmtpMailer

        return SmtpMailer.from_url(url, timeout_seconds=timeout_seconds)
    if scheme == "file":
        from fiscus.adapters.email.files import FileMailer

        return FileMailer.from_url(url)
    raise ValueError(f"FISCUS_SMTP_URL: unknown scheme {scheme!r} (smtp://, smtps:// or file://)")
