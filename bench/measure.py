#!/usr/bin/env python3
"""Measure every national-scale target (DESIGN.md §10) on an already-built data set.

    .venv/bin/python bench/measure.py --url postgresql://postgres@127.0.0.1:5432/national_3y \\
        --url6 postgresql://postgres@127.0.0.1:5432/national_6y [--samples 50] [--only NAMES] [--markdown]
    .venv/bin/python bench/measure.py --url sqlite:////tmp/national_3y.sqlite3 \\
        --url6 sqlite:////tmp/national_6y.sqlite3

The data set is the one ``bench/national.py`` builds (region ``NO``; supply centre ``FS-1`` with
depot ``FS-1-D`` holding every item; region ``SF`` with the municipalities ``K-0001`` …; items
``I-00001`` …). Nothing is rebuilt here. Each figure is measured on ``--url`` (3 years of history)
and, with ``--url6``, again on the 6-year build; the table gives both and their ratio.

Figures (``--only`` takes a comma-separated list of these names):

- ``posting`` — one FEFO withdrawal of 1 unit at FS-1 through ``stockpile.inventory.services.issue``
  plus the commit of its transaction, interleaved with the *raw SQL of the same statements*: the
  SQL text and parameters the service emits are captured once (a ``before_cursor_execute``
  listener) from an equivalent posting, then replayed on a raw DBAPI connection (psycopg /
  sqlite3) for another item with fresh values (a new posting uuid, timestamps now, that item's
  lot and balance read back from the replayed FEFO ``SELECT``, its new balance), then committed.
  Service and raw postings rotate over two disjoint sets of items with plenty of stock. "Posting"
  ends when the database has committed (the first ``after_commit`` listener); work the service
  does after that (alert evaluation moved after the commit) is timed as its own line and is not
  part of the replay. The touched balances are checked against the ledger afterwards.
- ``api_issue`` — ``POST /api/v1/issues`` at FS-1 (supply staff token), one client, a fresh
  ``Idempotency-Key`` per request, rotating items.
- ``load`` — 32 concurrent clients posting withdrawals for 20 s (PostgreSQL only; skipped on
  SQLite): each client its own items, 1 unit each, unique ``Idempotency-Key``. Counts 2xx per
  second and errors (any other status; a 422 ``insufficient_stock`` is counted apart and should
  not happen), then checks for oversell: ``services.verify`` finds no difference, no balance is
  negative, and exactly one movement was written per 2xx answer. The clients are threads of this
  process (standard-library ``http.client``); the CPU they use is reported beside the figure.
- ``municipality`` — ``GET /api/v1/coverage?organisation=K-…``, the PPE duty page
  (``/duty/ppe?organisation=K-…``) and the coverage page (``/coverage?organisation=K-…``),
  rotating over the municipalities, as the coordinator of ``SF`` (token / signed-in cookie).
- ``supply_centre`` — ``GET /api/v1/coverage?organisation=FS-1`` (supply staff token).
- ``region`` — ``GET /api/v1/coverage/summary?parent=SF`` and the region page
  ``/coverage/region?parent=SF`` (coordinator).
- ``nightly`` — the ``rotation`` and ``alerts_scan`` jobs run twice through
  ``stockpile.scheduler.run_by_hand`` (what ``flask --app stockpile jobs run NAME`` runs); the
  second run is the steady state the target is about, the first is reported too.

With ``--url6`` the postings and the latencies are sampled alternately on the two data sets (each
served by its own gunicorn, one answering at a time), so a change in the machine's background
load falls on both histories alike; the load and the nightly jobs run one data set at a time.

HTTP figures run against the real application: ``gunicorn --workers 4 wsgi:app`` started here
on a free local port (``DATABASE_URL``, ``SECRET_KEY`` in its environment) and always stopped
again (its process group is killed, also when the measurement fails or is interrupted). Every
endpoint gets a few warm-up requests first (so each worker has imported and connected); they
are not counted. Latencies are client-side wall times of one request on a fresh connection.

Each latency figure is the median and p95 (nearest rank) of ``--samples`` requests (default 50;
at least 30 for the fast figures), or of fewer when one figure would take longer than
``--budget`` seconds (then at least ``--min-samples``); the count is printed beside each figure.

Users: the data set's users are found by role and organisation (supply staff of FS-1,
coordinator of SF, …); API tokens are created for them through ``stockpile.auth.services`` and
pages are signed in with ``bench-password``. Where a user is missing, or that password does not
sign in, a user ``measure-<role>@measure.test`` with that role is created.

Measuring consumes a little stock: every posting withdraws 1 unit at FS-1 (about a thousand
units in all for a full run on two data sets, spread over hundreds of items), and adds movements, API tokens and job
runs to the database. Run it on a copy if that matters.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import http.client
import json
import math
import os
import platform
import re
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stockpile.db import begin_write, make_engine
from stockpile.models import load_models  # noqa: E402
from stockpile.inventory import services as inventory  # noqa: E402

load_models()  # every mapper known before the first query, as in the application

FIGURES = ("posting", "api_issue", "load", "municipality", "supply_centre", "region", "nightly")
PASSWORD = "bench-password"
SUPPLY_CENTRE, DEPOT, REGION = "FS-1", "FS-1-D", "SF"
QUANTITY = 1
LOAD_CLIENTS, LOAD_SECONDS, LOAD_WORKERS = 32, 20.0, 4
MIN_LOT = 100  # items whose first FEFO lot holds fewer units are left out (a posting never splits)


# --- numbers ---------------------------------------------------------------------------------

@dataclass
class Timing:
    """Samples in seconds."""

    samples: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    def text(self, unit: str = "ms") -> str:
        if not self.samples:
            return "—"
        return f"median {fmt_time(self.median, unit)}, p95 {fmt_time(self.p95, unit)} (n={self.n})"


def fmt_time(seconds: float, unit: str = "ms") -> str:
    if unit == "s":
        return f"{seconds:.1f} s"
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def sample(fn: Callable[[int], float | None], wanted: int, budget: float, minimum: int) -> Timing:
    """Call ``fn(i)`` (returning its own duration, or None to time the whole call) ``wanted``
    times, or fewer once ``budget`` seconds have passed and ``minimum`` samples are in."""
    timing = Timing()
    began = time.monotonic()
    for i in range(wanted):
        if i >= minimum and time.monotonic() - began > budget:
            break
        start = time.perf_counter()
        took = fn(i)
        timing.samples.append(took if took is not None else time.perf_counter() - start)
    return timing


# --- processes we start: always stopped --------------------------------------------------------

_children: list[subprocess.Popen[bytes]] = []


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop ``proc`` and its process group (gunicorn's master and workers)."""
    if proc in _children:
        _children.remove(proc)
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def _stop_children() -> None:
    while _children:
        _stop(_children[-1])


def _on_signal(signum: int, _frame: Any) -> None:
    _stop_children()
    raise SystemExit(128 + signum)


atexit.register(_stop_children)


# --- the data set ------------------------------------------------------------------------------

@dataclass(frozen=True)
class StockItem:
    item_id: int
    code: str
    first_lot_quantity: int  # the first lot FEFO takes


@dataclass
class DataSet:
    url: str
    engine: sa.Engine
    dialect: str
    today: dt.date
    organisation_id: int
    depot_id: int
    items: list[StockItem]  # items at FS-1-D (operational) whose FEFO lot has plenty of stock
    municipalities: list[str]
    recipient: str | None
    counts: dict[str, Any]


def discover(url: str) -> DataSet:
    from stockpile.inventory.models import Balance, Depot, Item, Lot, Movement, Organisation

    engine = make_engine(url)
    today = inventory.local_today()
    with so.Session(engine) as session:
        depot = session.scalar(sa.select(Depot).where(Depot.code == DEPOT))
        if depot is None:
            raise SystemExit(f"{url}: no depot {DEPOT}; is this a data set built by bench/national.py?")
        rows = session.execute(
            sa.select(Lot.item_id, Item.code, Lot.id, Lot.expiry, Lot.received_at, Balance.quantity)
            .select_from(Balance).join(Balance.lot).join(Lot.item)
            .where(Balance.depot_id == depot.id, Balance.pool == "operational", Balance.quantity > 0,
                   Lot.status == "available", sa.or_(Lot.expiry.is_(None), Lot.expiry >= today))).all()
        first: dict[int, tuple[Any, ...]] = {}
        for item_id, code, lot_id, expiry, received_at, quantity in rows:
            key = (expiry is None, expiry or dt.date.max, received_at, lot_id)
            if item_id not in first or key < first[item_id][0]:
                first[item_id] = (key, code, quantity)
        items = sorted((StockItem(item_id, code, int(quantity)) for item_id, (_k, code, quantity) in first.items()
                        if quantity >= MIN_LOT), key=lambda s: s.code)
        region = session.scalar(sa.select(Organisation).where(Organisation.code == REGION))
        municipalities = list(session.scalars(
            sa.select(Organisation.code).where(Organisation.parent_id == region.id,
                                               Organisation.kind == "municipality")
            .order_by(Organisation.code))) if region is not None else []
        recipient = session.scalar(sa.select(Organisation.code).where(Organisation.kind == "health_trust")
                                   .order_by(Organisation.code).limit(1))
        # The history as built: the postings of earlier measurements left out of its span.
        built = sa.or_(Movement.reference.is_(None), sa.not_(Movement.reference.startswith("bench/measure.py")))
        span = session.execute(sa.select(sa.func.min(Movement.occurred_at), sa.func.max(Movement.occurred_at),
                                         sa.func.count(), sa.func.count().filter(sa.not_(built)))).one()
        counts = {
            "organisations": session.scalar(sa.select(sa.func.count()).select_from(Organisation)),
            "items": session.scalar(sa.select(sa.func.count()).select_from(Item)),
            "lots": session.scalar(sa.select(sa.func.count()).select_from(Lot)),
            "movements": span[2],
            "measure_movements": span[3],
            "first_movement": span[0].date().isoformat() if span[0] else None,
            "last_movement": session.scalar(sa.select(sa.func.max(Movement.occurred_at)).where(built)),
        }
        if counts["last_movement"] is not None:
            counts["last_movement"] = counts["last_movement"].date().isoformat()
    if len(items) < 8:
        raise SystemExit(f"{url}: only {len(items)} items at {DEPOT} have a usable lot of {MIN_LOT} or more units.")
    return DataSet(url, engine, engine.dialect.name, today, depot.organisation_id, depot.id, items,
                   municipalities, recipient, counts)


@dataclass(frozen=True)
class Person:
    email: str
    password: str | None  # None: not known to sign in


def person(ds: DataSet, role: str, organisation: str | None, label: str) -> Person:
    """A user with ``role`` at ``organisation`` (an administrator for role admin): the data
    set's own if there is one, else one created here with a known password."""
    from stockpile.auth import services as auth
    from stockpile.auth.models import Membership, User
    from stockpile.inventory.models import Organisation

    with so.Session(ds.engine, expire_on_commit=False) as session:
        org = (session.scalar(sa.select(Organisation).where(Organisation.code == organisation))
               if organisation else None)
        if role == "admin":
            stmt = sa.select(User).where(User.is_admin, User.active)
        else:
            stmt = (sa.select(User).join(Membership, Membership.user_id == User.id)
                    .where(Membership.role == role, Membership.organisation_id == org.id, User.active))
        found = session.scalars(stmt.order_by(User.id)).first()
        own = f"measure-{label}@measure.test"
        if found is not None and found.email != own:
            ok = found.password_hash is not None and auth.authenticate(session, found.email, PASSWORD) is not None
            session.commit()
            if ok:
                return Person(found.email, PASSWORD)
        mine = session.scalar(sa.select(User).where(User.email == own))
        if mine is None:
            auth.create_user(session, email=own, password=PASSWORD, role=role, organisation=org)
            session.commit()
        return Person(own, PASSWORD)


def api_token(ds: DataSet, email: str) -> str:
    from stockpile.auth import services as auth
    from stockpile.auth.models import User

    with so.Session(ds.engine) as session:
        user = session.scalar(sa.select(User).where(User.email == email))
        token = auth.create_token(session, user, name="bench/measure.py")
        session.commit()
    return token


# --- posting: the service against the raw SQL of its statements --------------------------------

@dataclass
class Captured:
    sql: str
    names: list[str]  # parameter names, in order (positional DBAPIs) or the dict's keys
    params: list[Any]  # one parameter set (tuple or dict) per execution of executemany
    executemany: bool
    after_commit: bool


class Recorder:
    """Records the statements an engine sends while ``active``; marks the database commit."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.active = False
        self.committed_at: float | None = None
        self.statements: list[Captured] = []
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        # insert=True: runs before any other after_commit listener (work done after the commit).
        sa.event.listen(so.Session, "after_commit", self._committed, insert=True)

    def stop_recording(self) -> None:
        """No statement listener from here on (the timed postings run without it)."""
        if sa.event.contains(self.engine, "before_cursor_execute", self._statement):
            sa.event.remove(self.engine, "before_cursor_execute", self._statement)

    def close(self) -> None:
        self.stop_recording()
        sa.event.remove(so.Session, "after_commit", self._committed)

    def _committed(self, _session: so.Session) -> None:
        if self.committed_at is None:
            self.committed_at = time.perf_counter()

    def _statement(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any,
                   executemany: bool) -> None:
        if not self.active:
            return
        sets = list(parameters) if executemany else [parameters]
        names = _parameter_names(context, sets, statement)
        self.statements.append(Captured(statement, names, [_plain(p) for p in sets], executemany,
                                        self.committed_at is not None))


def _parameter_names(context: Any, sets: list[Any], sql: str) -> list[str]:
    first = sets[0] if sets else ()
    if isinstance(first, dict):
        return _tuple_in_names(sql, list(first), positional=False)
    compiled = getattr(context, "compiled", None) if context is not None else None
    if compiled is None or not first:
        return []
    try:
        if compiled.literal_execute_params or compiled.post_compile_params:
            # (it pops what it expands: hand it a copy, never the statement's own parameters)
            expanded = compiled._process_parameters_for_postcompile(dict(context.compiled_parameters[0]))
            names = list(expanded.positiontup or ())
        else:
            names = list(compiled.positiontup or ())
    except Exception:  # noqa: BLE001 - a recorder must never break the statement it watches
        names = []
    if len(names) != len(first):
        names = ["?"] * len(first)  # unnamed; a tuple IN below names its own
    return _tuple_in_names(sql, names, positional=True)


_TUPLE_IN = re.compile(r"\(((?:\w+\.)?\w+(?:,\s*(?:\w+\.)?\w+)+)\)\s+IN\s+\((?:VALUES\s+)?(\(.*?\))\)", re.S)
_PLACEHOLDER = re.compile(r"\?|%\((\w+)\)s")


def _tuple_in_names(sql: str, names: list[str], *, positional: bool) -> list[str]:
    """Name the parameters of ``(a.x, a.y) IN (VALUES (?, ?), …)`` (SQLite) or ``IN ((%(p)s, …))``
    (PostgreSQL) after their columns
    (SQLAlchemy names a tuple's expanded parameters ``param_1_1_1`` …, which says nothing)."""
    names = list(names)
    for match in _TUPLE_IN.finditer(sql):
        columns = [c.strip().split(".")[-1] for c in match.group(1).split(",")]
        before = len(_PLACEHOLDER.findall(sql[:match.start(2)]))
        for n, placeholder in enumerate(_PLACEHOLDER.finditer(match.group(2))):
            column = columns[n % len(columns)]
            if positional:
                if before + n < len(names):
                    names[before + n] = column
            elif placeholder.group(1) in names:
                names[names.index(placeholder.group(1))] = column
    return names


def _plain(params: Any) -> Any:
    def value(v: Any) -> Any:
        return v.value if isinstance(v, Enum) else v
    if isinstance(params, dict):
        return {k: value(v) for k, v in params.items()}
    return tuple(value(v) for v in params)


def _base(name: str) -> str:
    return re.sub(r"(_\d+)+$", "", re.sub(r"__\d+$", "", name))


def _select_columns(sql: str) -> dict[str, int]:
    """``table.column`` → position in a generated ``SELECT a.x, b.y AS y_1 FROM …``."""
    head = re.match(r"\s*SELECT\s+(.*?)\s+FROM\s", sql, re.S)
    if not head:
        return {}
    return {part.strip().split(" AS ")[0].strip(): i for i, part in enumerate(head.group(1).split(","))}


def _is_fefo_select(sql: str) -> bool:
    columns = _select_columns(sql)
    return (sql.lstrip().startswith("SELECT") and "FROM balances JOIN lots" in sql
            and "lots.item_id =" in sql and "balances.quantity" in columns and "lots.expiry" in columns)


@dataclass
class Pick:
    balance_id: int
    lot_id: int
    before: int
    take: int


@dataclass
class Posting:
    """What the captured (reference) posting touched, to be replaced by the replayed one's."""

    item_id: int
    picks: list[Pick]
    posting_id: str
    since: dt.datetime  # timestamps at or after this are "now" in the captured posting


class ReplayError(RuntimeError):
    pass


class Replay:
    """The captured posting's statements, replayed for another item on a raw DBAPI connection."""

    def __init__(self, ds: DataSet, statements: list[Captured], reference: Posting) -> None:
        self.ds = ds
        self.statements = [s for s in statements if not s.after_commit]
        self.reference = reference
        self.positional = ds.dialect == "sqlite"
        if not any(_is_fefo_select(s.sql) for s in self.statements):
            raise ReplayError("the captured posting has no FEFO SELECT to read the lots from")
        for s in self.statements:
            if s.params and s.params[0] and not s.names:
                raise ReplayError(f"cannot name the parameters of: {s.sql[:120]}")
        self.unmapped_writes = 0
        self.plan = [self._plan(s) for s in self.statements]
        url = sa.engine.make_url(ds.url)
        if self.positional:
            self.conn: Any = sqlite3.connect(url.database, isolation_level=None, timeout=30)
            for pragma in ("PRAGMA foreign_keys = ON", "PRAGMA busy_timeout = 30000", "PRAGMA journal_mode = WAL"):
                self.conn.execute(pragma)
        else:
            import psycopg

            self.conn = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))

    def close(self) -> None:
        self.conn.close()

    # Which parameters change with the posting: (position or key, role).
    def _plan(self, s: Captured) -> list[list[tuple[Any, str]]]:
        ref = self.reference
        lots = [p.lot_id for p in ref.picks]
        balances = [p.balance_id for p in ref.picks]
        table = re.search(r"\bFROM (\w+)|^\s*UPDATE (\w+)|^\s*INSERT INTO (\w+)", s.sql)
        tables = [t for t in (table.groups() if table else ()) if t]
        main = tables[0] if tables else ""
        writes = re.match(r"\s*(UPDATE|INSERT|DELETE)", s.sql) is not None
        plans = []
        for params in s.params:
            values = list(params.values()) if isinstance(params, dict) else list(params)
            keys = list(params) if isinstance(params, dict) else list(range(len(values)))
            plan = []
            for key, name, value in zip(keys, s.names, values):
                base = _base(name)
                role = None
                if base == "posting_id" and value == ref.posting_id:
                    role = "posting"
                elif _is_now(value, ref.since):
                    role = "now"
                elif base == "item_id" and value == ref.item_id:
                    role = "item"
                elif base == "lot_id" and value in lots:
                    role = f"lot:{lots.index(value)}"
                elif base == "balances_id" and value in balances:
                    role = f"balance:{balances.index(value)}"
                elif base in ("pk", "id") and main in ("lots", "balances", "items"):
                    known = {"lots": lots, "balances": balances, "items": [ref.item_id]}[main]
                    if value in known:
                        role = {"lots": "lot", "balances": "balance", "items": "item"}[main]
                        role = role if role == "item" else f"{role}:{known.index(value)}"
                elif base == "quantity" and main == "balances" and s.sql.lstrip().startswith("UPDATE"):
                    role = "new_quantity"
                if role is not None:
                    plan.append((key, role))
            if writes and main not in ("balances", "movements", "lots") and not plan:
                self.unmapped_writes += 1
            plans.append(plan)
        return plans

    def post(self, item: StockItem) -> tuple[float, list[Pick]]:
        """One posting of ``item``: every statement, then COMMIT. Returns (seconds, picks)."""
        picks: list[Pick] = []
        posting_id = str(uuid.uuid4())
        cursor = self.conn.cursor()
        began = time.perf_counter()
        now_aware = dt.datetime.now(dt.timezone.utc)
        now_text = now_aware.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        try:
            for s, plans in zip(self.statements, self.plan):
                sets = []
                for params, plan in zip(s.params, plans):
                    if plan:
                        params = dict(params) if isinstance(params, dict) else list(params)
                        balance_key = None
                        for key, role in plan:
                            if role == "posting":
                                params[key] = posting_id
                            elif role == "now":
                                params[key] = now_text if isinstance(params[key], str) else now_aware
                            elif role == "item":
                                params[key] = item.item_id
                            elif role.startswith("lot:"):
                                params[key] = picks[int(role[4:])].lot_id
                            elif role.startswith("balance:"):
                                balance_key = int(role[8:])
                                params[key] = picks[balance_key].balance_id
                        for key, role in plan:
                            if role == "new_quantity":
                                if balance_key is None:
                                    raise ReplayError("a balance update without its balance")
                                pick = picks[balance_key]
                                params[key] = pick.before - pick.take
                        if not isinstance(params, dict):
                            params = tuple(params)
                    sets.append(params)
                if s.executemany:
                    cursor.executemany(s.sql, sets)
                elif sets and sets[0]:
                    cursor.execute(s.sql, sets[0])
                else:
                    cursor.execute(s.sql)
                rows = cursor.fetchall() if cursor.description is not None else None
                if rows is not None and _is_fefo_select(s.sql):
                    picks = self._allocate(s.sql, rows)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        finally:
            cursor.close()
        return time.perf_counter() - began, picks

    def _allocate(self, sql: str, rows: list[Any]) -> list[Pick]:
        c = _select_columns(sql)
        today = self.ds.today

        def expiry(row: Any) -> dt.date | None:
            e = row[c["lots.expiry"]]
            return dt.date.fromisoformat(e) if isinstance(e, str) else e

        usable = [r for r in rows if r[c["lots.status"]] == "available" and (expiry(r) is None or expiry(r) >= today)]
        usable.sort(key=lambda r: (expiry(r) is None, expiry(r) or dt.date.max, str(r[c["lots.received_at"]]),
                                   r[c["lots.id"]]))
        picks, left = [], QUANTITY
        for r in usable:
            if left == 0:
                break
            take = min(left, int(r[c["balances.quantity"]]))
            picks.append(Pick(r[c["balances.id"]], r[c["lots.id"]], int(r[c["balances.quantity"]]), take))
            left -= take
        if left or len(picks) != len(self.reference.picks):
            raise ReplayError(f"the replayed FEFO takes {len(picks)} lot(s), the captured posting "
                              f"{len(self.reference.picks)}; choose items whose first lot covers {QUANTITY}")
        return picks


def _is_now(value: Any, since: dt.datetime) -> bool:
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return aware >= since
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?", value):
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.timezone.utc) >= since
    return False


@dataclass
class PostingResult:
    service: Timing
    raw: Timing
    after_commit: Timing
    statements: int
    after_commit_statements: int
    unmapped_writes: int
    checked: str

    @property
    def ratio(self) -> float:
        return self.service.median / self.raw.median


def posting_bench(ds: DataSet, verbose: bool = False) -> tuple[Callable[[int], None], Callable[[], PostingResult]]:
    """Set up the posting figure on ``ds`` (capture, replay plan, warm-up); returns ``step(i)``,
    which times one service and one raw posting (in alternating order), and ``finish()``, which
    checks the touched balances and returns the figures (call it once, also after a failure)."""
    from stockpile import create_app
    from stockpile.inventory.models import Balance, Depot, Item

    # The application's own session factory (its session class and after-commit hooks, the
    # listeners create_app registers), bound to a fresh engine on the data set.
    app = create_app({"DATABASE_URL": ds.url, "SECRET_KEY": secrets.token_hex(16)})
    maker = app.extensions["stockpile.db"]
    engine = maker.kw["bind"]
    with maker() as session:
        depot = session.get(Depot, ds.depot_id)
        items = {i.id: i for i in session.scalars(sa.select(Item).where(Item.id.in_([s.item_id for s in ds.items])))}
        session.expunge_all()
    pool = ds.items[:]
    reference_item, service_items, raw_items = pool[0], pool[1::2], pool[2::2]
    recorder = Recorder(engine)
    touched: set[int] = set()

    def service_post(stock_item: StockItem, record: bool = False) -> tuple[float, float, list[Any]]:
        with maker() as session:
            session.info["timezone"] = "Europe/Oslo"
            recorder.committed_at = None
            recorder.active = record
            began = time.perf_counter()
            # As a POST request's session does (stockpile.db.Database.session): a writer from the
            # start (BEGIN IMMEDIATE on SQLite). The depot and item are handed over as loaded.
            begin_write(session)
            d = session.merge(depot, load=False)
            it = session.merge(items[stock_item.item_id], load=False)
            movements = inventory.issue(session, inventory.Context.now(None), depot=d, item=it,
                                        quantity=QUANTITY, recipient=ds.recipient,
                                        reference="bench/measure.py")
            session.commit()
            done = time.perf_counter()
            recorder.active = False
            committed = recorder.committed_at or done
            touched.update(m.lot_id for m in movements)
            return committed - began, done - committed, movements

    try:
        service_post(reference_item)  # the first posting of an item may differ (alerts opened)
        recorder.statements.clear()
        since = dt.datetime.now(dt.timezone.utc)
        _, _, movements = service_post(reference_item, record=True)
        with maker() as session:
            picks = []
            for m in movements:
                balance = session.scalar(sa.select(Balance).where(Balance.lot_id == m.lot_id, Balance.depot_id == m.depot_id,
                                                                  Balance.pool == m.pool))
                picks.append(Pick(balance.id, m.lot_id, balance.quantity - m.quantity, -m.quantity))
        captured = list(recorder.statements)
        recorder.stop_recording()
        if verbose:
            for n, st in enumerate(captured, start=1):
                say(f"     [{n}{' after commit' if st.after_commit else ''}] {' '.join(st.sql.split())[:400]}")
                say(f"         {st.params[0] if len(st.params) == 1 else st.params}"[:600])
        replay = Replay(ds, captured, Posting(reference_item.item_id, picks, movements[0].posting_id, since))
        if verbose:
            for n, (st, plan) in enumerate(zip(replay.statements, replay.plan), start=1):
                say(f"     replayed [{n}] {' '.join(st.sql.split())[:60]} … with fresh {plan}")
        service, raw, after = Timing(), Timing(), Timing()
        for j in range(1, 4):  # warm-up, not counted: connections, statement caches
            service_post(service_items[-j])
            touched.update(p.lot_id for p in replay.post(raw_items[-j])[1])
    except BaseException:
        recorder.close()
        raise

    def step(i: int) -> None:
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            if which == 0:
                posting, after_work, _ = service_post(service_items[i % len(service_items)])
                service.samples.append(posting)
                after.samples.append(after_work)
            else:
                took, raw_picks = replay.post(raw_items[i % len(raw_items)])
                raw.samples.append(took)
                touched.update(p.lot_id for p in raw_picks)

    def finish() -> PostingResult:
        try:
            replay.close()
            checked = check_balances(ds, touched)
        finally:
            recorder.close()
        return PostingResult(service, raw, after, len(replay.statements),
                             sum(1 for s in captured if s.after_commit), replay.unmapped_writes, checked)

    return step, finish


def check_balances(ds: DataSet, lot_ids: set[int]) -> str:
    """The touched lots' balances at FS-1-D against the sum of their movements."""
    from stockpile.inventory.models import Balance, Movement

    with so.Session(ds.engine) as session:
        ledger = dict(session.execute(
            sa.select(Movement.lot_id, sa.func.sum(Movement.quantity))
            .where(Movement.lot_id.in_(lot_ids), Movement.depot_id == ds.depot_id, Movement.pool == "operational")
            .group_by(Movement.lot_id)).all())
        books = dict(session.execute(
            sa.select(Balance.lot_id, Balance.quantity)
            .where(Balance.lot_id.in_(lot_ids), Balance.depot_id == ds.depot_id, Balance.pool == "operational")).all())
    wrong = [lot for lot in lot_ids if int(ledger.get(lot, 0)) != int(books.get(lot, 0)) or books.get(lot, 0) < 0]
    if wrong:
        raise SystemExit(f"balance differs from the ledger (or is negative) for lots {sorted(wrong)[:10]}")
    return f"{len(lot_ids)} touched balances equal their ledger"


# --- HTTP ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``gunicorn --workers N wsgi:app`` on a free port; stopped (process group) on exit."""

    def __init__(self, url: str, workers: int, log_dir: Path) -> None:
        self.url, self.workers = url, workers
        self.port = free_port()
        self.log_path = log_dir / f"gunicorn-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        env = dict(os.environ, DATABASE_URL=self.url, SECRET_KEY=secrets.token_hex(32),
                   STOCKPILE_TIMEZONE="Europe/Oslo")
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "gunicorn"), "--workers", str(self.workers), "--bind",
             f"127.0.0.1:{self.port}", "--timeout", "600", "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _children.append(self.proc)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if request(self.port, "GET", "/login")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.__exit__(None, None, None)
        raise SystemExit(f"gunicorn did not answer on port {self.port}:\n{tail}")

    def __exit__(self, *_exc: Any) -> None:
        if self.proc is not None:
            _stop(self.proc)


def request(port: int, method: str, path: str, *, headers: dict[str, str] | None = None,
            body: bytes | None = None, timeout: float = 600) -> tuple[int, bytes, float, list[str]]:
    """One request on a fresh connection: (status, body, seconds, Set-Cookie headers)."""
    began = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        took = time.perf_counter() - began
        return response.status, data, took, response.headers.get_all("Set-Cookie") or []
    finally:
        conn.close()


def _cookie(set_cookies: list[str], name: str = "session") -> str | None:
    for header in set_cookies:
        first = header.split(";", 1)[0]
        if first.startswith(name + "="):
            return first
    return None


def sign_in(port: int, who: Person) -> str:
    """A signed-in session cookie (``session=…``) through the login form."""
    status, page, _t, cookies = request(port, "GET", "/login")
    token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page) or \
        re.search(rb'value="([^"]+)"[^>]*name="csrf_token"', page)
    cookie = _cookie(cookies)
    if status != 200 or token is None or cookie is None:
        raise SystemExit(f"GET /login: {status}, no CSRF token or session cookie")
    form = urllib.parse.urlencode({"csrf_token": token.group(1).decode(), "email": who.email,
                                   "password": who.password or ""}).encode()
    status, _body, _t, cookies = request(port, "POST", "/login", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    signed = _cookie(cookies)
    if status not in (302, 303) or signed is None:
        raise SystemExit(f"signing in as {who.email} failed: {status}")
    return signed


class Http:
    def __init__(self, port: int) -> None:
        self.port = port
        self.failures: list[str] = []

    def get(self, path: str, *, token: str | None = None, cookie: str | None = None) -> float:
        headers = {"Authorization": f"Bearer {token}"} if token else {"Cookie": cookie or ""}
        status, body, took, _c = request(self.port, "GET", path, headers=headers)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:300]!r}")
        return took

    def issue(self, token: str, item: str, *, reference: str, key: str | None = None,
              timeout: float = 600) -> tuple[int, bytes, float]:
        body = json.dumps({"depot": DEPOT, "pool": "operational", "item": item, "quantity": QUANTITY,
                           "recipient": "bench/measure.py", "reference": reference}).encode()
        status, data, took, _c = request(self.port, "POST", "/api/v1/issues", body=body, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json",
            "Idempotency-Key": key or str(uuid.uuid4())}, timeout=timeout)
        return status, data, took


def warm(fn: Callable[[int], Any], times: int) -> None:
    for i in range(times):
        fn(i)


@dataclass
class LoadResult:
    seconds: float  # until the last answer arrived
    ok: int  # 2xx answers, all of them (each must have written one movement)
    in_window: int  # 2xx answers that arrived within the LOAD_SECONDS window
    insufficient: int
    errors: dict[str, int]
    client_cpu: float  # share of one core used by this process's client threads
    verify: str
    oversell: bool

    @property
    def rate(self) -> float:
        return self.in_window / LOAD_SECONDS


def measure_load(ds: DataSet, port: int, token: str, items: Sequence[StockItem]) -> LoadResult:
    from stockpile.inventory.models import Balance, Movement

    reference = f"bench/measure.py load {uuid.uuid4()}"
    lock = threading.Lock()
    counts = {"ok": 0, "in_window": 0, "insufficient": 0}
    errors: dict[str, int] = {}
    start = threading.Event()
    stop_at = [0.0]

    def client(n: int) -> None:
        # Each client its own items (shared only when the data set has fewer items than clients).
        mine = [s.code for s in items[n::LOAD_CLIENTS]] or [items[n % len(items)].code]
        http = Http(port)
        start.wait()
        i = 0
        while time.monotonic() < stop_at[0]:
            try:
                status, body, _t = http.issue(token, mine[i % len(mine)], reference=reference, timeout=120)
            except OSError as exc:
                status, body = 0, str(exc).encode()
            i += 1
            done = time.monotonic()
            with lock:
                if 200 <= status < 300:
                    counts["ok"] += 1
                    counts["in_window"] += done <= stop_at[0]
                elif status == 422 and b"insufficient_stock" in body:
                    counts["insufficient"] += 1
                else:
                    label = f"{status} {body[:80].decode(errors='replace')}"
                    errors[label] = errors.get(label, 0) + 1

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(LOAD_CLIENTS)]
    for t in threads:
        t.start()
    cpu0 = time.process_time()
    began = time.monotonic()
    stop_at[0] = began + LOAD_SECONDS
    start.set()
    for t in threads:
        t.join()
    seconds = time.monotonic() - began  # the window, and the answers still on their way at its end
    cpu = (time.process_time() - cpu0) / seconds
    with so.Session(ds.engine) as session:
        differences = inventory.verify(session)
        negative = session.scalar(sa.select(sa.func.count()).select_from(Balance).where(Balance.quantity < 0))
        written = session.scalar(sa.select(sa.func.count()).select_from(Movement).where(Movement.reference == reference))
    oversell = bool(differences) or bool(negative) or written != counts["ok"]
    text = (f"verify: {len(differences)} difference(s); {negative} negative balance(s); "
            f"{written} movement(s) for {counts['ok']} 2xx")
    return LoadResult(seconds, counts["ok"], counts["in_window"], counts["insufficient"], errors, cpu, text, oversell)


# --- nightly jobs -------------------------------------------------------------------------------

@dataclass
class NightlyResult:
    runs: list[dict[str, float]]  # per round: job name → seconds
    summaries: list[str]

    def total(self, round_: int) -> float:
        return sum(self.runs[round_].values())


def measure_nightly(url: str) -> NightlyResult:
    from stockpile import create_app, scheduler
    from stockpile.scheduler.models import JobOutcome

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": secrets.token_hex(16)})
    runs, summaries = [], []
    with app.app_context():
        rt = scheduler.runtime_for(app)
        for _round in range(2):
            times = {}
            for name in ("rotation", "alerts_scan"):
                began = time.perf_counter()
                run = scheduler.run_by_hand(rt, scheduler.job_named(name))
                times[name] = time.perf_counter() - began
                if run.outcome != JobOutcome.SUCCEEDED.value:
                    raise SystemExit(f"job {name} failed: {run.summary}\n{run.error}")
                summaries.append(f"{name}: {run.summary}")
            runs.append(times)
    return NightlyResult(runs, summaries)


# --- one data set, every figure -------------------------------------------------------------------

@dataclass
class Results:
    ds: DataSet
    posting: PostingResult | None = None
    http: dict[str, Timing] = field(default_factory=dict)
    load: LoadResult | None = None
    load_skipped: str | None = None
    nightly: NightlyResult | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Site:
    """One data set served by its own gunicorn, with the users' credentials for it."""

    res: Results
    http: Http
    supply_token: str
    coordinator_token: str
    coordinator: Person
    cookie: str | None = None

    @property
    def ds(self) -> DataSet:
        return self.res.ds

    def page_cookie(self) -> str:
        if self.cookie is None:
            self.cookie = sign_in(self.http.port, self.coordinator)
        return self.cookie


def _latency_figures(only: Sequence[str]) -> list[tuple[str, int, Callable[[Site, int], float]]]:
    """(name, warm-up requests, request i on a site) for each HTTP latency figure asked for."""
    def issue(site: Site, i: int) -> float:
        codes = site.ds.items
        status, body, took = site.http.issue(site.supply_token, codes[(i * 7) % len(codes)].code,
                                             reference="bench/measure.py api_issue")
        if status != 201:
            raise SystemExit(f"POST /api/v1/issues on {site.ds.url}: {status} {body[:300]!r}")
        return took

    def municipality(i: int, site: Site) -> str:
        found = site.ds.municipalities or ["K-0001"]
        return found[(i * 13 + 5) % len(found)]

    figures: list[tuple[str, int, Callable[[Site, int], float]]] = []
    if "api_issue" in only:
        figures.append(("api_issue", 8, issue))
    if "municipality" in only:
        figures += [
            ("municipality_api", 8, lambda site, i: site.http.get(
                f"/api/v1/coverage?organisation={municipality(i, site)}", token=site.coordinator_token)),
            ("municipality_duty", 8, lambda site, i: site.http.get(
                f"/duty/ppe?organisation={municipality(i, site)}", cookie=site.page_cookie())),
            ("municipality_page", 8, lambda site, i: site.http.get(
                f"/coverage?organisation={municipality(i, site)}", cookie=site.page_cookie())),
        ]
    if "supply_centre" in only:
        figures.append(("supply_centre", 4, lambda site, i: site.http.get(
            f"/api/v1/coverage?organisation={SUPPLY_CENTRE}", token=site.supply_token)))
    if "region" in only:
        figures += [
            ("region_api", 4, lambda site, i: site.http.get(
                f"/api/v1/coverage/summary?parent={REGION}", token=site.coordinator_token)),
            ("region_page", 4, lambda site, i: site.http.get(
                f"/coverage/region?parent={REGION}", cookie=site.page_cookie())),
        ]
    return figures


def measure(urls: Sequence[str], args: argparse.Namespace, log_dir: Path) -> list[Results]:
    """Every figure asked for on every data set. Latencies are sampled alternately on the data
    sets (each served by its own gunicorn, only one answering at a time), so a change in the
    machine's background load touches both histories alike; the rest runs one data set at a time."""
    only = args.only
    results = []
    for url in urls:
        ds = discover(url)
        res = Results(ds)
        res.notes.append(f"load average when starting on {url}: " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
        say(f"{url}: {ds.counts['organisations']} organisations, {ds.counts['items']} items, {ds.counts['lots']} lots, "
            f"{ds.counts['movements']} movements ({ds.counts['first_movement']} … {ds.counts['last_movement']}); "
            f"{len(ds.items)} items at {DEPOT} with a first lot of ≥ {MIN_LOT}; {len(ds.municipalities)} municipalities")
        results.append(res)

    if "posting" in only:
        say("posting, service vs raw SQL …")
        benches: list[tuple[Results, Callable[[int], None], Callable[[], PostingResult]]] = []
        try:
            for res in results:
                benches.append((res, *posting_bench(res.ds, args.show_sql)))
            began = time.monotonic()
            for i in range(args.samples):  # alternately on the data sets, as the latencies below
                if i >= args.min_samples and time.monotonic() - began > args.budget * len(benches):
                    break
                for k in (range(len(benches)) if i % 2 == 0 else reversed(range(len(benches)))):
                    benches[k][1](i)
        finally:
            for res, _step, finish in benches:
                res.posting = p = finish()
                say(f"   {res.ds.url}: service {p.service.text()}; raw {p.raw.text()}; ratio {p.ratio:.2f}×; after "
                    f"commit {p.after_commit.text()}; {p.statements} statements ({p.after_commit_statements} after "
                    f"commit); {p.checked}")

    latency = _latency_figures(only)
    if latency or "load" in only:
        with contextlib.ExitStack() as stack:
            sites = []
            for res in results:
                supply = person(res.ds, "supply_staff", SUPPLY_CENTRE, "supply")
                coordinator = person(res.ds, "coordinator", REGION, "coordinator")
                res.notes.append(f"users: {supply.email} (supply staff, {SUPPLY_CENTRE}), {coordinator.email} "
                                 f"(coordinator, {REGION})")
                server = stack.enter_context(Server(res.ds.url, LOAD_WORKERS, log_dir))
                sites.append(Site(res, Http(server.port), api_token(res.ds, supply.email),
                                  api_token(res.ds, coordinator.email), coordinator))
            for name, warm_count, fn in latency:
                say(f"{name} …")
                for site in sites:
                    warm(lambda i, site=site: fn(site, i), warm_count)
                timings = [Timing() for _ in sites]
                began = time.monotonic()
                for i in range(args.samples):
                    if i >= args.min_samples and time.monotonic() - began > args.budget * len(sites):
                        break
                    order = list(range(len(sites))) if i % 2 == 0 else list(reversed(range(len(sites))))
                    for k in order:
                        timings[k].samples.append(fn(sites[k], i))
                for site, timing in zip(sites, timings):
                    site.res.http[name] = timing
                    say(f"   {site.ds.url}: {timing.text()}")
            if "load" in only:
                for site in sites:
                    if site.ds.dialect != "postgresql":
                        site.res.load_skipped = "PostgreSQL only"
                        continue
                    say(f"{LOAD_CLIENTS} clients × {LOAD_SECONDS:.0f} s — {site.ds.url}")
                    warm(lambda i, site=site: site.http.issue(site.supply_token, site.ds.items[i].code,
                                                              reference="bench/measure.py warm"), 8)
                    site.res.load = lr = measure_load(site.ds, site.http.port, site.supply_token, site.ds.items)
                    say(f"   {lr.in_window} postings answered within {LOAD_SECONDS:.0f} s = {lr.rate:.1f}/s "
                        f"({lr.ok} in all, the last after {lr.seconds:.1f} s); errors {sum(lr.errors.values())} "
                        f"{lr.errors or ''}; insufficient stock {lr.insufficient}; client CPU {lr.client_cpu:.0%} "
                        f"of a core; {lr.verify}")

    if "nightly" in only:
        for res in results:
            say(f"nightly jobs, twice — {res.ds.url}")
            res.nightly = measure_nightly(res.ds.url)
            for n, times in enumerate(res.nightly.runs, start=1):
                say(f"   run {n}: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    return results


# --- the table -------------------------------------------------------------------------------------

@dataclass
class Row:
    figure: str
    target: str
    measured: list[str]  # per data set
    cost: list[float | None]  # what the 6y/3y ratio compares (higher is worse)
    met: list[bool | None]


def rows(results: list[Results]) -> list[Row]:
    out: list[Row] = []

    def add(figure: str, target: str, per: Callable[[Results], tuple[str, float | None, bool | None] | None]) -> None:
        values = [per(r) for r in results]
        if all(v is None for v in values):
            return
        out.append(Row(figure, target, [v[0] if v else "not measured" for v in values],
                       [v[1] if v else None for v in values], [v[2] if v else None for v in values]))

    def posting(r: Results) -> tuple[str, float, bool] | None:
        p = r.posting
        if p is None:
            return None
        return (f"{p.ratio:.2f}× (service {fmt_time(p.service.median)}, raw {fmt_time(p.raw.median)}, "
                f"medians of {p.service.n})", p.service.median, p.ratio <= 2.0)

    add("posting a withdrawal: service (`issue` + commit) vs raw SQL of its statements", "≤ 2.0×", posting)

    def after(r: Results) -> tuple[str, float, None] | None:
        p = r.posting
        if p is None:
            return None
        if p.after_commit_statements == 0 and p.after_commit.median < 0.0005:
            return "none: no work after the commit", None, None
        return p.after_commit.text(), p.after_commit.median, None

    add("… its after-commit work (alert evaluation), on its own", "(reported)", after)

    def latency(key: str, limit_ms: float) -> Callable[[Results], tuple[str, float, bool] | None]:
        def get(r: Results) -> tuple[str, float, bool] | None:
            t = r.http.get(key)
            return None if t is None else (t.text(), t.p95, t.p95 * 1000 < limit_ms)
        return get

    add("`POST /api/v1/issues` at FS-1, 1 client", "p95 < 50 ms", latency("api_issue", 50))

    def load(r: Results) -> tuple[str, float | None, bool | None] | None:
        if r.load_skipped:
            return f"— ({r.load_skipped})", None, None
        lr = r.load
        if lr is None:
            return None
        errors = sum(lr.errors.values()) + lr.insufficient
        return (f"{lr.rate:.1f} postings/s, {errors} errors, {'OVERSELL' if lr.oversell else '0 oversell'}",
                1 / lr.rate if lr.rate else float("inf"), lr.rate >= 200 and errors == 0 and not lr.oversell)

    add(f"{LOAD_CLIENTS} concurrent clients withdrawing (gunicorn {LOAD_WORKERS} workers, {LOAD_SECONDS:.0f} s)",
        "≥ 200 postings/s, 0 errors, 0 oversell", load)
    add("municipality: `GET /api/v1/coverage?organisation=K-…`", "p95 < 100 ms", latency("municipality_api", 100))
    add("municipality: PPE duty page `/duty/ppe?organisation=K-…`", "p95 < 100 ms", latency("municipality_duty", 100))
    add("municipality: coverage page `/coverage?organisation=K-…`", "p95 < 100 ms", latency("municipality_page", 100))
    add("supply centre, 3,000 items: `GET /api/v1/coverage?organisation=FS-1`", "p95 < 300 ms",
        latency("supply_centre", 300))
    add("region summary `GET /api/v1/coverage/summary?parent=SF`", "p95 < 300 ms", latency("region_api", 300))
    add("coordinator's region page `/coverage/region?parent=SF`", "p95 < 300 ms", latency("region_page", 300))

    def nightly(r: Results) -> tuple[str, float, bool] | None:
        n = r.nightly
        if n is None:
            return None
        second = n.runs[1]
        return (f"{n.total(1):.1f} s (rotation {second['rotation']:.1f} s + alerts_scan {second['alerts_scan']:.1f} s; "
                f"first run {n.total(0):.1f} s)", n.total(1), n.total(1) < 60)

    add("nightly `rotation` + `alerts_scan`, second run", "< 60 s", nightly)
    return out


def ratio_text(row: Row) -> tuple[str, bool | None]:
    if len(row.cost) < 2 or row.cost[0] is None or row.cost[1] is None or not row.cost[0]:
        return "—", None
    ratio = row.cost[1] / row.cost[0]
    return f"{ratio:.2f}", ratio <= 1.2


def met_text(row: Row, ratio_ok: bool | None) -> str:
    parts = []
    for label, met in zip(("3y", "6y"), row.met):
        if met is not None:
            parts.append(f"{label} {'yes' if met else 'NO'}")
    if ratio_ok is not None:
        parts.append(f"6y/3y {'yes' if ratio_ok else 'NO'}")
    return ", ".join(parts) if parts else "—"


def table(results: list[Results], markdown: bool) -> str:
    header = ["figure", "target", "measured (3 years)", "measured (6 years)", "ratio 6y/3y", "met?"]
    body = []
    ratios_ok: list[bool] = []
    for row in rows(results):
        ratio, ok = ratio_text(row)
        if ok is not None:
            ratios_ok.append(ok)
        measured = row.measured + ["—"] * (2 - len(row.measured))
        body.append([row.figure, row.target, measured[0], measured[1], ratio, met_text(row, ok)])
    if len(results) > 1:
        body.append(["every figure above with 6 years of history", "≤ 1.2× its 3-year value", "", "",
                     f"{sum(ratios_ok)} of {len(ratios_ok)} within", "yes" if ratios_ok and all(ratios_ok) else "NO"])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    lines = []
    for cells in body:
        lines.append(f"{cells[0]}\n    target {cells[1]} | 3y: {cells[2]} | 6y: {cells[3]} | 6y/3y: {cells[4]} "
                     f"| met? {cells[5]}")
    return "\n".join(lines)


# --- where and how -----------------------------------------------------------------------------------

def machine(results: list[Results]) -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    databases = []
    for r in results[:1]:
        if r.ds.dialect == "postgresql":
            with r.ds.engine.connect() as conn:
                databases.append(conn.scalar(sa.text("SELECT version()")).split(" on ")[0])
        else:
            databases.append(f"SQLite {sqlite3.sqlite_version}")
    commit, dirty = STARTED["commit"], STARTED["dirty"]
    changed = f" (the working tree had uncommitted changes to {', '.join(dirty)})" if dirty else ""
    lines = [
        f"date: {STARTED['date']} (start)",
        f"commit: {commit}{changed}",
        f"machine: {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {cpu}, {mem_kb / 1024 / 1024:.0f} GiB RAM",
        f"Python {platform.python_version()}, {', '.join(databases)}, SQLAlchemy {sa.__version__}",
        "command: " + " ".join(["bench/measure.py"] + sys.argv[1:]),
    ]
    for label, r in zip(("3 years", "6 years"), results):
        c = r.ds.counts
        lines.append(f"data set ({label}): {r.ds.url} — {c['organisations']} organisations, {c['items']} items, "
                     f"{c['lots']} lots, {c['movements']} movements from {c['first_movement']} to {c['last_movement']} "
                     f"({c['measure_movements']} of them posted by earlier measurements)")
    return lines


STARTED: dict[str, Any] = {}


def record_start() -> None:
    """The code being measured: HEAD and the files changed in the working tree, at the start."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    STARTED["date"] = dt.datetime.now().astimezone().isoformat(timespec="minutes")
    STARTED["commit"] = git("rev-parse", "--short", "HEAD")
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                            text=True).stdout
    STARTED["dirty"] = [line[3:] for line in status.splitlines() if line.strip()]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the 3-year data set")
    parser.add_argument("--url6", help="the 6-year data set (same kind of database)")
    parser.add_argument("--samples", type=int, default=50, help="samples per figure (default 50)")
    parser.add_argument("--min-samples", type=int, default=10,
                        help="fewest samples once a figure has used up its budget (default 10)")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="seconds one latency figure may take before it stops at --min-samples (default 120)")
    parser.add_argument("--only", default=",".join(FIGURES), help=f"comma-separated: {', '.join(FIGURES)}")
    parser.add_argument("--markdown", action="store_true", help="print the table (and setting) as Markdown")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--show-sql", action="store_true", help="print the captured statements of a posting")
    args = parser.parse_args()
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(sorted(unknown))}; choose from {', '.join(FIGURES)}")
    signal.signal(signal.SIGTERM, _on_signal)
    record_start()
    log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "stockpile-measure"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        results = measure([args.url] + ([args.url6] if args.url6 else []), args, log_dir)
    finally:
        _stop_children()
    setting = machine(results)
    notes = sorted({n for r in results for n in r.notes})
    extra = []
    for r in results:
        if r.posting is not None:
            p = r.posting
            extra.append(f"posting ({r.ds.url}): {p.statements} statements replayed per raw posting, "
                         f"{p.after_commit_statements} after the commit; {p.unmapped_writes} write(s) replayed "
                         f"unchanged (no id to map); {p.checked}")
        if r.load is not None:
            lr = r.load
            extra.append(f"load ({r.ds.url}): {lr.in_window} 2xx within the {LOAD_SECONDS:.0f} s window "
                         f"({lr.ok} in all, the last answered after {lr.seconds:.1f} s), errors {lr.errors or 0}, "
                         f"insufficient stock {lr.insufficient}; client threads used {lr.client_cpu:.0%} of one core; "
                         f"{lr.verify}")
        if r.nightly is not None:
            extra += [f"nightly ({r.ds.url}) {s}" for s in r.nightly.summaries[-2:]]
    if args.markdown:
        print(table(results, True))
        print()
        for line in setting + notes + extra:
            print(f"- {line}")
    else:
        print()
        for line in setting + notes + extra:
            print(line)
        print()
        print(table(results, False))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "setting": setting, "notes": notes + extra,
            "rows": [{"figure": r.figure, "target": r.target, "measured": r.measured, "cost": r.cost, "met": r.met}
                     for r in rows(results)]}, indent=2))


if __name__ == "__main__":
    main()
