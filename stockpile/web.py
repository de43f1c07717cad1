"""What pages and API endpoints share about the request they serve: today's date where the
stock is, and the posting context (who records, when) for the services."""

from __future__ import annotations

import datetime as dt

from flask import current_app, g
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
