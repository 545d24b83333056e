"""The CSRF helper the console and portal forms use: signed double-submit tokens bound to a session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient

from fiscus.web.csrf import COOKIE, FIELD, HEADER, TTL, Csrf

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CSRF = Csrf(b"k" * 32)


def test_a_token_is_valid_only_as_its_own_cookie_for_its_session_while_fresh() -> None:
    token = CSRF.issue("session-1", NOW)
    assert CSRF.is_valid("session-1", token, token, NOW)
    assert CSRF.is_valid("session-1", token, token, NOW + TTL)
    assert not CSRF.is_valid("session-1", token, token, NOW + TTL + timedelta(seconds=1))
    assert not CSRF.is_valid("session-2", token, token, NOW)  # leaked into another session
    other = CSRF.issue("session-1", NOW)
    assert not CSRF.is_valid("session-1", token, other, NOW)  # not the cookie's
    assert not CSRF.is_valid("session-1", token, None, NOW)
    assert not CSRF.is_valid("session-1", "", "", NOW)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert not CSRF.is_valid("session-1", forged, forged, NOW)
    assert not Csrf(b"x" * 32).is_valid("session-1", token, token, NOW)  # another installation's


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/form")
    def form() -> Response:
        token = CSRF.issue("s", NOW)
        response = Response(token)
        CSRF.set_cookie(response, token, secure=False)
        return response

    @app.post("/change")
    async def change(request: Request) -> Response:
        body = dict(x.split("=", 1) for x in (await request.body()).decode().split("&") if "=" in x)
        ok = CSRF.check_request(request, "s", NOW, form=body)
        return Response(status_code=204 if ok else 403)

    return app


def test_a_form_post_needs_the_token_of_its_cookie() -> None:
    with TestClient(_app()) as client:
        shown = client.get("/form")
        token = shown.text
        cookie = shown.headers["set-cookie"]
        assert f"{COOKIE}={token}" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
        assert client.post("/change", content=f"{FIELD}={token}").status_code == 204
        assert client.post("/change", headers={HEADER: token}).status_code == 204
        assert client.post("/change").status_code == 403
        client.cookies.clear()
        assert client.post("/change", content=f"{FIELD}={token}").status_code == 403  # cross-site: no cookie
