"""Each alert rule raised and resolved on a worked example; deduplication, re-opening,
acknowledgement kept across scans; and the alert opened by the posting that caused it."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.coverage import services as coverage
from stockpile import HOOKS
from stockpile.alerts import services as alerts
from stockpile.alerts.models import Alert, AlertRule
from stockpile.db import Session
from stockpile.errors import Conflict
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Balance, Depot, Item, Lot
from stockpile.rotation import services as rotation
from stockpile.rotation.models import RotationTask
from tests import factories
from tests.conftest import counted
from tests.factories import TODAY


def in_days(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


def noon(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.timezone.utc)


def open_rules(session, org) -> dict[str, Alert]:
    return {a.rule: a for a in session.scalars(sa.select(Alert).where(Alert.organisation_id == org.id,
                                                                      Alert.state != "resolved"))}


@pytest.fixture
def centre(session):
    org = factories.org(session, "FS", "supply_centre")
    depot = factories.depot(session, org, "FS-D")
    tube = factories.item(session, "TUBE", "consumable")
    coverage.set_manual_baseline(session, factories.ctx(), organisation=org, item=tube, weekly_use=70,
                                  valid_from=in_days(-30))
    return org, depot, tube


def scan(session, org, today=TODAY):
    return alerts.evaluate(session, [org], today=today)


def test_coverage_below_min_opens_and_resolves_when_stock_is_put_right(session, centre):
    org, depot, tube = centre
    factories.receive(session, depot, tube, "L1", in_days(400), 150)  # 15 days < 21
    assert scan(session, org)["opened"] == 1
    alert = open_rules(session, org)["coverage_below_min"]
    assert alert.severity == "critical" and "15 days of coverage, below the minimum of 21" in alert.message
    assert "130 units short" in alert.message
    factories.receive(session, depot, tube, "L2", in_days(400), 200)  # 35 days: ok
    assert scan(session, org)["resolved"] == 1
    assert alert.state == "resolved" and alert.resolved_at is not None
    assert [e.kind for e in alert.events] == ["opened", "resolved"]


def test_repeated_scans_deduplicate_and_a_returning_condition_reopens(session, centre):
    org, depot, tube = centre
    factories.receive(session, depot, tube, "L1", in_days(400), 150)
    scan(session, org)
    first = open_rules(session, org)["coverage_below_min"]
    assert scan(session, org) == {"opened": 0, "reopened": 0, "resolved": 0, "seen": 1}
    assert session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 1
    factories.receive(session, depot, tube, "L2", in_days(400), 200)
    scan(session, org)
    inventory.issue(session, factories.ctx(), depot=depot, item=tube, quantity=300)
    assert scan(session, org)["reopened"] == 1
    assert first.state == "open" and [e.kind for e in first.events] == ["opened", "resolved", "reopened"]


def test_acknowledgement_is_kept_across_scans_until_the_condition_clears(session, centre):
    org, depot, tube = centre
    user = factories.user(session, "supply_staff", org)
    factories.receive(session, depot, tube, "L1", in_days(400), 150)
    scan(session, org)
    alert = open_rules(session, org)["coverage_below_min"]
    alerts.acknowledge(session, alert, user_id=user.id, comment="Order placed, arrives Friday")
    scan(session, org)
    assert alert.state == "acknowledged"
    assert (alert.events[-1].kind, alert.events[-1].user_id, alert.events[-1].comment) == (
        "acknowledged", user.id, "Order placed, arrives Friday")
    with pytest.raises(Conflict):
        alerts.acknowledge(session, alert, user_id=user.id)


def test_no_baseline_rule(session, centre):
    org, depot, _ = centre
    filt = factories.item(session, "FILTER", "consumable")
    factories.receive(session, depot, filt, "F1", in_days(400), 10)
    scan(session, org)
    assert "no baseline of normal use" in open_rules(session, org)["no_baseline"].message
    coverage.set_manual_baseline(session, factories.ctx(), organisation=org, item=filt, weekly_use=1)
    scan(session, org)
    assert "no_baseline" not in open_rules(session, org)


def test_coverage_projected_to_fall_below_the_minimum(session, centre):
    org, depot, tube = centre
    factories.receive(session, depot, tube, "L1", in_days(400), 300)  # 30 days; below 21 on day 10
    scan(session, org)
    alert = open_rules(session, org)["coverage_falling"]
    assert f"falls below the minimum of 21 days on {in_days(10).isoformat()}" in alert.message
    factories.receive(session, depot, tube, "L2", in_days(400), 100)  # 40 days: below 21 on day 20 > 14
    scan(session, org)
    assert "coverage_falling" not in open_rules(session, org)


def test_expiry_erodes_coverage(session, centre):
    org, depot, tube = centre
    # 300 usable = 30 days on paper, but 200 of them expire in 4 days: only 5 days used from it.
    factories.receive(session, depot, tube, "SOON", in_days(4), 200)
    factories.receive(session, depot, tube, "LATER", in_days(400), 100)
    scan(session, org)
    alert = open_rules(session, org)["expiry_erodes_coverage"]
    assert "30 days on paper, but only 15 once expiry is counted (150 units will expire unused)" in alert.message
    # The soon-expiring lot is written off and fresh stock arrives: resolved.
    inventory.dispose(session, factories.ctx(), depot=depot, pool="operational", item=tube, lot_number="SOON",
                      quantity=200, reason="other")
    factories.receive(session, depot, tube, "FRESH", in_days(400), 300)
    scan(session, org)
    assert "expiry_erodes_coverage" not in open_rules(session, org) and alert.state == "resolved"


def test_lots_expiring_within_the_horizons_without_a_rotation_task(session, centre):
    org, depot, tube = centre
    coverage.set_manual_baseline(session, factories.ctx(), organisation=org, item=tube, weekly_use=7000)
    factories.receive(session, depot, tube, "D20", in_days(20), 10)
    factories.receive(session, depot, tube, "D60", in_days(60), 10)
    factories.receive(session, depot, tube, "D150", in_days(150), 10, pool="emergency")
    factories.receive(session, depot, tube, "D300", in_days(300), 10)
    scan(session, org)
    expiring = {a.lot.lot_number: (a.severity, a.key.rsplit(":", 1)[1])
                for a in session.scalars(sa.select(Alert).where(Alert.rule == "lot_expiring"))}
    assert expiring == {"D20": ("critical", "30"), "D60": ("warning", "90"), "D150": ("info", "180")}
    # A rotation task for the emergency lot covers it: its alert resolves.
    rotation.sync_tasks(session, today=TODAY, organisations=[org])
    scan(session, org)
    assert {a.lot.lot_number for a in session.scalars(sa.select(Alert).where(
        Alert.rule == "lot_expiring", Alert.state == "open"))} == {"D20", "D60"}


def test_expired_stock_on_hand_until_disposed(session, centre):
    org, depot, tube = centre
    factories.receive(session, depot, tube, "OLD", in_days(-1), 5, today=in_days(-20))
    scan(session, org)
    assert "expired on" in open_rules(session, org)["expired_on_hand"].message
    inventory.dispose(session, factories.ctx(), depot=depot, pool="operational", item=tube, lot_number="OLD",
                      quantity=5, reason="expired")
    scan(session, org)
    assert "expired_on_hand" not in open_rules(session, org)


def test_rotation_task_overdue(session, centre):
    org, depot, tube = centre
    factories.receive(session, depot, tube, "EM", in_days(60), 1000, pool="emergency")  # needs 100 days
    rotation.sync_tasks(session, today=TODAY, organisations=[org])
    scan(session, org)
    alert = open_rules(session, org)["rotation_overdue"]
    assert "was due to start on" in alert.message
    # Carrying the task out closes the condition.
    task = session.scalar(sa.select(RotationTask).where(RotationTask.organisation_id == org.id))
    rotation.complete_task(session, factories.ctx(), task=task)
    scan(session, org)
    assert alert.state == "resolved"


def test_count_discrepancy_above_the_threshold(session, centre):
    org, depot, tube = centre
    factories.receive(session, depot, tube, "L", in_days(400), 400)
    inventory.adjust_to_count(session, factories.ctx(), depot=depot, pool="operational", item=tube, lot_number="L",
                              counted_quantity=390, reason="count")  # 2.5%: below 5%
    scan(session, org)
    assert "count_discrepancy" not in open_rules(session, org)
    inventory.adjust_to_count(session, factories.ctx(), depot=depot, pool="operational", item=tube, lot_number="L",
                              counted_quantity=360, reason="count")  # 30 of 390 = 7.7%
    scan(session, org)
    assert "360 counted, 390 on the books (-30, 7.7% — above 5%)" in open_rules(session, org)["count_discrepancy"].message
    # Thirty days on, the count is history: resolved.
    scan(session, org, today=in_days(31))
    assert "count_discrepancy" not in open_rules(session, org)


def test_critical_drug_below_minimum_names_its_alternatives(session):
    pharmacy = factories.org(session, "APOTEK", "hospital_pharmacy")
    depot = factories.depot(session, pharmacy)
    ctx = factories.ctx()
    propofol = factories.item(session, "PROPOFOL", "drug", name="Propofol")
    midazolam = factories.item(session, "MIDAZOLAM", "drug", name="Midazolam")
    drugs = coverage.item_list_for(session, pharmacy, "critical-drugs")
    coverage.save_list_entry(session, ctx, item_list=drugs, item=propofol, alternatives=[midazolam])
    coverage.set_manual_baseline(session, ctx, organisation=pharmacy, item=propofol, weekly_use=70)
    factories.receive(session, depot, propofol, "P", in_days(300), 100)  # 10 days < 14
    scan(session, pharmacy)
    alert = open_rules(session, pharmacy)["critical_drug_below_min"]
    assert "Alternatives: Midazolam (MIDAZOLAM)." in alert.message and alert.severity == "critical"
    factories.receive(session, depot, propofol, "P2", in_days(300), 100)  # 20 days ≥ 14
    scan(session, pharmacy)
    assert alert.state == "resolved"


def test_a_disabled_rule_raises_nothing(session, centre):
    org, depot, tube = centre
    session.get(AlertRule, "coverage_below_min").enabled = False
    factories.receive(session, depot, tube, "L1", in_days(400), 150)
    scan(session, org)
    assert "coverage_below_min" not in open_rules(session, org)


def test_a_withdrawal_opens_the_alert_in_the_same_request(app, client, session, world):
    ctx = factories.ctx()
    coverage.set_manual_baseline(session, ctx, organisation=world.centre, item=world.glove, weekly_use=70)
    factories.receive(session, world.centre_depot, world.glove, "G1", in_days(400), 400)  # 40 days
    session.commit()
    assert open_rules(session, world.centre) == {}
    response = client.post("/api/v1/issues", headers=world.headers("supply"),
                           json={"depot": "SC-D", "item": "GLOVE", "quantity": 250})
    assert response.status_code == 201
    alert = open_rules(session, world.centre)["coverage_below_min"]
    assert "15 days of coverage" in alert.message


def test_a_posting_evaluates_only_the_items_it_touched_after_it_committed(session, centre):
    org, depot, tube = centre
    gauze = factories.item(session, "GAUZE", "consumable")
    factories.receive(session, depot, tube, "T1", in_days(400), 400)  # 40 days: fine
    factories.receive(session, depot, gauze, "G1", in_days(400), 150)
    session.commit()
    assert set(open_rules(session, org)) == {"no_baseline"}  # gauze has no baseline yet
    # A baseline is not a posting: gauze is now 15 days < 21, but nothing evaluates it yet.
    coverage.set_manual_baseline(session, factories.ctx(), organisation=org, item=gauze, weekly_use=70,
                                  valid_from=in_days(-30))
    session.commit()
    inventory.issue(session, factories.ctx(), depot=depot, item=tube, quantity=250)  # tube: 15 days
    session.commit()
    below = {a.item_id for a in session.scalars(sa.select(Alert).where(Alert.rule == "coverage_below_min"))}
    assert below == {tube.id}  # the posting's own pair only
    scan(session, org)  # the full scan finds the rest
    below = {a.item_id for a in session.scalars(sa.select(Alert).where(Alert.rule == "coverage_below_min"))}
    assert below == {tube.id, gauze.id}


def test_a_failing_evaluation_never_costs_the_posting(session, centre, monkeypatch, caplog):
    org, depot, tube = centre

    def broken(*_args, **_kwargs):
        raise RuntimeError("the alert store is unwell")

    monkeypatch.setattr(alerts, "evaluate", broken)
    factories.receive(session, depot, tube, "L1", in_days(400), 150)
    session.commit()
    assert "evaluate_after_posting failed after a commit; the commit stands" in caplog.text
    assert "the alert store is unwell" in caplog.text
    session.rollback()  # nothing of the posting is left to undo
    assert session.scalar(sa.select(sa.func.sum(Balance.quantity)).join(Balance.lot)
                          .where(Lot.item_id == tube.id)) == 150
    assert open_rules(session, org) == {}
    monkeypatch.undo()
    inventory.issue(session, factories.ctx(), depot=depot, item=tube, quantity=10)
    session.commit()  # the next posting's evaluation catches up
    assert "coverage_below_min" in open_rules(session, org)


@pytest.mark.postgres
def test_the_evaluation_after_a_posting_holds_no_balance_lock(postgres_engine, monkeypatch):
    maker = so.sessionmaker(postgres_engine, class_=Session, expire_on_commit=False,
                            hooks=HOOKS)
    with maker() as session:
        org = factories.org(session)
        depot = factories.depot(session, org)
        item = factories.item(session, category="consumable")
        factories.receive(session, depot, item, "LOCK-1", in_days(400), 100)
        session.commit()
        balance_id = session.scalar(sa.select(Balance.id).where(Balance.depot_id == depot.id))
    seen: list[str] = []
    real = alerts.evaluate

    def evaluate_while_probing(session, organisations, **kwargs):
        # Another connection may lock the posting's balance row at once (NOWAIT): nothing holds it.
        with postgres_engine.connect() as other:
            other.execute(sa.text("SELECT quantity FROM balances WHERE id = :id FOR UPDATE NOWAIT"),
                          {"id": balance_id})
            other.rollback()
        seen.append("probed")
        return real(session, organisations, **kwargs)

    monkeypatch.setattr(alerts, "evaluate", evaluate_while_probing)
    with maker() as session:
        inventory.issue(session, factories.ctx(), depot=session.get(Depot, depot.id),
                        item=session.get(Item, item.id), quantity=5)
        session.commit()
        assert seen == ["probed"]
        assert session.scalar(sa.select(sa.func.count()).select_from(Alert)
                              .where(Alert.organisation_id == org.id)) >= 1  # no_baseline, evaluated


def test_the_evaluation_after_a_posting_costs_the_same_whatever_the_organisation_holds(session, engine):
    """30 items or 300: a posting of one item runs the same statements after its commit."""

    def statements_after_one_posting(n_items: int) -> int:
        org = factories.org(session, kind="supply_centre")
        depot = factories.depot(session, org)
        items = [factories.item(session, category="consumable") for _ in range(n_items)]
        for n, item in enumerate(items):
            coverage.set_manual_baseline(session, factories.ctx(), organisation=org, item=item,
                                          weekly_use=70, valid_from=in_days(-30))
            factories.receive(session, depot, item, f"L{n}", in_days(100 + n), 300)
        session.commit()
        inventory.issue(session, factories.ctx(), depot=depot, item=items[0], quantity=1)
        session.flush()
        with counted(engine) as seen:
            session.commit()
        return len(seen)

    few = statements_after_one_posting(30)
    assert few > 8  # the commit, then the evaluation's reads and writes
    assert statements_after_one_posting(300) == few
