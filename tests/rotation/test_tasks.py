"""Rotation from the database: the plan, its tasks, carrying one out, and the swap at receipt."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from stockpile.coverage import services as coverage
from stockpile.errors import Conflict
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Balance, Lot, Movement
from stockpile.rotation import services as rotation
from stockpile.rotation.models import RotationTask
from tests import factories
from tests.factories import TODAY


def in_days(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


@pytest.fixture
def centre(session):
    """A supply centre using 70 tubes a week (10 a day) with three emergency lots (A, B, C) and
    two municipalities using tubes too, with different coverage."""
    org = factories.org(session, "FS", "supply_centre")
    depot = factories.depot(session, org, "FS-D")
    tube = factories.item(session, "TUBE", "consumable")
    ctx = factories.ctx()
    coverage.set_manual_baseline(session, ctx, organisation=org, item=tube, weekly_use=70)
    for lot, expires_in, quantity in (("A", 120, 1000), ("B", 150, 500), ("C", 200, 300)):
        factories.receive(session, depot, tube, lot, in_days(expires_in), quantity, pool="emergency")
    factories.receive(session, depot, tube, "OP", in_days(400), 50)
    for code, weekly, stock in (("LOW", 7, 10), ("HIGH", 14, 1000)):
        user = factories.org(session, code, "municipality")
        coverage.set_manual_baseline(session, ctx, organisation=user, item=tube, weekly_use=weekly)
        factories.receive(session, factories.depot(session, user), tube, f"{code}-1", in_days(500), stock)
    return org, depot, tube


def test_plan_from_the_ledger_with_suggestions_for_what_is_at_risk(session, centre):
    org, depot, tube = centre
    [plan] = rotation.rotation_plan(session, [org], today=TODAY)
    assert plan.daily_use == 10 and plan.at_risk == 280
    lots = {p.lot.lot_number: p for p in plan.lots}
    # Worked in tests/rotation/test_services.py: A overdue since 28 days, 720 usable, 280 at risk.
    assert (lots["A"].plan.rotate_by, lots["A"].plan.at_risk, lots["A"].state(TODAY)) == (in_days(-28), 280, "overdue")
    assert (lots["B"].plan.rotate_by, lots["B"].state(TODAY)) == (in_days(72), "planned")
    # A expires in 120 days (121 days of use): LOW (10 in stock, 1 a day → 10 days) comes first
    # and can take 121; HIGH (1000 at 2 a day → 500 days) the remaining 159.
    assert [(s.action, s.organisation.code if s.organisation else None, s.quantity)
            for s in lots["A"].suggestions] == [("transfer", "LOW", 121), ("transfer", "HIGH", 159)]
    assert lots["B"].suggestions == ()


def test_tasks_are_created_updated_and_cancelled_from_the_plan(session, centre):
    org, depot, tube = centre
    assert rotation.sync_tasks(session, today=TODAY) == {"created": 3, "updated": 0, "cancelled": 0}
    assert rotation.sync_tasks(session, today=TODAY) == {"created": 0, "updated": 0, "cancelled": 0}
    tasks = {t.lot.lot_number: t for t in session.scalars(sa.select(RotationTask))}
    assert {n: (t.state, t.quantity, t.at_risk) for n, t in tasks.items()} == {
        "A": ("overdue", 1000, 280), "B": ("planned", 500, 0), "C": ("planned", 300, 0)}
    # 70 days on, B's rotate-by date (+72) falls within the week: due.
    assert rotation.sync_tasks(session, today=in_days(70))["updated"] >= 1
    assert tasks["B"].state == "due"
    # C leaves the emergency pool: its task is cancelled.
    inventory.transfer(session, factories.ctx(), from_depot=depot, from_pool="emergency", to_depot=depot,
                       to_pool="operational", item=tube, quantity=300, lot_number="C")
    assert rotation.sync_tasks(session, today=TODAY)["cancelled"] == 1
    assert tasks["C"].state == "cancelled"


def test_completing_a_task_moves_the_lot_into_daily_use_through_the_ledger(session, centre):
    org, depot, tube = centre
    rotation.sync_tasks(session, today=TODAY)
    task = session.scalar(sa.select(RotationTask).join(RotationTask.lot).where(Lot.lot_number == "B"))
    user = factories.user(session, "supply_staff", org)
    moves = rotation.complete_task(session, factories.ctx(user), task=task)
    assert sorted((m.pool, m.quantity) for m in moves) == [("emergency", -500), ("operational", 500)]
    assert {m.posting_id for m in moves} == {task.posting_id}
    assert (task.state, task.completed_by_id) == ("done", user.id)
    assert all(m.reference == f"Rotation task {task.id}" for m in moves)
    with pytest.raises(Conflict):
        rotation.complete_task(session, factories.ctx(user), task=task)
    # Done tasks stay done when the plan is refreshed.
    rotation.sync_tasks(session, today=TODAY)
    assert task.state == "done"


def test_no_operational_use_leaves_every_lot_at_risk(session, centre):
    org, depot, _ = centre
    mask = factories.item(session, "MASK", "ppe", ppe_group="face_masks")
    factories.receive(session, depot, mask, "M1", in_days(300), 100, pool="emergency")
    plans = {p.item.code: p for p in rotation.rotation_plan(session, [org], today=TODAY)}
    assert plans["MASK"].daily_use is None and plans["MASK"].at_risk == 100
    assert "No operational use" in plans["MASK"].lots[0].plan.reason
    assert "No baseline" in plans["MASK"].baseline_note


def test_swap_at_receipt_is_one_transaction(session, centre):
    org, depot, tube = centre
    before = session.scalar(sa.select(sa.func.count()).select_from(Movement))
    moves = inventory.receive_with_swap(session, factories.ctx(), depot=depot, item=tube, lot_number="FRESH",
                                       expiry=in_days(900), quantity=400)
    kinds = [(m.kind, m.lot.lot_number, m.pool, m.quantity) for m in moves]
    # FRESH into emergency; the oldest emergency lot A (400 of its 1000) out to daily use.
    assert kinds == [("receipt", "FRESH", "emergency", 400), ("transfer", "A", "emergency", -400),
                     ("transfer", "A", "operational", 400)]
    assert session.scalar(sa.select(sa.func.count()).select_from(Movement)) == before + 3


def test_a_refused_swap_leaves_nothing_behind(session):
    org = factories.org(session, "EMPTY", "supply_centre")
    depot = factories.depot(session, org)
    tube = factories.item(session, "TUBE", "consumable")
    savepoint = session.begin_nested()
    with pytest.raises(Conflict) as refused:
        inventory.receive_with_swap(session, factories.ctx(), depot=depot, item=tube, lot_number="FRESH",
                                   expiry=in_days(900), quantity=400)
    savepoint.rollback()
    assert refused.value.code == "nothing_to_swap"
    assert session.scalar(sa.select(sa.func.count()).select_from(Movement)) == 0
    assert session.scalar(sa.select(sa.func.count()).select_from(Balance)) == 0



def test_the_full_sync_cancels_tasks_of_an_organisation_whose_last_emergency_lot_has_gone(session, centre):
    org, depot, tube = centre
    rotation.sync_tasks(session, today=TODAY)
    for lot in ("A", "B", "C"):
        inventory.transfer(session, factories.ctx(), from_depot=depot, from_pool="emergency", to_depot=depot,
                           to_pool="operational", item=tube, quantity={"A": 1000, "B": 500, "C": 300}[lot],
                           lot_number=lot)
    assert rotation.sync_tasks(session, today=TODAY)["cancelled"] == 3
