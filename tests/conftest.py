"""Shared fixtures: a migrated database, one rolled-back transaction per test, the app.

The database under test is SQLite (a temporary file) unless ``STOCKPILE_TEST_DATABASE_URL``
names another, e.g. ``postgresql://postgres@127.0.0.1:5432/test``. Tests marked ``postgres``
need PostgreSQL at ``STOCKPILE_TEST_POSTGRES_URL`` (default the same local ``test`` database);
where it is not reachable they are skipped with the reason, unless
``STOCKPILE_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) turns the skip into a failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
import time_machine
import sqlalchemy.orm as so
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

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
def postgres_database() -> Iterator[Callable[[str], str]]:
    """Makes migrated PostgreSQL databases of their own, for tests that commit or start processes:
    ``postgres_database("commits")`` creates ``<database>_commits`` next to
    ``STOCKPILE_TEST_POSTGRES_URL``'s database and returns its URL. What these tests commit never
    mixes with the rolled-back tests or the seeded defaults; the databases are dropped at the end of
    the session.
    """
    url = sa.make_url(os.environ.get("STOCKPILE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    reason = _postgres_unavailable(url.render_as_string(hide_password=False))
    if reason:
        if os.environ.get("STOCKPILE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (STOCKPILE_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    admin = make_engine(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make(suffix: str) -> str:
        name = f"{url.database}_{suffix}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        made.append(name)
        target = url.set(database=name).render_as_string(hide_password=False)
        engine = make_engine(target)
        upgrade(engine)
        engine.dispose()
        return target

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_engine(postgres_database: Callable[[str], str]) -> Iterator[sa.Engine]:
    """A migrated PostgreSQL database of its own (``<database>_commits``), for tests that commit
    (row-lock tests)."""
    eng = make_engine(postgres_database("commits"))
    yield eng
    eng.dispose()


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


def csrf_token(page: str) -> str:
    """The CSRF token a page's form carries."""
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


@pytest.fixture
def csrf_client(app, client):
    """The test's ``client``, with the app checking CSRF tokens as it does in production.

    The other tests switch the check off so that they can post forms without reading a token
    first. Flask-WTF reads the setting at each request, so switching it on here is enough, and
    ``auth`` (on the same client) signs in with a token from the login page.
    """
    app.config["WTF_CSRF_ENABLED"] = True
    return client


class AuthActions:
    """Signing in and out through the pages, as a person does (the Flask tutorial's AuthActions)."""

    def __init__(self, client: FlaskClient) -> None:
        self._client = client

    def _with_token(self, data: dict[str, str], page: str) -> dict[str, str]:
        if self._client.application.config["WTF_CSRF_ENABLED"]:
            return {**data, "csrf_token": csrf_token(self._client.get(page, follow_redirects=True).text)}
        return data

    def login(self, email: str, password: str = factories.PASSWORD) -> TestResponse:
        """Posts the sign-in form; returns the page after the redirects.

        Checks only that the form was taken (a redirect when signed in, the form again with 200
        when the password is wrong or the account locked), so that a post the form refuses (422,
        400 without a CSRF token) fails here rather than as a puzzling page later. Tests of refused
        sign-ins use it too, and some roles land on a page they may not read.
        """
        data = self._with_token({"email": email, "password": password}, "/login")
        response = self._client.post("/login", data=data, follow_redirects=True)
        answer = response.history[0] if response.history else response
        assert answer.status_code in (200, 302), f"the sign-in form was refused: {answer.status_code}"
        return response

    def logout(self) -> TestResponse:
        """Posts the sign-out form in the navigation; returns the page after the redirects."""
        return self._client.post("/logout", data=self._with_token({}, "/items"), follow_redirects=True)


@pytest.fixture
def auth(client) -> AuthActions:
    return AuthActions(client)


class counted:
    """The SQL statements run inside the block on ``bind`` (an engine or a connection), but for
    those that start with one of ``ignore``."""

    def __init__(self, bind: sa.Engine | sa.Connection, ignore: tuple[str, ...] = ()) -> None:
        self.bind = bind
        self.ignore = ignore
        self.statements: list[str] = []

    def _count(self, _conn, _cursor, statement: str, *_args) -> None:
        if not statement.startswith(self.ignore):
            self.statements.append(statement)

    def __enter__(self) -> list[str]:
        sa.event.listen(self.bind, "before_cursor_execute", self._count)
        return self.statements

    def __exit__(self, *_exc) -> None:
        sa.event.remove(self.bind, "before_cursor_execute", self._count)


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

    from stockpile.auth import services as auth_services

    real = auth_services._hasher
    auth_services._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    yield
    auth_services._hasher = real
