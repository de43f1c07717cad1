"""The rotation API: the plan of the worked example, carrying tasks out, the swap at receipt,
access, and refusals of bad input (never a 500)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from stockpile.coverage import services as coverage
from stockpile.extensions import db
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Balance, Depot, Item, Lot, Movement, Organisation
from stockpile.rotation import services as rotation
from stockpile.rotation.models import RotationTask
from tests import factories

# The API plans on the real date; the example is built relative to it, so the numbers are those
# worked by hand in tests/rotation/test_services.py whatever day the tests run.
TODAY = factories.TODAY


def in_days(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


@dataclass
class Centre:
    organisation: Organisation
    depot: Depot
    tube: Item
    low: Organisation
    high: Organisation


def build_centre(session, world) -> Centre:
    """The worked example on the world's supply centre SC (depot SC-D): 70 tubes a week (10 a
    day), emergency lots A (1000, expiring in 120 days), B (500, 150) and C (300, 200); two
    municipalities use tubes: LOW (1 a day, 10 in stock) and HIGH (2 a day, 1000 in stock)."""
    tube = factories.item(session, "TUBE", "consumable", name="Suction tube")
    ctx = factories.ctx(today=TODAY)
    coverage.set_manual_baseline(session, ctx, organisation=world.centre, item=tube, weekly_use=70)
    for lot, expires_in, quantity in (("A", 120, 1000), ("B", 150, 500), ("C", 200, 300)):
        factories.receive(session, world.centre_depot, tube, lot, in_days(expires_in), quantity,
                          pool="emergency", today=TODAY)
    factories.receive(session, world.centre_depot, tube, "OP", in_days(400), 50, today=TODAY)
    users = []
    for code, weekly, stock in (("LOW", 7, 10), ("HIGH", 14, 1000)):
        user = factories.org(session, code, "municipality")
        coverage.set_manual_baseline(session, ctx, organisation=user, item=tube, weekly_use=weekly)
        factories.receive(session, factories.depot(session, user, f"{code}-D"), tube, f"{code}-1",
                          in_days(500), stock, today=TODAY)
        users.append(user)
    session.commit()
    return Centre(world.centre, world.centre_depot, tube, *users)


def sync(session, centre: Centre) -> dict[str, RotationTask]:
    """Tasks from the plan (as the scheduler makes them), committed; by lot number."""
    rotation.sync_tasks(session, today=TODAY, organisations=[centre.organisation])
    session.commit()
    return {t.lot.lot_number: t for t in session.scalars(
        sa.select(RotationTask).where(RotationTask.organisation_id == centre.organisation.id))}


@pytest.fixture
def centre(session, world) -> Centre:
    return build_centre(session, world)


def get(client, world, who, path, **params):
    db.fixed_session.commit()
    return client.get(f"/api/v1{path}", query_string=params, headers=world.headers(who))


def post(client, world, who, path, body=None, **headers):
    db.fixed_session.commit()
    kwargs = {"json": body} if body is not None else {}
    return client.post(f"/api/v1{path}", headers={**world.headers(who), **headers}, **kwargs)


def assert_error(response, status, code, *fields):
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"], error
    for field in fields:
        assert field in error["fields"], error
    return error


def movement_count(session) -> int:
    return session.scalar(sa.select(sa.func.count(Movement.id)))


def emergency_and_operational(session, depot, item, lot_number) -> tuple[int, int]:
    rows = dict(session.execute(
        sa.select(Balance.pool, Balance.quantity).join(Balance.lot)
        .where(Balance.depot_id == depot.id, Lot.item_id == item.id, Lot.lot_number == lot_number)).all())
    return rows.get("emergency", 0), rows.get("operational", 0)


# --- the plan ----------------------------------------------------------------------------------

def test_plan_of_the_worked_example(client, world, centre):
    response = get(client, world, "supply", "/rotation/plan", organisation="SC")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["total"], body["page"], body["per_page"]) == (3, 1, 50)
    assert body["evaluated_on"] == TODAY.isoformat()
    rows = {row["lot_number"]: row for row in body["items"]}
    assert [row["lot_number"] for row in body["items"]] == ["A", "B", "C"]
    a = rows["A"]
    # A: rotate by 28 days ago (overdue); 720 of 1000 can still be used by day 72; 280 at risk.
    assert {k: a[k] for k in ("organisation", "item", "depot", "expiry", "quantity", "rotate_by", "finish_by",
                              "state", "absorbable", "at_risk", "daily_use", "margin_days", "task")} == {
        "organisation": "SC", "item": "TUBE", "depot": "SC-D", "expiry": in_days(120).isoformat(),
        "quantity": 1000, "rotate_by": in_days(-28).isoformat(), "finish_by": in_days(72).isoformat(),
        "state": "overdue", "absorbable": 720, "at_risk": 280, "daily_use": 10.0, "margin_days": 28,
        "task": None}
    assert "Only 720 of 1000" in a["reason"]
    assert a["baseline"].startswith("Entered by hand")
    # LOW (10 in stock at 1 a day: 10 days) first, then HIGH (1000 at 2 a day: 500 days).
    assert a["suggestions"] == [
        {"action": "transfer", "quantity": 121, "organisation": "LOW", "coverage_days": 10.0,
         "note": "uses about 7 a week"},
        {"action": "transfer", "quantity": 159, "organisation": "HIGH", "coverage_days": 500.0,
         "note": "uses about 14 a week"}]
    assert (rows["B"]["rotate_by"], rows["B"]["finish_by"], rows["B"]["state"], rows["B"]["at_risk"]) == (
        in_days(72).isoformat(), in_days(122).isoformat(), "planned", 0)
    assert (rows["C"]["rotate_by"], rows["C"]["finish_by"]) == (in_days(142).isoformat(), in_days(172).isoformat())
    assert rows["B"]["suggestions"] == [] and rows["C"]["suggestions"] == []


def test_plan_names_the_task_once_there_is_one(client, world, session, centre):
    tasks = sync(session, centre)
    rows = {r["lot_number"]: r for r in get(client, world, "viewer", "/rotation/plan",
                                            organisation="SC").get_json()["items"]}
    assert {n: r["task"] for n, r in rows.items()} == {n: tasks[n].id for n in "ABC"}


def test_a_smaller_margin_leaves_nothing_at_risk(client, world, centre):
    rows = {r["lot_number"]: r for r in get(client, world, "supply", "/rotation/plan", organisation="SC",
                                            margin_days=0).get_json()["items"]}
    # Without a margin: C from day 170, B from day 100, A must start today and just makes it.
    assert (rows["C"]["rotate_by"], rows["B"]["rotate_by"]) == (in_days(170).isoformat(), in_days(100).isoformat())
    assert (rows["A"]["rotate_by"], rows["A"]["state"], rows["A"]["at_risk"]) == (TODAY.isoformat(), "due", 0)
    assert rows["A"]["margin_days"] == 0


def test_plan_filters_by_item_and_pages(client, world, session, centre):
    factories.receive(session, world.centre_depot, world.glove, "G1", in_days(300), 40, pool="emergency",
                      today=TODAY)
    everything = get(client, world, "supply", "/rotation/plan", organisation="SC").get_json()
    assert everything["total"] == 4
    tubes = get(client, world, "supply", "/rotation/plan", organisation="SC", item="TUBE").get_json()
    assert tubes["total"] == 3 and {r["item"] for r in tubes["items"]} == {"TUBE"}
    second = get(client, world, "supply", "/rotation/plan", organisation="SC", item="TUBE",
                 page=2, per_page=1).get_json()
    assert (second["total"], [r["lot_number"] for r in second["items"]]) == (3, ["B"])


@pytest.mark.parametrize("params, status, code, field", [
    ({}, 400, "invalid", "organisation"),
    ({"organisation": "SC", "margin_days": "-1"}, 400, "invalid", "margin_days"),
    ({"organisation": "SC", "margin_days": "lots"}, 400, "invalid", "margin_days"),
    ({"organisation": "SC", "margin_days": "99999999999999999999"}, 400, "invalid", "margin_days"),
    ({"organisation": "SC", "per_page": "501"}, 400, "invalid", "per_page"),
    ({"organisation": "SC", "colour": "red"}, 400, "invalid", "colour"),
    ({"organisation": "NOPE"}, 404, "not_found", "organisation"),
    ({"organisation": "SC", "item": "NOPE"}, 404, "not_found", "item"),
    ({"organisation": "x" * 41}, 400, "invalid", "organisation"),
])
def test_plan_refuses_bad_input(client, world, centre, params, status, code, field):
    assert_error(get(client, world, "supply", "/rotation/plan", **params), status, code, field)


@pytest.mark.parametrize("who, status", [("supply", 200), ("viewer", 200), ("coordinator", 200),
                                         ("admin", 200), ("outsider", 403), ("municipal", 403)])
def test_who_may_read_the_plan(client, world, centre, who, status):
    response = get(client, world, who, "/rotation/plan", organisation="SC")
    assert response.status_code == status, response.get_json()
    if status == 403:
        assert response.get_json()["error"]["code"] == "forbidden"


def test_the_plan_needs_a_token(client, world, centre):
    assert client.get("/api/v1/rotation/plan?organisation=SC").status_code == 401


def test_a_tiny_daily_use_is_planned_without_overflowing_the_calendar(client, world, session, centre):
    coverage.set_manual_baseline(session, factories.ctx(today=TODAY), organisation=world.centre,
                                  item=world.glove, weekly_use=0.0001)
    factories.receive(session, world.centre_depot, world.glove, "G1", in_days(300), 1_000_000, pool="emergency",
                      today=TODAY)
    rows = get(client, world, "supply", "/rotation/plan", organisation="SC", item="GLOVE").get_json()["items"]
    assert rows[0]["rotate_by"] == dt.date.min.isoformat() and rows[0]["state"] == "overdue"
    assert rows[0]["at_risk"] == 1_000_000


def test_a_lot_past_its_margin_says_so(client, world, session, centre):
    coverage.set_manual_baseline(session, factories.ctx(today=TODAY), organisation=world.centre,
                                  item=world.glove, weekly_use=70)
    factories.receive(session, world.centre_depot, world.glove, "G1", in_days(20), 100, pool="emergency",
                      today=TODAY)
    [row] = get(client, world, "supply", "/rotation/plan", organisation="SC", item="GLOVE").get_json()["items"]
    assert (row["finish_by"], row["at_risk"]) == (in_days(-8).isoformat(), 100)
    assert row["reason"] == (f"Its expiry less the 28-day margin ({in_days(-8).isoformat()}) has passed: "
                             "daily use cannot take it in time.")


# --- tasks -------------------------------------------------------------------------------------

def test_task_list_by_organisation_and_state(client, world, session, centre):
    tasks = sync(session, centre)
    overdue = get(client, world, "viewer", "/rotation/tasks", organisation="SC", state="overdue").get_json()
    assert overdue["total"] == 1
    [task] = overdue["items"]
    assert {k: task[k] for k in ("id", "organisation", "depot", "item", "lot_number", "quantity", "at_risk",
                                 "rotate_by", "state", "completed_at", "completed_by")} == {
        "id": tasks["A"].id, "organisation": "SC", "depot": "SC-D", "item": "TUBE", "lot_number": "A",
        "quantity": 1000, "at_risk": 280, "rotate_by": in_days(-28).isoformat(), "state": "overdue",
        "completed_at": None, "completed_by": None}
    everything = get(client, world, "supply", "/rotation/tasks", organisation="SC").get_json()
    assert [t["lot_number"] for t in everything["items"]] == ["A", "B", "C"]
    # Without an organisation: those the caller may read; an outsider sees none of SC's.
    assert get(client, world, "outsider", "/rotation/tasks").get_json()["total"] == 0
    assert get(client, world, "coordinator", "/rotation/tasks").get_json()["total"] == 3
    assert_error(get(client, world, "outsider", "/rotation/tasks", organisation="SC"), 403, "forbidden")
    assert_error(get(client, world, "supply", "/rotation/tasks", state="late"), 400, "invalid", "state")
    assert get(client, world, "supply", f"/rotation/tasks/{tasks['B'].id}").get_json()["lot_number"] == "B"
    assert_error(get(client, world, "outsider", f"/rotation/tasks/{tasks['B'].id}"), 404, "not_found")


def test_completing_a_task_posts_the_move_into_daily_use(client, world, session, centre):
    tasks = sync(session, centre)
    before = movement_count(session)
    response = post(client, world, "supply", f"/rotation/tasks/{tasks['A'].id}/complete",
                    **{"Idempotency-Key": "rotate-A"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["task"]["state"], body["task"]["completed_by"]) == ("done", "supply@example.org")
    assert body["task"]["completed_at"] and body["task"]["posting_id"]
    legs = sorted((m["kind"], m["lot_number"], m["depot"], m["pool"], m["quantity"]) for m in body["movements"])
    assert legs == [("transfer", "A", "SC-D", "emergency", -1000), ("transfer", "A", "SC-D", "operational", 1000)]
    assert {m["reference"] for m in body["movements"]} == {f"Rotation task {tasks['A'].id}"}
    assert movement_count(session) == before + 2
    assert emergency_and_operational(session, world.centre_depot, centre.tube, "A") == (0, 1000)

    # The same key again: the first answer, nothing posted twice.
    retry = post(client, world, "supply", f"/rotation/tasks/{tasks['A'].id}/complete",
                 **{"Idempotency-Key": "rotate-A"})
    assert retry.status_code == 200 and retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.get_json() == body
    assert movement_count(session) == before + 2

    # Without the key, a done task is a conflict.
    again = post(client, world, "supply", f"/rotation/tasks/{tasks['A'].id}/complete")
    assert_error(again, 409, "task_closed")
    assert movement_count(session) == before + 2


def test_completing_part_of_a_task(client, world, session, centre):
    tasks = sync(session, centre)
    response = post(client, world, "supply", f"/rotation/tasks/{tasks['B'].id}/complete", {"quantity": 200})
    assert response.status_code == 200, response.get_json()
    assert emergency_and_operational(session, world.centre_depot, centre.tube, "B") == (300, 200)
    # What is left gets a task of its own when the plan is next synced.
    rest = sync(session, centre)
    open_b = [t for t in session.scalars(sa.select(RotationTask).join(RotationTask.lot)
                                         .where(Lot.lot_number == "B", RotationTask.state != "done"))]
    assert [(t.quantity, t.state) for t in open_b] == [(300, "planned")] and rest


@pytest.mark.parametrize("body, status, code, field", [
    ({"quantity": 0}, 400, "invalid", "quantity"),
    ({"quantity": "10"}, 400, "invalid", "quantity"),
    ({"quantity": 10**12}, 400, "invalid", "quantity"),
    ({"quantity": 10, "extra": 1}, 400, "invalid", "extra"),
    ({"quantity": 501}, 422, "insufficient_stock", None),
])
def test_completing_refuses_bad_quantities_and_posts_nothing(client, world, session, centre, body, status,
                                                             code, field):
    tasks = sync(session, centre)
    before = movement_count(session)
    response = post(client, world, "supply", f"/rotation/tasks/{tasks['B'].id}/complete", body)
    assert_error(response, status, code, *([field] if field else []))
    assert movement_count(session) == before
    session.refresh(tasks["B"])
    assert tasks["B"].state == "planned"


def test_completing_refuses_a_body_that_is_not_json(client, world, session, centre):
    tasks = sync(session, centre)
    db.fixed_session.commit()
    response = client.post(f"/api/v1/rotation/tasks/{tasks['B'].id}/complete", data="quantity=3",
                           headers={**world.headers("supply"), "Content-Type": "text/plain"})
    assert_error(response, 400, "malformed")


def test_a_held_lot_or_one_already_moved_is_not_rotated(client, world, session, centre):
    tasks = sync(session, centre)
    lot_b = tasks["B"].lot
    inventory.set_lot_status(session, factories.ctx(), lot=lot_b, status="quarantined", reason="damp boxes")
    assert_error(post(client, world, "supply", f"/rotation/tasks/{tasks['B'].id}/complete"), 422,
                 "lot_not_usable", "lot_number")
    # C moved out of the emergency pool by hand before its task was carried out.
    inventory.transfer(session, factories.ctx(), from_depot=world.centre_depot, from_pool="emergency",
                       to_depot=world.centre_depot, to_pool="operational", item=centre.tube, quantity=300,
                       lot_number="C")
    before = movement_count(session)
    error = assert_error(post(client, world, "supply", f"/rotation/tasks/{tasks['C'].id}/complete"), 409,
                         "nothing_to_rotate")
    assert "No emergency stock of lot C" in error["message"]
    assert movement_count(session) == before


@pytest.mark.parametrize("who, status", [("viewer", 403), ("coordinator", 403), ("outsider", 404),
                                         ("municipal", 404), ("pharmacist", 200), ("admin", 200)])
def test_who_may_carry_a_task_out(client, world, session, centre, who, status):
    tasks = sync(session, centre)
    before = movement_count(session)
    response = post(client, world, who, f"/rotation/tasks/{tasks['C'].id}/complete")
    assert response.status_code == status, response.get_json()
    assert movement_count(session) == before + (2 if status == 200 else 0)


@pytest.mark.parametrize("task_id", ["999999", str(2**31), str(10**30)])
def test_unknown_tasks_are_404(client, world, centre, task_id):
    assert post(client, world, "supply", f"/rotation/tasks/{task_id}/complete").status_code == 404


# --- the swap at receipt -----------------------------------------------------------------------

def test_receipt_with_swap_moves_the_oldest_emergency_stock_into_daily_use(client, world, session, centre):
    body = {"depot": "SC-D", "item": "TUBE", "lot_number": "FRESH", "expiry": in_days(900).isoformat(),
            "quantity": 400, "swap": True}
    response = post(client, world, "supply", "/receipts", body)
    assert response.status_code == 201, response.get_json()
    legs = [(m["kind"], m["lot_number"], m["pool"], m["quantity"]) for m in response.get_json()["movements"]]
    assert legs == [("receipt", "FRESH", "emergency", 400), ("transfer", "A", "emergency", -400),
                    ("transfer", "A", "operational", 400)]
    assert emergency_and_operational(session, world.centre_depot, centre.tube, "A") == (600, 400)


def test_receipt_with_swap_and_an_explicit_emergency_pool(client, world, session, centre):
    body = {"depot": "SC-D", "pool": "emergency", "item": "TUBE", "lot_number": "FRESH",
            "expiry": in_days(900).isoformat(), "quantity": 50, "swap": True}
    assert post(client, world, "supply", "/receipts", body).status_code == 201
    assert emergency_and_operational(session, world.centre_depot, centre.tube, "A") == (950, 50)


def test_a_refused_swap_records_no_receipt(client, world, session, centre):
    before = movement_count(session)
    body = {"depot": "SC-D", "item": "GLOVE", "lot_number": "FRESH", "expiry": in_days(900).isoformat(),
            "quantity": 400, "swap": True}
    error = assert_error(post(client, world, "supply", "/receipts", body), 409, "nothing_to_swap", "swap")
    assert "no older usable emergency stock of GLOVE" in error["message"]
    assert movement_count(session) == before
    assert session.scalar(sa.select(Lot).where(Lot.lot_number == "FRESH")) is None


@pytest.mark.parametrize("extra, field", [({"pool": "operational"}, "pool"), ({"swap": "yes"}, "swap"),
                                          ({"swap": 1}, "swap")])
def test_swap_input_is_checked(client, world, session, centre, extra, field):
    before = movement_count(session)
    body = {"depot": "SC-D", "item": "TUBE", "lot_number": "FRESH", "expiry": in_days(900).isoformat(),
            "quantity": 400, "swap": True, **extra}
    assert_error(post(client, world, "supply", "/receipts", body), 400, "invalid", field)
    assert movement_count(session) == before


def test_a_receipt_without_swap_is_unchanged(client, world, session, centre):
    body = {"depot": "SC-D", "item": "TUBE", "lot_number": "FRESH", "expiry": in_days(900).isoformat(),
            "quantity": 5, "swap": False, "pool": "operational"}
    response = post(client, world, "supply", "/receipts", body)
    assert [(m["kind"], m["pool"]) for m in response.get_json()["movements"]] == [("receipt", "operational")]
