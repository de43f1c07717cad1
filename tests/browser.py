"""What the browser tests share: Chromium (skipped with the reason where it is missing, unless
STOCKPILE_REQUIRE_BROWSER=1), the app on a real HTTP server in a thread against a test module's
own committed ``database`` fixture (a migrated SQLite file, not the rolled-back test session; see
``world_database``), and optional screenshots (STOCKPILE_SCREENSHOTS=dir)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy.orm as so
from werkzeug.serving import make_server

from stockpile import create_app
from stockpile.db import make_engine, upgrade
from stockpile.extensions import db
from tests import factories

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        reason = f"Chromium not found at {CHROMIUM} (install it with: apt-get install -y chromium)"
        if os.environ.get("STOCKPILE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}; STOCKPILE_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
def server(database: str) -> Iterator[str]:
    """The app served on a free localhost port, on the test module's ``database`` (a URL)."""
    app = create_app({"TESTING": True, "DATABASE_URL": database, "SECRET_KEY": "browser-test",
                      "WTF_CSRF_ENABLED": True})
    assert db.fixed_session is None  # requests use their own sessions on the file
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(timeout=10)
    with app.app_context():
        db.engine.dispose()


def world_database(path: Path, add: Callable[[so.Session], None] | None = None) -> str:
    """A migrated SQLite file at ``path`` with the test world in it and whatever ``add`` puts
    there, committed; returns its URL (what a module's ``database`` fixture gives ``server``)."""
    url = "sqlite:///" + str(path)
    engine = make_engine(url)
    try:
        upgrade(engine)
        with so.Session(engine) as session:
            factories.build_world(session)
            if add is not None:
                add(session)
            session.commit()
    finally:
        engine.dispose()
    return url


def shot(page, name: str) -> None:
    directory = os.environ.get("STOCKPILE_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / name), full_page=True)
