#!/usr/bin/env python3
"""Benchmark: coverage for a national data set of municipalities.

Builds (once, through the posting path) N municipalities under one region, each holding the five
PPE groups in several lots with a § 8a baseline and a year of monthly issues, then times:
- coverage.evaluate for one municipality (the PPE duty page),
- coverage.evaluate + summarise for the whole region (the coordinator's page, /coverage/summary),
- the same under the "Pandemic wave" scenario,
and counts the SQL statements each runs (they must not grow with the number of rows).

    .venv/bin/python bench/coverage.py                      # SQLite file in /tmp, 356 municipalities
    .venv/bin/python bench/coverage.py --url postgresql://postgres@127.0.0.1/bench --municipalities 356

The data set is built into an empty database and reused on later runs (delete it to rebuild).

Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.db import make_engine, upgrade
from stockpile.coverage import services as coverage
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Organisation

GROUPS = {"GLOVES": "gloves", "MASKS": "face_masks", "FFP2": "respirators", "GOWNS": "gowns", "VISORS": "eye_protection"}


def build(session: so.Session, municipalities: int, today: dt.date) -> None:
    rng = random.Random(7)
    region = inventory.create_organisation(session, code="REGION", name="Bench region", kind="region")
    items = [inventory.create_item(session, code=code, name=code.title(), category="ppe", unit="piece",
                                   ppe_group=group) for code, group in GROUPS.items()]
    start = today - dt.timedelta(days=364)
    for n in range(municipalities):
        org = inventory.create_organisation(session, code=f"K{n:04d}", name=f"Municipality {n:04d}",
                                            kind="municipality", parent=region.code)
        depot = inventory.create_depot(session, code=f"K{n:04d}-D", name="Store", organisation=org)
        for item in items:
            yearly = rng.randint(500, 50_000)
            coverage.set_annual_baseline(session, inventory.Context(None, dt.datetime.now(dt.timezone.utc), today),
                                          organisation=org, item=item,
                                          annual_use={y: round(yearly * rng.uniform(0.9, 1.1)) for y in range(today.year - 3, today.year)},
                                          valid_from=dt.date(today.year, 1, 1))
            for lot in range(4):
                when = start + dt.timedelta(days=90 * lot)
                ctx = inventory.Context(None, dt.datetime.combine(when, dt.time(9), tzinfo=dt.timezone.utc), when)
                inventory.receive(session, ctx, depot=depot, item=item, lot_number=f"L{n}-{lot}",
                                  expiry=today + dt.timedelta(days=rng.randint(-30, 900)),
                                  quantity=round(yearly * rng.uniform(0.2, 0.4)))
            for month in range(12):
                when = start + dt.timedelta(days=30 * month + 15)
                ctx = inventory.Context(None, dt.datetime.combine(when, dt.time(12), tzinfo=dt.timezone.utc), when)
                try:
                    inventory.issue(session, ctx, depot=depot, item=item, quantity=max(1, yearly // 14))
                except inventory.InsufficientStock:
                    pass
        session.commit()


def timed(label: str, fn, engine: sa.Engine, repeat: int = 5) -> None:
    statements = 0

    def count(*_args) -> None:
        nonlocal statements
        statements += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    runs = []
    for _ in range(repeat):
        statements = 0
        began = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - began)
    sa.event.remove(engine, "before_cursor_execute", count)
    print(f"{label:<52} median {statistics.median(runs) * 1000:8.1f} ms  "
          f"({statements} SQL statements, {result})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="sqlite:////tmp/stockpile-bench.sqlite3")
    parser.add_argument("--municipalities", type=int, default=356)
    args = parser.parse_args()
    engine = make_engine(args.url)
    today = inventory.local_today()
    upgrade(engine)
    with so.Session(engine, expire_on_commit=False) as session:
        if session.scalar(sa.select(sa.func.count()).select_from(Organisation)) == 0:
            began = time.perf_counter()
            build(session, args.municipalities, today)
            print(f"built {args.municipalities} municipalities in {time.perf_counter() - began:.0f} s")
        region = session.scalar(sa.select(Organisation).where(Organisation.code == "REGION"))
        members = coverage.members_of(session, region)
        one = members[len(members) // 2]
        print(f"{engine.dialect.name}: {len(members)} municipalities × {len(GROUPS)} PPE items")
        timed("one municipality (PPE duty page)",
              lambda: f"{len(coverage.evaluate(session, [one], today=today))} rows", engine)
        timed("whole region, evaluate + summarise",
              lambda: f"{sum(s.meets_target for s in coverage.summarise(coverage.evaluate(session, members, today=today)))} meet the duty", engine)
        timed("whole region under 'Pandemic wave'",
              lambda: f"{len(coverage.evaluate(session, members, today=today, scenario='Pandemic wave'))} rows", engine)


if __name__ == "__main__":
    main()
