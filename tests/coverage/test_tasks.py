"""The coverage package's job (stockpile/coverage/tasks.py), called as the scheduler calls it."""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext

import sqlalchemy as sa

from stockpile.db import utcnow
from stockpile.coverage import services as coverage
from stockpile.inventory import services as inventory
from stockpile.coverage.models import ComputedUse
from stockpile.coverage.tasks import keep_computed_use
from stockpile.scheduler import JobContext
from tests import factories
from tests.factories import TODAY


def test_the_day_s_computed_baselines_are_kept_and_older_days_forgotten(session):
    org = factories.org(session, "FS", "supply_centre")
    depot = factories.depot(session, org, "FS-D")
    tube = factories.item(session, "TUBE", "consumable")
    start = TODAY - dt.timedelta(days=40)
    factories.receive(session, depot, tube, "T1", dt.date(2028, 1, 1), 1000, today=start)
    for offset in range(0, 40, 5):  # 8 issues of 10 over 40 in-stock days: 14 a week
        when = start + dt.timedelta(days=offset)
        inventory.issue(session, factories.ctx(today=when), depot=depot, item=tube, quantity=10)
    coverage.evaluate(session, [org], today=TODAY - dt.timedelta(days=1), keep_computed=True)
    session.commit()
    job = JobContext(session=lambda: nullcontext(session), now=utcnow(), today=TODAY, tick=None, config={})
    assert keep_computed_use(job) == "2026-11-23: computed baselines kept for 1 organisation × item pair(s)"
    kept = session.scalars(sa.select(ComputedUse)).all()
    assert [(k.item_id, k.evaluated_on, k.issued, k.in_stock_days) for k in kept] == [(tube.id, TODAY, 80, 40)]
    [row] = coverage.evaluate(session, [org], today=TODAY)
    assert row.baseline.weekly_use == 14 and row.baseline.source == "computed"
