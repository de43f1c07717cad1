"""The posting path: every stock change, its refusals, and the ledger it leaves behind."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError

from stockpile.errors import Conflict, InsufficientStock, InvalidInput, LotExpired, LotNotUsable
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Balance, Lot, LotEvent, Movement
from tests import factories
from tests.factories import TODAY

D = dt.date


@pytest.fixture
def place(session):
    centre = factories.org(session)
    return (factories.depot(session, centre), factories.depot(session, centre),
            factories.item(session, category="ppe", ppe_group="gloves"))


def balances(session, item) -> dict[tuple[str, str, str], int]:
    rows = session.execute(
        sa.select(Lot.lot_number, Balance.depot_id, Balance.pool, Balance.quantity)
        .join(Balance.lot).where(Lot.item_id == item.id, Balance.quantity != 0))
    return {(lot, str(depot), pool): qty for lot, depot, pool, qty in rows}


def count_movements(session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Movement))


def test_receipt_creates_the_lot_and_adds_to_it(session, place):
    depot, _, item = place
    user = factories.user(session, "supply_staff", depot.organisation)
    first = inventory.receive(session, factories.ctx(user), depot=depot, item=item, lot_number="L1",
                              expiry=D(2028, 1, 31), quantity=500, reference="DN-1")
    inventory.receive(session, factories.ctx(user), depot=depot, item=item, lot_number="L1",
                      expiry=D(2028, 1, 31), quantity=250, pool="emergency")
    lot = session.scalar(sa.select(Lot).where(Lot.lot_number == "L1"))
    assert (lot.expiry, lot.status) == (D(2028, 1, 31), "available")
    assert first[0].kind == "receipt" and first[0].recorded_by_id == user.id
    assert first[0].reference == "DN-1" and first[0].recorded_at.tzinfo is not None
    assert balances(session, item) == {("L1", str(depot.id), "operational"): 500,
                                       ("L1", str(depot.id), "emergency"): 250}


def test_receipt_refusals_post_nothing(session, place):
    depot, _, item = place
    factories.receive(session, depot, item, "L1", D(2028, 1, 31), 10)
    before = count_movements(session)
    with pytest.raises(LotExpired):
        factories.receive(session, depot, item, "OLD", D(2026, 11, 22), 10)
    with pytest.raises(InvalidInput) as missing:
        factories.receive(session, depot, item, "NOEXP", None, 10)
    assert "expiry" in missing.value.fields
    with pytest.raises(Conflict) as mismatch:
        factories.receive(session, depot, item, "L1", D(2028, 2, 1), 10)
    assert mismatch.value.code == "lot_expiry_mismatch"
    with pytest.raises(InvalidInput):
        factories.receive(session, depot, item, "L2", D(2028, 1, 1), 0)
    with pytest.raises(InvalidInput):
        factories.receive(session, depot, item, "L2", D(2028, 1, 1), 5, pool="cellar")
    assert count_movements(session) == before
    assert session.scalar(sa.select(sa.func.count()).select_from(Lot).where(Lot.lot_number == "OLD")) == 0


def test_receipt_expiring_today_is_accepted(session, place):
    depot, _, item = place
    assert factories.receive(session, depot, item, "TODAY", TODAY, 3)[0].quantity == 3


def test_recalled_lot_cannot_be_received_again(session, place):
    depot, _, item = place
    factories.receive(session, depot, item, "L1", D(2028, 1, 31), 10)
    lot = session.scalar(sa.select(Lot).where(Lot.lot_number == "L1"))
    inventory.set_lot_status(session, factories.ctx(), lot=lot, status="recalled", reason="recall")
    with pytest.raises(LotNotUsable):
        factories.receive(session, depot, item, "L1", D(2028, 1, 31), 10)


def test_transfer_posts_both_legs_together(session, place):
    a, b, item = place
    factories.receive(session, a, item, "E", D(2027, 1, 1), 10)
    factories.receive(session, a, item, "F", D(2027, 6, 1), 10)
    moves = inventory.transfer(session, factories.ctx(), from_depot=a, from_pool="operational",
                               to_depot=b, to_pool="emergency", item=item, quantity=15)
    assert [(m.lot.lot_number, m.depot_id, m.pool, m.quantity) for m in moves] == [
        ("E", a.id, "operational", -10), ("E", b.id, "emergency", 10),
        ("F", a.id, "operational", -5), ("F", b.id, "emergency", 5)]
    assert len({m.posting_id for m in moves}) == 1
    assert balances(session, item) == {("F", str(a.id), "operational"): 5,
                                       ("E", str(b.id), "emergency"): 10,
                                       ("F", str(b.id), "emergency"): 5}


def test_transfer_refusals(session, place):
    a, b, item = place
    factories.receive(session, a, item, "E", D(2027, 1, 1), 10)
    before = count_movements(session)
    with pytest.raises(InsufficientStock):
        inventory.transfer(session, factories.ctx(), from_depot=a, from_pool="operational", to_depot=b,
                           to_pool="operational", item=item, quantity=11)
    with pytest.raises(InsufficientStock):
        inventory.transfer(session, factories.ctx(), from_depot=a, from_pool="operational", to_depot=b,
                           to_pool="operational", item=item, quantity=11, lot_number="E")
    with pytest.raises(InvalidInput):
        inventory.transfer(session, factories.ctx(), from_depot=a, from_pool="operational", to_depot=a,
                           to_pool="operational", item=item, quantity=1)
    assert count_movements(session) == before


def test_count_adjusts_to_the_counted_quantity(session, place):
    depot, _, item = place
    factories.receive(session, depot, item, "L", D(2027, 1, 1), 100)
    down = inventory.adjust_to_count(session, factories.ctx(), depot=depot, pool="operational", item=item,
                                     lot_number="L", counted_quantity=97, reason="monthly count")
    assert [(m.kind, m.quantity, m.reason) for m in down] == [("adjustment", -3, "monthly count")]
    same = inventory.adjust_to_count(session, factories.ctx(), depot=depot, pool="operational", item=item,
                                     lot_number="L", counted_quantity=97, reason="recount")
    assert same == []
    # A lot found in a pool where the books had none.
    up = inventory.adjust_to_count(session, factories.ctx(), depot=depot, pool="emergency", item=item,
                                   lot_number="L", counted_quantity=4, reason="found on pallet")
    assert [m.quantity for m in up] == [4]
    with pytest.raises(InvalidInput):
        inventory.adjust_to_count(session, factories.ctx(), depot=depot, pool="operational", item=item,
                                  lot_number="L", counted_quantity=-1, reason="x")


def test_disposal_writes_off_and_cannot_exceed_the_lot(session, place):
    depot, _, item = place
    factories.receive(session, depot, item, "L", D(2026, 11, 30), 10)
    moves = inventory.dispose(session, factories.ctx(), depot=depot, pool="operational", item=item,
                              lot_number="L", quantity=4, reason="damaged")
    assert [(m.kind, m.quantity, m.reason) for m in moves] == [("disposal", -4, "damaged")]
    with pytest.raises(InsufficientStock) as refused:
        inventory.dispose(session, factories.ctx(), depot=depot, pool="operational", item=item,
                          lot_number="L", quantity=7, reason="expired")
    assert refused.value.details["available"] == 6
    with pytest.raises(InvalidInput):
        inventory.dispose(session, factories.ctx(), depot=depot, pool="operational", item=item,
                          lot_number="L", quantity=1, reason="lost it")


def test_expired_stock_can_still_be_disposed(session, place):
    depot, _, item = place
    factories.receive(session, depot, item, "L", D(2026, 11, 1), 10, today=D(2026, 10, 1))
    moves = inventory.dispose(session, factories.ctx(), depot=depot, pool="operational", item=item,
                              lot_number="L", quantity=10, reason="expired")
    assert moves[0].quantity == -10


def test_reversal_undoes_a_movement_once(session, place):
    depot, _, item = place
    issued = None
    factories.receive(session, depot, item, "L", D(2027, 1, 1), 10)
    issued = inventory.issue(session, factories.ctx(), depot=depot, item=item, quantity=4,
                             recipient="Ward 3")[0]
    back = inventory.reverse(session, factories.ctx(), movement=issued, reason="issued to wrong ward")
    assert [(m.kind, m.quantity, m.reversal_of_id, m.recipient) for m in back] == [
        ("issue", 4, issued.id, "Ward 3")]
    assert balances(session, item) == {("L", str(depot.id), "operational"): 10}
    with pytest.raises(Conflict) as twice:
        inventory.reverse(session, factories.ctx(), movement=issued, reason="again")
    assert twice.value.code == "already_reversed"
    with pytest.raises(Conflict) as of_reversal:
        inventory.reverse(session, factories.ctx(), movement=back[0], reason="undo the undo")
    assert of_reversal.value.code == "is_reversal"
    with pytest.raises(InvalidInput):
        inventory.reverse(session, factories.ctx(), movement=issued, reason=" ")


def test_reversing_a_receipt_whose_stock_has_left_is_refused(session, place):
    depot, _, item = place
    receipt = factories.receive(session, depot, item, "L", D(2027, 1, 1), 10)[0]
    inventory.issue(session, factories.ctx(), depot=depot, item=item, quantity=6)
    before = count_movements(session)
    with pytest.raises(InsufficientStock):
        inventory.reverse(session, factories.ctx(), movement=receipt, reason="wrong lot")
    assert count_movements(session) == before


def test_reversing_one_leg_of_a_transfer_reverses_both(session, place):
    a, b, item = place
    factories.receive(session, a, item, "L", D(2027, 1, 1), 10)
    legs = inventory.transfer(session, factories.ctx(), from_depot=a, from_pool="operational",
                              to_depot=b, to_pool="operational", item=item, quantity=6)
    back = inventory.reverse(session, factories.ctx(), movement=legs[1], reason="wrong depot")
    assert sorted((m.depot_id, m.quantity) for m in back) == sorted([(a.id, 6), (b.id, -6)])
    assert balances(session, item) == {("L", str(a.id), "operational"): 10}


def test_lot_status_and_shelf_life_extension_are_recorded(session, place):
    depot, _, item = place
    user = factories.user(session, "supply_staff", depot.organisation)
    factories.receive(session, depot, item, "L", D(2027, 1, 31), 10)
    lot = session.scalar(sa.select(Lot).where(Lot.lot_number == "L"))
    inventory.set_lot_status(session, factories.ctx(user), lot=lot, status="quarantined", reason="wet")
    with pytest.raises(Conflict):
        inventory.set_lot_status(session, factories.ctx(user), lot=lot, status="quarantined", reason="wet")
    inventory.extend_shelf_life(session, factories.ctx(user), lot=lot, new_expiry=D(2028, 1, 31),
                                reason="stability test 2026-11")
    inventory.extend_shelf_life(session, factories.ctx(user), lot=lot, new_expiry=D(2028, 7, 31),
                                reason="second test")
    assert (lot.expiry, lot.original_expiry) == (D(2028, 7, 31), D(2027, 1, 31))
    events = session.scalars(sa.select(LotEvent).where(LotEvent.lot_id == lot.id).order_by(LotEvent.id)).all()
    assert [(e.kind, e.old_value, e.new_value, e.recorded_by_id) for e in events] == [
        ("status", "available", "quarantined", user.id),
        ("extension", "2027-01-31", "2028-01-31", user.id),
        ("extension", "2028-01-31", "2028-07-31", user.id)]
    with pytest.raises(InvalidInput):
        inventory.extend_shelf_life(session, factories.ctx(user), lot=lot, new_expiry=D(2028, 1, 1),
                                    reason="earlier")
    # The printed expiry still identifies the lot on a later delivery.
    assert factories.receive(session, depot, item, "L", D(2027, 1, 31), 1)[0].quantity == 1


def test_the_database_refuses_to_edit_or_delete_movements(session, place):
    depot, _, item = place
    movement = factories.receive(session, depot, item, "L", D(2027, 1, 1), 10)[0]
    for statement in (sa.update(Movement).where(Movement.id == movement.id).values(quantity=99),
                      sa.delete(Movement).where(Movement.id == movement.id)):
        savepoint = session.begin_nested()
        with pytest.raises(DatabaseError, match="append-only"):
            session.execute(statement)
        savepoint.rollback()
    assert session.get(Movement, movement.id).quantity == 10


def test_verify_finds_a_balance_that_disagrees_with_the_ledger(session, place):
    depot, _, item = place
    factories.receive(session, depot, item, "L", D(2027, 1, 1), 10)
    balance = session.scalar(sa.select(Balance).join(Balance.lot).where(Lot.lot_number == "L"))
    assert inventory.verify(session) == []
    session.execute(sa.update(Balance).where(Balance.id == balance.id).values(quantity=12))
    found = inventory.verify(session)
    assert [(d.lot_id, d.depot_id, d.pool, d.balance, d.ledger) for d in found] == [
        (balance.lot_id, depot.id, "operational", 12, 10)]
    session.execute(sa.update(Balance).where(Balance.id == balance.id).values(quantity=10))


def test_balances_cannot_go_negative_in_the_database(session, place):
    depot, _, item = place
    factories.receive(session, depot, item, "L", D(2027, 1, 1), 10)
    savepoint = session.begin_nested()
    with pytest.raises(DatabaseError):
        session.execute(sa.update(Balance).values(quantity=-1))
    savepoint.rollback()


def test_stock_card_runs_the_balance(session, place):
    depot, other, item = place
    factories.receive(session, depot, item, "L", D(2027, 1, 1), 10)
    inventory.issue(session, factories.ctx(), depot=depot, item=item, quantity=3)
    inventory.transfer(session, factories.ctx(), from_depot=depot, from_pool="operational", to_depot=other,
                       to_pool="operational", item=item, quantity=2)
    card = inventory.stock_card(session, item=item, organisation_ids=None, depot=depot)
    assert [(m.kind, m.quantity, running) for m, running in card] == [
        ("receipt", 10, 10), ("issue", -3, 7), ("transfer", -2, 5)]
