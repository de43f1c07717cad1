"""FEFO allocation, worked by hand (DESIGN.md §5). Evaluation date: 2026-11-23."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from stockpile.errors import InsufficientStock, InvalidInput, LotExpired, LotNotUsable
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Balance, Lot, Movement
from tests import factories
from tests.factories import TODAY

D = dt.date


def at(day: dt.date, hour: int = 9) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.timezone.utc)


@pytest.fixture
def place(session):
    centre = factories.org(session)
    return factories.depot(session, centre), factories.item(session, category="consumable")


def issue(session, depot, item, quantity, **kw):
    moves = inventory.issue(session, factories.ctx(), depot=depot, item=item, quantity=quantity, **kw)
    return [(m.lot.lot_number, m.quantity) for m in moves]


def on_hand(session, depot, item) -> dict[str, int]:
    rows = session.execute(sa.select(Lot.lot_number, Balance.quantity).join(Balance.lot)
                           .where(Balance.depot_id == depot.id, Lot.item_id == item.id))
    return dict(rows.all())


def test_earliest_expiry_first_and_ties_broken_by_receipt_time(session, place):
    depot, item = place
    # A and B expire the same day; B was received first, so B goes before A. C expires first.
    factories.receive(session, depot, item, "A", D(2027, 3, 1), 30, occurred_at=at(D(2026, 10, 1)))
    factories.receive(session, depot, item, "B", D(2027, 3, 1), 30, occurred_at=at(D(2026, 9, 1)))
    factories.receive(session, depot, item, "C", D(2027, 1, 15), 20, occurred_at=at(D(2026, 11, 1)))

    assert issue(session, depot, item, 50) == [("C", -20), ("B", -30)]
    assert issue(session, depot, item, 10) == [("A", -10)]
    assert on_hand(session, depot, item) == {"A": 20, "B": 0, "C": 0}


def test_same_expiry_and_receipt_time_falls_back_to_lot_id(session, place):
    depot, item = place
    when = at(D(2026, 10, 1))
    factories.receive(session, depot, item, "FIRST", D(2027, 3, 1), 5, occurred_at=when)
    factories.receive(session, depot, item, "SECOND", D(2027, 3, 1), 5, occurred_at=when)
    assert issue(session, depot, item, 7) == [("FIRST", -5), ("SECOND", -2)]


def test_lot_expiring_today_is_issued_but_one_expired_yesterday_never(session, place):
    depot, item = place
    factories.receive(session, depot, item, "YESTERDAY", D(2026, 11, 22), 10, today=D(2026, 11, 1))
    factories.receive(session, depot, item, "TODAY", D(2026, 11, 23), 5)
    factories.receive(session, depot, item, "LATER", D(2027, 6, 1), 100)

    assert issue(session, depot, item, 8) == [("TODAY", -5), ("LATER", -3)]
    assert on_hand(session, depot, item)["YESTERDAY"] == 10


def test_quarantined_and_recalled_lots_are_skipped(session, place):
    depot, item = place
    for number, expiry in (("Q", D(2026, 12, 1)), ("R", D(2026, 12, 2)), ("OK", D(2027, 1, 1))):
        factories.receive(session, depot, item, number, expiry, 10)
    lots = {lot.lot_number: lot for lot in session.scalars(sa.select(Lot).where(Lot.item_id == item.id))}
    inventory.set_lot_status(session, factories.ctx(), lot=lots["Q"], status="quarantined", reason="damp boxes")
    inventory.set_lot_status(session, factories.ctx(), lot=lots["R"], status="recalled", reason="supplier recall")

    assert issue(session, depot, item, 4) == [("OK", -4)]
    with pytest.raises(InsufficientStock) as refused:
        issue(session, depot, item, 7)
    assert refused.value.details["available"] == 6
    assert "20 more are held" in refused.value.message


def test_minimum_remaining_shelf_life_is_honoured(session, place):
    depot, item = place
    factories.receive(session, depot, item, "SHORT", TODAY + dt.timedelta(days=10), 10)
    factories.receive(session, depot, item, "LONG", TODAY + dt.timedelta(days=40), 10)

    # The recipient wants 30 days left: SHORT (10 days) is passed over.
    assert issue(session, depot, item, 5, min_remaining_days=30) == [("LONG", -5)]
    # Exactly 10 days left is enough when 10 are demanded (expiry is inclusive).
    assert issue(session, depot, item, 5, min_remaining_days=10) == [("SHORT", -5)]
    with pytest.raises(InsufficientStock) as refused:
        issue(session, depot, item, 6, min_remaining_days=30)
    assert refused.value.details["available"] == 5


def test_lots_without_expiry_go_last(session, place):
    depot, _ = place
    equipment = factories.item(session, category="equipment", has_expiry=False)
    factories.receive(session, depot, equipment, "NOEXP", None, 5, occurred_at=at(D(2026, 1, 1)))
    factories.receive(session, depot, equipment, "DATED", D(2030, 1, 1), 5)
    assert issue(session, depot, equipment, 6) == [("DATED", -5), ("NOEXP", -1)]


def test_named_lot_override_is_recorded_with_its_reason(session, place):
    depot, item = place
    factories.receive(session, depot, item, "EARLY", D(2026, 12, 31), 10)
    factories.receive(session, depot, item, "LATE", D(2028, 1, 1), 10)

    moves = inventory.issue(session, factories.ctx(), depot=depot, item=item, quantity=3,
                            lot_number="LATE", override_reason="ward needs one lot for a trial")
    assert [(m.lot.lot_number, m.quantity, m.fefo_override, m.reason) for m in moves] == [
        ("LATE", -3, True, "ward needs one lot for a trial")]
    fefo_moves = inventory.issue(session, factories.ctx(), depot=depot, item=item, quantity=1)
    assert [(m.lot.lot_number, m.fefo_override) for m in fefo_moves] == [("EARLY", False)]


def test_named_lot_needs_a_reason_and_a_usable_lot(session, place):
    depot, item = place
    factories.receive(session, depot, item, "OLD", D(2026, 11, 20), 10, today=D(2026, 11, 1))
    factories.receive(session, depot, item, "HELD", D(2027, 5, 1), 10)
    held = session.scalar(sa.select(Lot).where(Lot.lot_number == "HELD"))
    inventory.set_lot_status(session, factories.ctx(), lot=held, status="quarantined", reason="check")

    with pytest.raises(InvalidInput) as no_reason:
        issue(session, depot, item, 1, lot_number="HELD")
    assert "override_reason" in no_reason.value.fields
    with pytest.raises(LotExpired):
        issue(session, depot, item, 1, lot_number="OLD", override_reason="x")
    with pytest.raises(LotNotUsable):
        issue(session, depot, item, 1, lot_number="HELD", override_reason="x")


def test_insufficient_stock_is_refused_with_the_facts_and_nothing_posted(session, place):
    depot, item = place
    factories.receive(session, depot, item, "A", D(2027, 1, 1), 30)
    factories.receive(session, depot, item, "B", D(2027, 2, 1), 10)
    before = session.scalar(sa.select(sa.func.count()).select_from(Movement))

    with pytest.raises(InsufficientStock) as refused:
        issue(session, depot, item, 41)
    error = refused.value
    assert error.code == "insufficient_stock"
    assert error.details["available"] == 40 and error.details["requested"] == 41
    assert [lot["lot_number"] for lot in error.details["lots"]] == ["A", "B"]
    assert "Only 40 usable" in error.message and "A: 30 (expires 2027-01-01)" in error.message
    assert session.scalar(sa.select(sa.func.count()).select_from(Movement)) == before
    assert on_hand(session, depot, item) == {"A": 30, "B": 10}


# --- rotation planning, worked by hand (DESIGN.md §5) ------------------------------------------

from fractions import Fraction  # noqa: E402

from stockpile.rotation.services import EmergencyLot, plan_rotation  # noqa: E402


def in_days(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


def lots(*specs):
    return [EmergencyLot(i, name, in_days(expires_in), quantity) for i, (name, expires_in, quantity) in enumerate(specs)]


def summary(plans):
    return [(p.lot.lot_number, p.rotate_by, p.finish_by, p.absorbable, p.at_risk) for p in plans]


def test_three_lots_scheduled_backwards_from_the_latest_expiry():
    # r = 10 a day, margin 28. C (300, expires +200): finish +172, start +142.
    # B (500, +150): finish min(+122, +142) = +122, start +72. A (400, +120): finish min(+92, +72)
    # = +72, start +32. FEFO order: A, B, C.
    plans = plan_rotation(lots(("A", 120, 400), ("B", 150, 500), ("C", 200, 300)), Fraction(10), TODAY)
    assert summary(plans) == [("A", in_days(32), in_days(72), 400, 0),
                              ("B", in_days(72), in_days(122), 500, 0),
                              ("C", in_days(142), in_days(172), 300, 0)]


def test_a_lot_that_cannot_be_absorbed_is_partly_at_risk():
    # A now holds 1000: finish +72, start 72 − 100 = −28 (overdue since 28 days); only 72 days
    # × 10 = 720 can be used from today, 280 are at risk.
    plans = plan_rotation(lots(("A", 120, 1000), ("B", 150, 500), ("C", 200, 300)), Fraction(10), TODAY)
    assert summary(plans)[0] == ("A", in_days(-28), in_days(72), 720, 280)
    assert "Only 720 of 1000" in plans[0].reason


def test_an_earlier_lot_squeezed_out_by_later_ones_is_all_at_risk():
    # B (2000, +100): finish +72, start −128 → 720 usable, 1280 at risk; A (+60) must finish by
    # today: nothing of it can be used in time.
    plans = plan_rotation(lots(("A", 60, 100), ("B", 100, 2000)), Fraction(10), TODAY)
    assert summary(plans) == [("A", in_days(-10), TODAY, 0, 100),
                              ("B", in_days(-128), in_days(72), 720, 1280)]


def test_a_smaller_margin_moves_every_date_later():
    plans = plan_rotation(lots(("A", 120, 400), ("B", 150, 500), ("C", 200, 300)), Fraction(10), TODAY,
                          margin_days=14)
    # C: finish +186, start +156; B: finish min(+136, +156) = +136, start +86; A: finish +86, start +46.
    assert [(p.rotate_by, p.finish_by) for p in plans] == [
        (in_days(46), in_days(86)), (in_days(86), in_days(136)), (in_days(156), in_days(186))]


def test_no_operational_use_puts_everything_at_risk_and_says_so():
    plans = plan_rotation(lots(("A", 120, 400), ("B", 150, 500)), None, TODAY)
    assert [(p.rotate_by, p.absorbable, p.at_risk) for p in plans] == [(None, 0, 400), (None, 0, 500)]
    assert all("No operational use" in p.reason for p in plans)


def test_fractional_starts_round_to_the_earlier_day_and_lots_without_expiry_are_left_alone():
    no_expiry = EmergencyLot(9, "PUMP", None, 5)
    plans = plan_rotation([no_expiry, *lots(("A", 60, 25))], Fraction(7, 2), TODAY)
    # finish +32, 25 / 3.5 = 7.14 days → start +24.86 → rotate by +24.
    assert summary(plans) == [("A", in_days(24), in_days(32), 25, 0)]
