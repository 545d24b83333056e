"""SMTP delivery with the standard library: `smtp://user:pass@host:587?starttls=1` (STARTTLS),
`smtps://user:pass@host:465` (TLS from the first byte), plain `smtp://host:25` otherwise.

A 5xx answer to the recipient or the message is permanent (the address bounces); anything else that
goes wrong (4xx, refused connection, timeout, a dropped line) is temporary and retried.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from fiscus.domain.email import OutgoingEmail, PermanentFailure, TemporaryFailure

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class SmtpMailer:
    host: str
    port: int
    tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = 30.0
    verify: bool = True

    @staticmethod
    def from_url(url: str, *, timeout_seconds: float = 30.0) -> SmtpMailer:
        parts = urlsplit(url)
        query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
        tls = parts.scheme.lower() == "smtps"
        if not parts.hostname:
            raise ValueError("FISCUS_SMTP_URL needs a host")
        return SmtpMailer(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            tls=tls,
            starttls=not tls and query.get("starttls", "0") in _TRUE,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout_seconds=float(query.get("timeout", timeout_seconds)),
            verify=query.get("verify", "1") in _TRUE,
        )

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        if self.tls:
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout_seconds, context=self._context()
            )
        client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds)
        if self.starttls:
            client.starttls(context=self._context())
        return client

    def send(self, message: OutgoingEmail, raw: bytes) -> None:
        try:
            client = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryFailure(f"cannot reach {self.host}:{self.port}: {exc}") from exc
        try:
            if self.username:
                client.login(self.username, self.password or "")
            client.sendmail(_envelope_from(message.sender), [message.recipient], raw)
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPSenderRefused) as exc:
            # Our credentials or sender address: no fault of the recipient's, so never a bounce.
            raise TemporaryFailure(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _failure(code, text, address=True) from exc
        except smtplib.SMTPResponseException as exc:
            raise _failure(exc.smtp_code, exc.smtp_error, address=False) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryFailure(str(exc)) from exc
        finally:
            # No QUIT round trip: once the server answered 250 to the message it must deliver it even if
            # the connection just closes (RFC 5321 §4.1.1.5), and every millisecond before the caller
            # records "sent" is a window for a double send (docs/adr/0007-email.md).
            client.close()


def _envelope_from(sender: str) -> str:
    """The bare address of a `Name <address>` header value."""
    return sender.rsplit("<", 1)[-1].rstrip(">").strip() if "<" in sender else sender.strip()


def _failure(code: int, text: bytes | str, *, address: bool) -> Exception:
    """5xx to RCPT: the address bounces; 5xx to the message: that message fails (a filter, a size
    limit), the address is not to blame; 4xx: later."""
    reason = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    if 500 <= code < 600:
        return PermanentFailure(code, reason, address=address)
    return TemporaryFailure(f"{code} {reason}")
