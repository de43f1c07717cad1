"""Random sequences of postings never break the ledger (hypothesis).

Each example runs receipts, issues, transfers, counts, disposals and reversals through the
services against two depots and two pools, mirrors what *should* have happened in a plain dict,
and checks after every step: no balance below zero, balances equal the mirror, and ``verify``
(balance = sum of movements) finds nothing. Refused postings must leave everything unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockpile.errors import DomainError
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Balance, Lot, Movement
from tests import factories

LOTS = {"A": dt.date(2027, 1, 1), "B": dt.date(2027, 1, 1), "C": dt.date(2028, 6, 30)}
POOLS = ["operational", "emergency"]

quantities = st.integers(min_value=1, max_value=60)
places = st.tuples(st.integers(0, 1), st.sampled_from(POOLS))
operations = st.one_of(
    st.tuples(st.just("receive"), places, st.sampled_from(sorted(LOTS)), quantities),
    st.tuples(st.just("issue"), places, quantities),
    st.tuples(st.just("transfer"), places, places, quantities, st.sampled_from([None, *sorted(LOTS)])),
    st.tuples(st.just("count"), places, st.sampled_from(sorted(LOTS)), st.integers(0, 80)),
    st.tuples(st.just("dispose"), places, st.sampled_from(sorted(LOTS)), quantities),
    st.tuples(st.just("reverse"), st.integers(0, 1000)),
)


def _apply(session, depots, item, op) -> None:
    ctx = factories.ctx()
    kind = op[0]
    if kind == "receive":
        (d, pool), lot, qty = op[1:]
        inventory.receive(session, ctx, depot=depots[d], item=item, lot_number=lot,
                          expiry=LOTS[lot], quantity=qty, pool=pool)
    elif kind == "issue":
        (d, pool), qty = op[1:]
        inventory.issue(session, ctx, depot=depots[d], pool=pool, item=item, quantity=qty)
    elif kind == "transfer":
        (fd, fp), (td, tp), qty, lot = op[1:]
        inventory.transfer(session, ctx, from_depot=depots[fd], from_pool=fp, to_depot=depots[td],
                           to_pool=tp, item=item, quantity=qty, lot_number=lot)
    elif kind == "count":
        (d, pool), lot, counted = op[1:]
        inventory.adjust_to_count(session, ctx, depot=depots[d], pool=pool, item=item, lot_number=lot,
                                  counted_quantity=counted, reason="count")
    elif kind == "dispose":
        (d, pool), lot, qty = op[1:]
        inventory.dispose(session, ctx, depot=depots[d], pool=pool, item=item, lot_number=lot,
                          quantity=qty, reason="damaged")
    else:
        ids = session.scalars(sa.select(Movement.id).order_by(Movement.id)).all()
        if ids:
            movement = session.get(Movement, ids[op[1] % len(ids)])
            inventory.reverse(session, ctx, movement=movement, reason="mistake")


def _book(session, item) -> Counter:
    rows = session.execute(sa.select(Balance.lot_id, Balance.depot_id, Balance.pool, Balance.quantity)
                           .join(Balance.lot).where(Lot.item_id == item.id))
    return Counter({(lot, depot, pool): qty for lot, depot, pool, qty in rows if qty})


def _ledger(session, item) -> Counter:
    rows = session.execute(sa.select(Movement.lot_id, Movement.depot_id, Movement.pool, Movement.quantity)
                           .join(Movement.lot).where(Lot.item_id == item.id))
    total: Counter = Counter()
    for lot, depot, pool, qty in rows:
        total[(lot, depot, pool)] += qty
    return +total


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations, min_size=1, max_size=25))
def test_random_postings_keep_the_ledger_and_balances_in_step(session, ops):
    example = session.begin_nested()  # each example starts from an empty ledger
    try:
        centre = factories.org(session)
        depots = [factories.depot(session, centre), factories.depot(session, centre)]
        item = factories.item(session, category="consumable")
        refused = 0
        for op in ops:
            before = _book(session, item)
            step = session.begin_nested()
            try:
                _apply(session, depots, item, op)
                step.commit()
            except DomainError:
                step.rollback()
                refused += 1
                assert _book(session, item) == before, f"a refused {op[0]} changed balances"
            book = _book(session, item)
            assert all(qty >= 0 for qty in book.values()), f"negative balance after {op}"
            assert book == _ledger(session, item), f"balances differ from the ledger after {op}"
            assert inventory.verify(session) == []
    finally:
        example.rollback()
