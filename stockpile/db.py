"""SQLAlchemy wiring: the declarative base, the engine, the session and its hooks, migrations.

Plain SQLAlchemy 2.x (no Flask-SQLAlchemy, no Flask here): domain services take a ``Session``
and never import Flask, so the CLI, the scheduler and the tests call them the same way. The
binding to the application (a session per request) is ``stockpile.extensions.Database``.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
import sqlalchemy.orm as so

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


log = logging.getLogger(__name__)


class Base(so.DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


M = TypeVar("M", bound=Base)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on every database (SQLite has no time zone type)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC timestamps")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# The largest value of an INTEGER column (ids among them); beyond it PostgreSQL refuses to compare.
INT_MAX = 2**31 - 1


def get(session: so.Session, model: type[M], ident: int, **kwargs: Any) -> M | None:
    """``session.get`` for an id from a URL or a request: ``None`` for one no row can have."""
    return session.get(model, ident, **kwargs) if 0 < ident <= INT_MAX else None


def in_enum(column: str, enum_cls: type[enum.Enum]) -> str:
    """The SQL of a CHECK constraint that keeps ``column`` to the values of ``enum_cls``."""
    return f"{column} IN ({', '.join(repr(m.value) for m in enum_cls)})"


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout and real BEGINs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = sa.create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


def _configure_sqlite(engine: sa.Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take it over so
    # that writers can BEGIN IMMEDIATE (the SQLite equivalent of locking the rows they touch).
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())


Hook = Callable[..., None]


@dataclass(frozen=True)
class Hooks:
    """What the packages above the ledger do when it changes, registered where sessions are made
    (``create_app`` for the web, the CLI and the scheduler; the tests' session fixture).

    - ``stock_changed(session, pairs)``: a posting changed the stock of these (organisation id,
      item id) pairs; called inside the posting's transaction.
    - ``lot_changed(session, item_id)``: a lot of this item changed status or expiry; likewise.
    - ``after_commit(session)``: called once a commit has landed (see ``Session``).
    """

    stock_changed: Sequence[Hook] = ()
    lot_changed: Sequence[Hook] = ()
    after_commit: Sequence[Hook] = ()


class Session(so.Session):
    """A session that calls its ``Hooks``: within the transaction when the ledger says so
    (``run_hooks``), and after each commit, once it has landed.

    Each ``after_commit`` hook is called after the transaction committed and released its locks,
    in a new transaction of the same session (so what it writes is at once visible to whoever
    holds the session) that the hook commits itself. A hook that fails is logged and its work
    rolled back; it never undoes the commit it follows. (SQLAlchemy's own ``after_commit``
    event cannot run SQL, hence a method.)
    """

    def __init__(self, *args: Any, hooks: Hooks = Hooks(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hooks = hooks
        self._in_hooks = False

    def commit(self) -> None:
        super().commit()
        if self._in_hooks:  # a hook's own commit
            return
        self._in_hooks = True
        try:
            for hook in self.hooks.after_commit:
                try:
                    hook(self)
                except Exception:  # noqa: BLE001 - the commit before it stands whatever happens here
                    self.rollback()
                    log.exception("%s failed after a commit; the commit stands", hook.__qualname__)
        finally:
            self._in_hooks = False


def run_hooks(session: so.Session, event: str, *args: Any) -> None:
    """Call ``session``'s hooks for ``event`` (``stock_changed`` or ``lot_changed``) in its
    transaction. A plain SQLAlchemy session has none."""
    hooks = session.hooks if isinstance(session, Session) else Hooks()
    for hook in getattr(hooks, event):
        hook(session, *args)


WRITE_OPTIONS = {"sqlite_begin": "IMMEDIATE"}


def begin_write(session: so.Session) -> None:
    """Start ``session``'s transaction as a writer if it has not started yet.

    On SQLite this is ``BEGIN IMMEDIATE``: the write lock is taken before anything is read, so
    a posting never decides on a snapshot another writer has already changed. On PostgreSQL
    the posting path locks the balance rows with ``SELECT … FOR UPDATE`` instead.
    """
    if not session.in_transaction():
        session.connection(execution_options=WRITE_OPTIONS)


MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")


def alembic_config(connection: sa.Connection | None = None, url: str | None = None) -> Any:
    """An Alembic ``Config`` for ``migrations/``, bound to a connection or a URL."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Run the Alembic migrations on ``engine`` up to ``revision``."""
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)
