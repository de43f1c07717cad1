"""Shared fixtures: a migrated database, one rolled-back transaction per test, the app.

The database under test is SQLite (a temporary file) unless ``STOCKPILE_TEST_DATABASE_URL``
names another, e.g. ``postgresql://postgres@127.0.0.1:5432/test``. Tests marked ``postgres``
need PostgreSQL at ``STOCKPILE_TEST_POSTGRES_URL`` (default the same local ``test`` database);
where it is not reachable they are skipped with the reason, unless
``STOCKPILE_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) turns the skip into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
import time_machine
import sqlalchemy.orm as so

from stockpile import create_app
from stockpile import HOOKS
from stockpile.db import Session, make_engine, upgrade
from stockpile.models import load_models
from stockpile.extensions import db
from stockpile.inventory import services as inventory
from tests import factories
from tests.browser import chromium, server  # noqa: F401  (fixtures for the browser tests)

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _reset_postgres(url: str) -> sa.Engine:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    upgrade(engine)
    return engine


def _postgres_unavailable(url: str) -> str | None:
    try:
        engine = make_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any failure to connect means "not available here"
        return f"PostgreSQL not reachable at {url}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture(autouse=True)
def clock(request: pytest.FixtureRequest) -> Iterator[time_machine.Coordinates | None]:
    """Every test runs on ``factories.TODAY``: the clock starts at ``factories.NOW`` and ticks on,
    whatever the machine's date, so ``local_today()``, ``utcnow()`` and the app all agree with the
    dates the test posts. A test can move it (``clock.move_to(...)``, ``clock.shift(...)``).

    Tests marked ``real_clock`` (they start processes of their own, which read the machine's
    clock) are left on the real one.
    """
    if request.node.get_closest_marker("real_clock"):
        yield None
        return
    with time_machine.travel(factories.NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("STOCKPILE_TEST_DATABASE_URL")
    if url:
        return url
    return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "stockpile-test.sqlite3")


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[sa.Engine]:
    """The database under test, built by running the Alembic migrations."""
    if database_url.startswith("postgres"):
        reason = _postgres_unavailable(database_url)
        if reason:
            pytest.fail(reason)  # the suite was asked to run on PostgreSQL: never skip that
        eng = _reset_postgres(database_url)
    else:
        eng = make_engine(database_url)
        upgrade(eng)
    load_models()
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[sa.Engine]:
    """A migrated PostgreSQL database of its own, for tests that commit (row-lock tests).

    Created next to ``STOCKPILE_TEST_POSTGRES_URL``'s database and dropped afterwards, so what
    these tests commit never mixes with the rolled-back tests or the seeded defaults.
    """
    url = sa.make_url(os.environ.get("STOCKPILE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    reason = _postgres_unavailable(url.render_as_string(hide_password=False))
    if reason:
        if os.environ.get("STOCKPILE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (STOCKPILE_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    name = f"{url.database}_commits"
    admin = make_engine(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    eng = make_engine(url.set(database=name).render_as_string(hide_password=False))
    upgrade(eng)
    yield eng
    eng.dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        if outer.is_active:
            outer.rollback()


@pytest.fixture
def session(connection: sa.Connection) -> Iterator[so.Session]:
    """A session inside the test's transaction; its commits become savepoints, rolled back after.
Like the app's sessions, it evaluates alerts for what was posted once a commit has landed.

    After every test that used it, the ledger invariant is checked: each balance equals the
    sum of its movements (``verify`` finds nothing).
    """
    sess = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False,
                   hooks=HOOKS)
    yield sess
    if not sess.is_active:
        sess.rollback()
    differences = inventory.verify(sess)
    sess.close()
    assert differences == [], f"balances differ from the ledger: {differences}"


@pytest.fixture
def app_config(database_url: str) -> dict[str, object]:
    return {"TESTING": True, "DATABASE_URL": database_url, "SECRET_KEY": "test-secret",
            "WTF_CSRF_ENABLED": False, "LOGIN_MAX_FAILURES": 5}


@pytest.fixture
def app(app_config: dict[str, object], session: so.Session):
    application = create_app(app_config)
    db.fixed_session = session
    yield application
    db.fixed_session = None
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def world(session: so.Session) -> factories.World:
    """Two organisations with a depot each, a few items and a user per role (see factories).

    Committed (to the test's savepoint), as real data would be: a request that is refused rolls
    back its own work, not the world it ran in.
    """
    built = factories.build_world(session)
    session.commit()
    return built


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> Iterator[None]:
    """argon2 at its minimum cost in tests: the real cost is there to slow attackers, not tests."""
    from argon2 import PasswordHasher

    from stockpile.auth import services as auth

    real = auth._hasher
    auth._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    yield
    auth._hasher = real


def login(client, email: str, password: str = factories.PASSWORD):
    """Sign in through the login page; returns the response after redirects."""
    return client.post("/login", data={"email": email, "password": password}, follow_redirects=True)
