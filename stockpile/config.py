"""Configuration from the environment, with a mapping on top for tests."""

from __future__ import annotations

import os
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
    }
