"""Configuration from the environment, with a mapping on top for tests."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def default_database_url(instance_path: str) -> str:
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return "sqlite:///" + str(Path(instance_path) / "stockpile.sqlite3")


def from_environment(instance_path: str) -> dict[str, Any]:
    """Settings read from the process environment; unset values get safe defaults."""
    env = os.environ
    return {
        "DATABASE_URL": env.get("DATABASE_URL") or default_database_url(instance_path),
        "SECRET_KEY": env.get("SECRET_KEY"),
        "TIMEZONE": env.get("STOCKPILE_TIMEZONE", "Europe/Oslo"),
        "DEBUG": env.get("FLASK_DEBUG", "") in {"1", "true", "True"},
        "TESTING": False,
        "LOGIN_MAX_FAILURES": int(env.get("STOCKPILE_LOGIN_MAX_FAILURES", "5")),
        "LOGIN_LOCKOUT_MINUTES": int(env.get("STOCKPILE_LOGIN_LOCKOUT_MINUTES", "15")),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env.get("STOCKPILE_SECURE_COOKIES", "") in {"1", "true"},
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "WTF_CSRF_TIME_LIMIT": None,
        "BABEL_DEFAULT_LOCALE": "en",
        "BABEL_DEFAULT_TIMEZONE": env.get("STOCKPILE_TIMEZONE", "Europe/Oslo"),
        "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
        # Outgoing mail (the daily alert digest); no SMTP_HOST means no digests are sent.
        "SMTP_HOST": _setting(env, "SMTP_HOST"),
        # Checked when mail is sent (stockpile.alerts.notify), so a typo cannot stop the site.
        "SMTP_PORT": _setting(env, "SMTP_PORT"),
        "SMTP_TLS": _setting(env, "SMTP_TLS") or "starttls",
        "SMTP_USERNAME": _setting(env, "SMTP_USERNAME"),
        "SMTP_PASSWORD": _setting(env, "SMTP_PASSWORD"),
        "MAIL_FROM": _setting(env, "MAIL_FROM"),
        # Where users reach the site, for the links in mails (e.g. https://stockpile.example.org).
        "PUBLIC_URL": _setting(env, "PUBLIC_URL"),
    }


def _setting(env: Mapping[str, str], name: str) -> str | None:
    """``STOCKPILE_<name>`` or, failing that, plain ``<name>``; empty counts as unset."""
    return env.get(f"STOCKPILE_{name}") or env.get(name) or None
