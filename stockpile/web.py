"""What pages and API endpoints share about the request they serve: today's date where the
stock is, the posting context (who records, when) for the services, and the security headers
of every response."""

from __future__ import annotations

import datetime as dt

from flask import Response, current_app, g
from flask_login import current_user

from stockpile.inventory import services as inventory


def today() -> dt.date:
    """Today in the site's time zone (``TIMEZONE``): expiry is a calendar date."""
    return inventory.local_today(current_app.config["TIMEZONE"])


def posting_context(occurred_at: dt.datetime | None = None) -> inventory.Context:
    """The signed-in user (the API token's user in an API request) recording now, or at
    ``occurred_at``."""
    user = g.get("api_user") or current_user
    return inventory.Context.now(user.id, occurred_at=occurred_at, timezone=current_app.config["TIMEZONE"])


# Pages use only the application's own scripts, styles and images (served from the package, for
# closed networks), and are never framed.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                           "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def security_headers(response: Response) -> Response:
    """Every response, page or API: no framing, no MIME sniffing, no referrer outside the site,
    and HSTS where the site runs on HTTPS only (``STOCKPILE_SECURE_COOKIES``)."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response
