"""What every response carries (stockpile/web.py) and how the API takes a body it cannot use
(stockpile/api.py): security headers on pages and API alike, and JSON nested too deep refused
as malformed on every recording endpoint, with nothing recorded."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from stockpile import create_app
from stockpile.api import MAX_JSON_DEPTH
from stockpile.extensions import db
from stockpile.inventory.models import Movement

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@pytest.mark.parametrize("path", ["/login", "/coverage", "/no-such-page", "/api/v1/items", "/static/style.css"])
def test_every_response_carries_the_security_headers(client, auth, world, path):
    auth.login("supply@example.org")
    with client.get(path) as response:
        for name, value in HEADERS.items():
            assert response.headers.get(name) == value, (path, name)
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP: HSTS would lock it out


def test_hsts_where_the_site_runs_on_https_only(app_config):
    app = create_app({**app_config, "SESSION_COOKIE_SECURE": True})
    response = app.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_pages_use_no_inline_styles_or_scripts(client, auth, world):
    """What the policy would block: inline style attributes, inline scripts, event handlers."""
    auth.login("admin@example.org")
    for path in ("/admin/organisations", "/coverage", "/items", "/alerts", "/rotation", "/admin/jobs"):
        page = client.get(path).text
        assert ' style="' not in page and "<script>" not in page and " onclick=" not in page, path


def recording_endpoints(app) -> list[tuple[str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH"}):
            path = rule.rule
            for argument in rule.arguments:
                path = path.replace(f"<{argument}>", "1").replace(f"<int:{argument}>", "1")
                path = path.replace(f"<path:{argument}>", "1")
            found.append((method, path))
    return found


def test_json_nested_too_deep_is_malformed_on_every_recording_endpoint(app, client, world, session):
    endpoints = recording_endpoints(app)
    assert len(endpoints) >= 17
    db.fixed_session.commit()
    before = session.scalar(sa.select(sa.func.count(Movement.id)))
    for depth in (MAX_JSON_DEPTH + 1, 1_000, 100_000):
        body = "[" * depth + "]" * depth
        for method, path in endpoints:
            response = client.open(path, method=method, data=body, content_type="application/json",
                                   headers=world.headers("admin"))
            assert response.status_code == 400, (method, path, depth, response.status_code)
            assert response.get_json()["error"]["code"] == "malformed", (method, path)
    assert session.scalar(sa.select(sa.func.count(Movement.id))) == before


def test_json_as_deep_as_allowed_is_read(client, world):
    """At the limit the body parses and is judged by the schema as usual (a list is not an object)."""
    db.fixed_session.commit()
    body = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    response = client.post("/api/v1/receipts", data=body, content_type="application/json",
                           headers=world.headers("supply"))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid"
