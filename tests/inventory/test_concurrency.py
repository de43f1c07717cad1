"""Concurrent withdrawals against the same stock: the posting path's locks hold.

20 threads each withdraw 7 units from a lot of 100: exactly 14 succeed, 6 are refused with
``insufficient_stock``, the balance ends at 100 − 14 × 7 = 2 and never goes below, and no deadlock or
serialisation error surfaces. On PostgreSQL this exercises ``SELECT … FOR UPDATE`` on the
balance rows; on SQLite, ``BEGIN IMMEDIATE``. These tests commit, so they clean up after
themselves, on databases of their own, instead of relying on the rolled-back test transaction.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.db import begin_write, make_engine, upgrade
from stockpile.errors import InsufficientStock
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Balance, Movement
from tests import factories

THREADS, EACH, STOCK = 20, 7, 100


def _withdraw_concurrently(url: sa.URL) -> tuple[Counter, int, list[BaseException]]:
    # Every thread holds its own connection at the barrier: the pool must have room for all.
    engine = make_engine(url.render_as_string(hide_password=False), pool_size=THREADS + 2)
    maker = so.sessionmaker(engine, expire_on_commit=False)
    with maker() as session:
        centre = factories.org(session)
        depot = factories.depot(session, centre)
        item = factories.item(session, category="consumable")
        factories.receive(session, depot, item, "LOT-1", dt.date(2030, 1, 1), STOCK)
        session.commit()
        depot_id, item_id = depot.id, item.id

    barrier = threading.Barrier(THREADS, timeout=60)
    outcomes: Counter = Counter()
    unexpected: list[BaseException] = []
    lock = threading.Lock()

    def withdraw() -> None:
        barrier.wait()
        with maker() as session:
            # As a web request that records stock does: take the write lock first (SQLite's
            # BEGIN IMMEDIATE; a no-op on PostgreSQL, where the balance rows are locked).
            begin_write(session)
            depot = session.get(inventory.Depot, depot_id)
            item = session.get(inventory.Item, item_id)
            try:
                inventory.issue(session, factories.ctx(), depot=depot, item=item, quantity=EACH)
                session.commit()
                outcome = "posted"
            except InsufficientStock:
                session.rollback()
                outcome = "insufficient_stock"
            except BaseException as exc:  # a deadlock or lock timeout would land here
                session.rollback()
                with lock:
                    unexpected.append(exc)
                return
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=withdraw) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    with maker() as session:
        balance = session.scalar(sa.select(Balance.quantity).where(Balance.depot_id == depot_id))
        ledger = session.scalar(sa.select(sa.func.sum(Movement.quantity)).where(Movement.depot_id == depot_id))
        assert ledger == balance
        assert inventory.verify(session) == []
    engine.dispose()
    return outcomes, balance, unexpected


@pytest.mark.postgres
def test_concurrent_withdrawals_on_postgresql(postgres_engine):
    outcomes, balance, unexpected = _withdraw_concurrently(postgres_engine.url)
    assert unexpected == []
    assert outcomes == Counter({"posted": 14, "insufficient_stock": 6})
    assert balance == STOCK - 14 * EACH == 2


def test_concurrent_withdrawals_on_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'concurrency.sqlite3'}")
    upgrade(engine)
    engine.dispose()
    outcomes, balance, unexpected = _withdraw_concurrently(engine.url)
    assert unexpected == []
    assert outcomes == Counter({"posted": 14, "insufficient_stock": 6})
    assert balance == STOCK - 14 * EACH == 2
