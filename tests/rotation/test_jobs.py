"""The rotation job (stockpile/rotation/tasks.py), called as the scheduler and the CLI call it."""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from stockpile.coverage import services as coverage
from stockpile.db import utcnow
from stockpile.inventory import services as inventory
from stockpile.scheduler.models import JobRun
from stockpile.rotation.models import RotationTask
from stockpile.rotation.tasks import refresh_rotation
from stockpile.scheduler import JobContext
from tests import factories
from tests.factories import TODAY


def context(session, today: dt.date = TODAY) -> JobContext:
    return JobContext(session=lambda: nullcontext(session), now=utcnow(), today=today, tick=None, config={})


def emergency_lots(session, today: dt.date = TODAY):
    """A centre using 10 tubes a day with emergency lots A (expiring in 120 days: overdue, as
    worked in tests/rotation/test_tasks.py) and B (in 150 days: planned)."""
    org = factories.org(session, "FS", "supply_centre")
    depot = factories.depot(session, org, "FS-D")
    tube = factories.item(session, "TUBE", "consumable")
    coverage.set_manual_baseline(session, factories.ctx(today=today), organisation=org, item=tube, weekly_use=70)
    for lot, expires_in, quantity in (("A", 120, 1000), ("B", 150, 500)):
        factories.receive(session, depot, tube, lot, today + dt.timedelta(days=expires_in), quantity,
                          pool="emergency", today=today)
    session.commit()
    return org, depot, tube


def tasks(session) -> dict[str, tuple[str, int]]:
    return {t.lot.lot_number: (t.state, t.quantity) for t in session.scalars(sa.select(RotationTask))}


def test_the_job_plans_tasks_and_is_idempotent(session):
    emergency_lots(session)
    summary = refresh_rotation(context(session))
    assert summary == ("2026-11-23: 2 task(s) created, 0 updated, 0 cancelled; "
                       "open: 1 planned, 0 due, 1 overdue")
    assert tasks(session) == {"A": ("overdue", 1000), "B": ("planned", 500)}
    again = refresh_rotation(context(session))
    assert "0 task(s) created, 0 updated, 0 cancelled" in again
    # 70 days on, B's rotate-by date (72 days out) falls within the week: due.
    assert "open: 0 planned, 1 due, 1 overdue" in refresh_rotation(context(session, TODAY + dt.timedelta(days=70)))
    assert tasks(session)["B"] == ("due", 500)


def test_the_job_cancels_tasks_of_an_organisation_whose_last_emergency_lot_has_gone(session):
    _org, depot, tube = emergency_lots(session)
    refresh_rotation(context(session))
    for lot, quantity in (("A", 1000), ("B", 500)):
        inventory.transfer(session, factories.ctx(), from_depot=depot, from_pool="emergency", to_depot=depot,
                           to_pool="operational", item=tube, quantity=quantity, lot_number=lot)
    session.commit()
    summary = refresh_rotation(context(session))
    assert "2 cancelled" in summary
    assert tasks(session) == {"A": ("cancelled", 1000), "B": ("cancelled", 500)}
    assert "0 cancelled; open: 0 planned, 0 due, 0 overdue" in refresh_rotation(context(session))


def test_jobs_run_rotation_from_the_cli_is_recorded(runner, session):
    today = dt.datetime.now(ZoneInfo("Europe/Oslo")).date()  # the command runs on the real date
    emergency_lots(session, today)
    result = runner.invoke(args=["jobs", "run", "rotation"])
    assert result.exit_code == 0, result.output
    assert "Job rotation succeeded" in result.output and "2 task(s) created" in result.output
    assert tasks(session) == {"A": ("overdue", 1000), "B": ("planned", 500)}
    [run] = session.scalars(sa.select(JobRun).where(JobRun.job == "rotation"))
    assert run.outcome == "succeeded" and "2 task(s) created" in run.summary and run.error is None
