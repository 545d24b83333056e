"""Cross-site request forgery protection for the forms of the web surfaces (console, portal): a signed
double-submit token.

A page that shows a form issues a token bound to the visitor's session (or, before login, to an
anonymous value of the caller's choosing), puts it in the form (hidden field `csrf_token`, or the
`X-CSRF-Token` header for scripts) and in a `SameSite=Strict`, `HttpOnly` cookie. A state-changing
request is accepted only if the submitted token equals the cookie's, was signed by this installation
for this session, and has not expired: another site can neither read the cookie nor forge the
signature, and a token leaked from one session is worthless in another.

Each customer-facing surface keeps its token in a cookie of its own name, scoped to its own path: the
portal `PORTAL_COOKIE` at `/portal/{slug}`, the hosted page `PAY_COOKIE` at its own `/pay/{link}` (the
console keeps `COOKIE`). They once shared one cookie: a token of one surface was never
accepted on another (it is signed for its subject), but opening one surface replaced the cookie the
other's open form had been given, so that form's next submission was refused (403): a customer who
went from the portal's "Pay" link to the hosted page and back could not send a portal form.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from fastapi import Request, Response

from fiscus.web.signing import MAX_TOKEN_CHARS, Signer

COOKIE: Final = "fiscus_csrf"
PORTAL_COOKIE: Final = "fiscus_portal_csrf"
PAY_COOKIE: Final = "fiscus_pay_csrf"
FIELD: Final = "csrf_token"
HEADER: Final = "X-CSRF-Token"
TTL: Final = timedelta(hours=8)
"""A working day: a form left open that long must be reloaded."""
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Csrf:
    """Issues and checks the tokens of one installation (keys derived from `secret`)."""

    secret: bytes
    ttl: timedelta = TTL
    cookie: str = COOKIE
    """The name of the double-submit cookie (one per surface)."""

    @property
    def _signer(self) -> Signer:
        return Signer(self.secret, "csrf")

    def issue(self, session: str, now: datetime) -> str:
        """A fresh token for a form shown to `session`."""
        return self._signer.issue_state(session, now, self.ttl)

    def is_valid(self, session: str, submitted: str | None, cookie: str | None, now: datetime) -> bool:
        """Whether the submitted token is the cookie's (double submit), signed for `session`, and fresh."""
        if not submitted or not cookie or len(submitted) > MAX_TOKEN_CHARS:
            return False
        if not hmac.compare_digest(submitted.encode(), cookie.encode()):
            return False
        return self._signer.state_is_valid(session, submitted, now)

    def set_cookie(self, response: Response, token: str, *, secure: bool, path: str = "/") -> None:
        """Hand the token to the browser as the double-submit cookie (script-proof, same-site only),
        sent only to `path` and below (the surface's own pages)."""
        response.set_cookie(
            self.cookie,
            token,
            max_age=int(self.ttl.total_seconds()),
            path=path,
            secure=secure,
            httponly=True,
            samesite="strict",
        )

    def check_request(
        self, request: Request, session: str, now: datetime, form: Mapping[str, object] | None = None
    ) -> bool:
        """A request's verdict: safe methods pass; others need the header or form token to match."""
        if request.method in SAFE_METHODS:
            return True
        submitted = request.headers.get(HEADER)
        if submitted is None and form is not None:
            value = form.get(FIELD)
            submitted = value if isinstance(value, str) else None
        return self.is_valid(session, submitted, request.cookies.get(self.cookie), now)
