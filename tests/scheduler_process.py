"""A scheduler process for tests/test_scheduler.py: the real scheduler with two fast jobs.

    DATABASE_URL=… python -m tests.scheduler_process

"probe" fires every second (Europe/Oslo cron, so every process shares the same ticks), sleeps
a little and returns the tick it ran; "broken" fires every second and raises. Stop it with
SIGTERM; it logs to stderr like ``flask --app stockpile scheduler`` does.
"""

from __future__ import annotations

import datetime as dt
import time

from apscheduler.triggers.cron import CronTrigger

from stockpile import create_app, scheduler

PROBE_SLEEP = 0.3
BROKEN_MESSAGE = "the broken job failed on purpose"


def every_second(timezone: dt.tzinfo) -> CronTrigger:
    return CronTrigger(second="*", timezone=timezone)


def probe(job: scheduler.JobContext) -> str:
    time.sleep(PROBE_SLEEP)
    assert job.tick is not None
    return f"tick {job.tick.isoformat()}"


def broken(job: scheduler.JobContext) -> str:
    raise RuntimeError(BROKEN_MESSAGE)


JOBS = (
    scheduler.Job("probe", probe, every_second, "Sleeps and reports its tick.",
                  lease=dt.timedelta(seconds=10), misfire_grace=dt.timedelta(seconds=1)),
    scheduler.Job("broken", broken, every_second, "Always fails.",
                  lease=dt.timedelta(seconds=10), misfire_grace=dt.timedelta(seconds=1)),
)


if __name__ == "__main__":
    scheduler.serve(create_app({"SECRET_KEY": "scheduler-test"}), JOBS)
