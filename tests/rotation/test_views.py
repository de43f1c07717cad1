"""The rotation pages: the grouped list with the worked numbers, two-click completion, the
suggested actions' prefilled forms, the timeline chart, the swap on the receipt form, access."""

from __future__ import annotations

import html
import re
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.coverage import services as coverage
from stockpile.inventory.models import Lot, Movement, Organisation
from stockpile.rotation import services as rotation
from stockpile.rotation.models import RotationTask
from tests import factories
from tests.rotation.test_api import TODAY, build_centre, emergency_and_operational, in_days, movement_count


@pytest.fixture
def centre(session, world):
    return build_centre(session, world)


def main_html(response) -> str:
    """The page without the navigation."""
    return response.text.split('<main id="main"', 1)[1]


def section(response, name: str) -> str:
    """One group of the rotation list, by its id."""
    page = main_html(response)
    start = page.index(f'<section class="panel" id="{name}"')
    end = page.find("<section", start + 1)
    return page[start:end if end != -1 else None]


def links(fragment: str, text: str) -> list[str]:
    """The targets of the links in ``fragment`` whose text contains ``text``."""
    found = re.findall(r'<a [^>]*href="([^"]+)"[^>]*>\s*([^<]*)', fragment)
    return [html.unescape(href) for href, label in found if text in label]


def query(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    return {k: v[0] for k, v in parse_qs(parts.query).items()} | {"_path": parts.path}


def the_rotation_job_ran(session) -> None:
    """Tasks as the scheduler's hourly ``rotation`` job leaves them (the pages only read)."""
    rotation.sync_tasks(session, today=TODAY)
    session.commit()


def tasks_by_lot(session) -> dict[str, RotationTask]:
    return {t.lot.lot_number: t for t in session.scalars(
        sa.select(RotationTask).where(RotationTask.state.in_(["planned", "due", "overdue"])))}


# --- the list ---------------------------------------------------------------------------------

def test_the_list_groups_the_worked_example(client, auth, session, world, centre):
    the_rotation_job_ran(session)
    auth.login("supply@example.org")
    response = client.get("/rotation")
    assert response.status_code == 200
    tasks = tasks_by_lot(session)
    assert {n: t.state for n, t in tasks.items()} == {"A": "overdue", "B": "planned", "C": "planned"}

    overdue = section(response, "overdue")
    assert "Suction tube" in overdue and ">A<" in overdue
    assert "28 days ago" in overdue and in_days(-28).isoformat() in overdue
    assert "1,000" in overdue and "280" in overdue
    assert links(overdue, "Move to daily use") == [f"/rotation/tasks/{tasks['A'].id}/complete"]

    assert "Nothing falls due in the next 7 days" in section(response, "due")

    at_risk = section(response, "at-risk")
    assert "280 at risk" in at_risk and "of 1,000 in emergency stock" in at_risk
    assert "Transfer 121 to Organisation LOW" in at_risk and "10 days of coverage" in at_risk
    assert "Transfer 159 to Organisation HIGH" in at_risk and "500 days of coverage" in at_risk
    assert at_risk.index("Organisation LOW") < at_risk.index("Organisation HIGH")

    planned = section(response, "planned")
    assert ">B<" in planned and ">C<" in planned and ">A<" not in planned
    assert in_days(72).isoformat() in planned and "in 72 days" in planned
    assert "No rotation was carried out" in section(response, "done")


def test_a_lot_due_this_week(client, auth, session, world, centre):
    # 100 syringes at 10 a day take 10 days; used up 28 days before expiry (day 41): start on day 3.
    syringe = factories.item(session, "SYR", "consumable", name="Syringe")
    coverage.set_manual_baseline(session, factories.ctx(today=TODAY), organisation=world.centre, item=syringe,
                                  weekly_use=70)
    factories.receive(session, world.centre_depot, syringe, "S1", in_days(41), 100, pool="emergency", today=TODAY)
    session.commit()
    the_rotation_job_ran(session)
    auth.login("supply@example.org")
    due = section(client.get("/rotation"), "due")
    assert "Syringe" in due and ">S1<" in due and "in 3 days" in due and in_days(3).isoformat() in due
    assert links(due, "Move to daily use") == [f"/rotation/tasks/{tasks_by_lot(session)['S1'].id}/complete"]


def test_the_suggestions_open_prefilled_forms(client, auth, session, world, centre):
    # Masks nobody uses: all of them at risk, to extend or dispose of.
    factories.receive(session, world.centre_depot, world.mask, "M1", in_days(300), 100, pool="emergency",
                      today=TODAY)
    session.commit()
    auth.login("supply@example.org")
    at_risk = section(client.get("/rotation"), "at-risk")
    # Supply staff do not record stock for LOW: the stock leaves the centre's books as an issue to it.
    [to_low] = links(at_risk, "Open the issue form")[:1]
    assert query(to_low) == {"_path": "/issues/new", "depot": "SC-D", "pool": "emergency", "item": "TUBE",
                             "quantity": "121", "recipient": "LOW"}
    form = client.get(to_low)
    assert form.status_code == 200
    page = main_html(form)
    assert re.search(r'name="quantity"[^>]*value="121"', page)
    assert re.search(r'name="recipient"[^>]*value="LOW"', page)
    assert re.search(r'<option selected value="emergency"|<option value="emergency" selected', page)

    [extend] = links(at_risk, "Open the extension form")
    assert extend == "/items/MASK/lots/M1/extend"
    assert client.get(extend).status_code == 200
    [dispose] = links(at_risk, "Open the disposal form")
    assert query(dispose) == {"_path": "/disposals/new", "depot": "SC-D", "pool": "emergency", "item": "MASK",
                              "lot": "M1", "quantity": "100", "reason": "expired"}
    page = main_html(client.get(dispose))
    assert re.search(r'name="lot_number"[^>]*value="M1"', page) and re.search(r'name="quantity"[^>]*value="100"', page)


def test_an_administrator_gets_the_transfer_form(client, auth, session, world, centre):
    auth.login("admin@example.org")
    at_risk = section(client.get("/rotation?organisation=SC"), "at-risk")
    to_low, to_high = links(at_risk, "Open the transfer form")
    assert query(to_low) == {"_path": "/transfers/new", "from_depot": "SC-D", "from_pool": "emergency",
                             "to_depot": "LOW-D", "to_pool": "operational", "item": "TUBE", "lot": "A",
                             "quantity": "121"}
    assert query(to_high)["to_depot"] == "HIGH-D" and query(to_high)["quantity"] == "159"
    page = main_html(client.get(to_low))
    assert re.search(r'<option selected value="LOW-D"|<option value="LOW-D" selected', page)
    assert re.search(r'name="lot_number"[^>]*value="A"', page) and re.search(r'name="quantity"[^>]*value="121"', page)


# --- two clicks -------------------------------------------------------------------------------

def test_move_to_daily_use_in_two_clicks(client, auth, session, world, centre):
    the_rotation_job_ran(session)
    auth.login("supply@example.org")
    first = client.get("/rotation")
    [move] = links(section(first, "overdue"), "Move to daily use")
    before = movement_count(session)
    confirm = client.get(move)
    assert confirm.status_code == 200
    assert movement_count(session) == before  # looking posts nothing
    page = main_html(confirm)
    # Exactly what will be posted: 1,000 of lot A out of the emergency pool, into the operational.
    assert "−1,000" in page and "+1,000" in page and "Emergency" in page and "Operational" in page
    assert re.search(r'name="quantity"[^>]*value="1000"', page)

    done = client.post(move, data={"quantity": "1000"})
    assert done.status_code == 302 and done.headers["Location"].endswith("/rotation?organisation=SC")
    assert movement_count(session) == before + 2
    assert emergency_and_operational(session, world.centre_depot, centre.tube, "A") == (0, 1000)
    task = session.scalar(sa.select(RotationTask).join(RotationTask.lot).where(Lot.lot_number == "A"))
    assert (task.state, task.completed_by_id) == ("done", world.users["supply"].id)
    legs = session.scalars(sa.select(Movement).where(Movement.posting_id == task.posting_id)).all()
    assert sorted((m.pool, m.quantity) for m in legs) == [("emergency", -1000), ("operational", 1000)]

    after = client.get(done.headers["Location"])
    assert "Moved 1,000 × Suction tube, lot A" in after.text
    finished = section(after, "done")
    assert ">A<" in finished and "1,000" in finished and "supply@example.org" in finished
    assert ">A<" not in section(after, "overdue")

    # The confirm page of a done task says so and offers nothing to post.
    stale = client.get(move)
    assert stale.status_code == 409 and "is done" in stale.text and "Confirm</button>" not in stale.text
    assert client.post(move, data={"quantity": "1000"}).status_code == 409
    assert movement_count(session) == before + 2


def test_the_pages_only_read_and_a_lot_without_a_task_gets_one_when_moved(client, auth, session, world,
                                                                          centre):
    """Before the hourly run has given lot A a task, its button posts: the task is made from
    today's plan and the confirm page follows. Looking at the pages writes nothing."""
    auth.login("supply@example.org")
    first = client.get("/rotation")
    client.get("/rotation/SC/TUBE")
    assert tasks_by_lot(session) == {}
    overdue = section(first, "overdue")
    assert links(overdue, "Move to daily use") == []
    lot_a = session.scalar(sa.select(Lot).where(Lot.lot_number == "A"))
    target = f"/rotation/SC/lots/{lot_a.id}/{world.centre_depot.id}/move"
    assert f'action="{target}"' in overdue
    moved = client.post(target)
    task = tasks_by_lot(session)["A"]
    assert moved.status_code == 302 and moved.headers["Location"].endswith(f"/rotation/tasks/{task.id}/complete")
    assert task.state == "overdue"
    # A lot with nothing to rotate there: said so, nothing made.
    gone = client.post(f"/rotation/SC/lots/{lot_a.id}/999999/move", follow_redirects=True)
    assert "nothing to rotate any more" in gone.text
    client.post("/logout")
    auth.login("viewer@example.org")
    assert client.post(target).status_code == 403


def test_a_refused_confirmation_posts_nothing(client, auth, session, world, centre):
    the_rotation_job_ran(session)
    auth.login("supply@example.org")
    task = tasks_by_lot(session)["B"]
    before = movement_count(session)
    # Stock changed after the confirm page was shown: 500 were there, 600 "confirmed".
    refused = client.post(f"/rotation/tasks/{task.id}/complete", data={"quantity": "600"})
    assert refused.status_code == 422
    assert "Nothing was recorded" in refused.text and "Lot B has 500 in SC-D (emergency); 600 cannot be taken" in refused.text
    # The page shows the stock as it is now, to confirm again.
    assert re.search(r'name="quantity"[^>]*value="500"', main_html(refused))
    assert client.post(f"/rotation/tasks/{task.id}/complete", data={"quantity": "x"}).status_code == 422
    assert movement_count(session) == before
    session.refresh(task)
    assert task.state == "planned"


# --- the timeline -----------------------------------------------------------------------------

def test_the_timeline_draws_a_bar_per_lot(client, auth, session, world, centre):
    auth.login("viewer@example.org")
    response = client.get("/rotation/SC/TUBE")
    assert response.status_code == 200
    svg = main_html(response).split("<svg", 1)[1].split("</svg>", 1)[0]
    lots = re.findall(r'<g class="rot-lot rot-lot-(\w+)" data-lot="(\w+)">(.*?)</g>', svg, re.S)
    assert [(state, lot) for state, lot, _ in lots] == [("overdue", "A"), ("planned", "B"), ("planned", "C")]
    bars = {lot: body for _, lot, body in lots}
    for lot in "ABC":
        assert 'class="bar-use"' in bars[lot] and 'class="expiry-mark"' in bars[lot]
    # Only A is partly at risk: the time already gone is highlighted.
    assert 'class="bar-lost"' in bars["A"] and 'class="bar-lost"' not in bars["B"] + bars["C"]
    assert "280 at risk" in bars["A"]
    assert 'class="rot-today"' in svg
    # Bars in time order: A's use starts today, B's later, C's later still.
    starts = {lot: float(re.search(r'class="bar-use" x="([\d.]+)"', body).group(1)) for lot, body in bars.items()}
    today_x = float(re.search(r'<g class="rot-today">\s*<line x1="([\d.]+)"', svg).group(1))
    assert starts["A"] == today_x < starts["B"] < starts["C"]
    assert "Move to daily use" not in main_html(response)  # a viewer reads only


def test_timeline_of_an_item_without_emergency_stock(client, auth, world, centre):
    auth.login("supply@example.org")
    response = client.get("/rotation/SC/GLOVE")
    assert response.status_code == 200 and "nothing to rotate" in response.text and "<svg" not in response.text
    assert client.get("/rotation/SC/NOPE").status_code == 404
    assert client.get("/rotation/NOPE/TUBE").status_code == 404


# --- access -----------------------------------------------------------------------------------

def test_readers_see_the_list_read_only(client, auth, session, world, centre):
    the_rotation_job_ran(session)
    auth.login("viewer@example.org")
    response = client.get("/rotation")
    assert response.status_code == 200 and "Read only" in response.text
    page = main_html(response)
    assert "Move to daily use" not in page and "Open the" not in page
    task = tasks_by_lot(session)["A"]
    assert client.get(f"/rotation/tasks/{task.id}/complete").status_code == 403
    before = movement_count(session)
    assert client.post(f"/rotation/tasks/{task.id}/complete", data={"quantity": "1000"}).status_code == 403
    assert movement_count(session) == before


def test_outsiders_are_refused(client, auth, session, world, centre):
    the_rotation_job_ran(session)
    task = tasks_by_lot(session)["A"]
    auth.login("outsider@example.org")
    assert client.get("/rotation?organisation=SC").status_code == 403
    assert client.get("/rotation/SC/TUBE").status_code == 403
    assert client.get(f"/rotation/tasks/{task.id}/complete").status_code == 404
    assert client.post(f"/rotation/tasks/{task.id}/complete", data={"quantity": "1"}).status_code == 404
    own = client.get("/rotation")
    assert own.status_code == 200 and "nothing to rotate" in own.text and "Suction tube" not in own.text


def test_the_pages_need_a_sign_in(client, world, centre):
    response = client.get("/rotation")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("path", ["/rotation?organisation=" + "X" * 300, "/rotation/tasks/99999999999/complete",
                                  "/rotation/SC/" + "X" * 300])
def test_odd_addresses_are_answered_not_crashed(client, auth, world, centre, path):
    auth.login("supply@example.org")
    assert client.get(path).status_code == 404


@pytest.mark.postgres
def test_two_pages_syncing_at_once_create_each_task_once(postgres_engine):
    """The scheduler's job and a Move to daily use button both sync tasks: a second sync of the
    same organisation waits for the first and finds its tasks (this test commits, on a database
    of its own)."""
    maker = so.sessionmaker(postgres_engine, expire_on_commit=False)
    with maker() as session:
        organisation = factories.org(session)
        depot = factories.depot(session, organisation)
        item = factories.item(session, category="consumable")
        coverage.set_manual_baseline(session, factories.ctx(today=TODAY), organisation=organisation, item=item,
                                      weekly_use=70)
        for lot, expires_in, quantity in (("A", 120, 1000), ("B", 150, 500), ("C", 200, 300)):
            factories.receive(session, depot, item, lot, in_days(expires_in), quantity, pool="emergency",
                              today=TODAY)
        session.commit()
    first_synced = threading.Event()
    counts: list[dict[str, int]] = []
    failures: list[BaseException] = []

    def sync(first: bool) -> None:
        try:
            if not first:
                assert first_synced.wait(10)
            with maker() as session:
                org = session.get(Organisation, organisation.id)
                counts.append(rotation.sync_tasks(session, today=TODAY, organisations=[org]))
                if first:
                    first_synced.set()
                    time.sleep(0.5)  # still uncommitted while the second one starts
                session.commit()
        except BaseException as exc:  # surfaced below, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=sync, args=(first,)) for first in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert counts == [{"created": 3, "updated": 0, "cancelled": 0}, {"created": 0, "updated": 0, "cancelled": 0}]
    with maker() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(RotationTask)
                              .where(RotationTask.organisation_id == organisation.id)) == 3


# --- the swap on the receipt form ---------------------------------------------------------------

def receipt(client, **fields):
    data = {"depot": "SC-D", "pool": "emergency", "item": "TUBE", "lot_number": "FRESH",
            "expiry": in_days(900).isoformat(), "quantity": "400", "action": "record", **fields}
    return client.post("/receipts/new", data=data)


def test_the_swap_is_offered_where_there_is_emergency_stock(client, auth, world, centre):
    auth.login("supply@example.org")
    offered = main_html(client.get("/receipts/new?depot=SC-D&pool=emergency&item=TUBE&swap=1"))
    assert "move the same quantity of the oldest emergency stock to daily use" in offered
    assert re.search(r'<input[^>]*checked[^>]*name="swap"|<input[^>]*name="swap"[^>]*checked', offered)
    assert 'name="swap"' not in main_html(client.get("/receipts/new?depot=SC-D&item=GLOVE"))
    assert 'name="swap"' not in main_html(client.get("/receipts/new"))


def test_receiving_with_the_swap(client, auth, session, world, centre):
    auth.login("supply@example.org")
    before = movement_count(session)
    response = receipt(client, swap="y")
    assert response.status_code == 302, main_html(response)
    assert movement_count(session) == before + 3
    assert emergency_and_operational(session, world.centre_depot, centre.tube, "FRESH") == (400, 0)
    assert emergency_and_operational(session, world.centre_depot, centre.tube, "A") == (600, 400)
    assert "moved the oldest emergency stock into daily use: lot A 400" in client.get(response.headers["Location"]).text


@pytest.mark.parametrize("fields, message", [
    ({"item": "GLOVE"}, "no older usable emergency stock of GLOVE"),
    ({"pool": "operational"}, "The swap puts the fresh lot into the emergency pool"),
])
def test_a_refused_swap_records_no_receipt(client, auth, session, world, centre, fields, message):
    auth.login("supply@example.org")
    before = movement_count(session)
    response = receipt(client, swap="y", **fields)
    assert response.status_code == 422
    assert "Nothing was recorded" in response.text and message in html.unescape(response.text)
    assert movement_count(session) == before
    assert session.scalar(sa.select(Lot).where(Lot.lot_number == "FRESH")) is None
    # The checkbox stays on the page, ticked, so the person sees what was asked.
    assert re.search(r'<input[^>]*checked[^>]*name="swap"|<input[^>]*name="swap"[^>]*checked', main_html(response))
