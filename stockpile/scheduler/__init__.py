"""Recurring jobs, run by a scheduler in a process of its own (``flask --app stockpile scheduler``).

APScheduler 3 fires the jobs of ``JOBS`` at their cron times in ``TIMEZONE`` (Europe/Oslo).
Nothing starts a scheduler in ``create_app`` or a web worker: each gunicorn worker would run
every job again (CONVENTIONS §9).

Every run goes through ``execute``: it takes the job's database lock, records a ``JobRun``
(start, duration, outcome, summary, the traceback when it failed) and never lets the job's
exception reach the scheduler. The lock is what keeps two scheduler processes started by
mistake from running a job twice:

- on PostgreSQL, a session-level ``pg_try_advisory_lock`` keyed by a hash of the job name, held
  on a connection of its own while the job runs (the server drops it if the process dies);
- elsewhere (SQLite), a ``JobLease`` row taken in a ``BEGIN IMMEDIATE`` transaction, or taken
  over once it has expired, and deleted at the end.

A lock only stops overlapping runs. A second process that fires the same tick a moment after
the first has finished would run it again, so under the lock a scheduled run also checks
whether any process already started a run at or after the tick's time, and skips it if so.
That compares times from each process's clock: scheduler hosts keep their clocks in sync (NTP).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from flask import Flask
from flask_babel import lazy_gettext as _l

from stockpile.alerts import tasks as alert_tasks
from stockpile.db import begin_write, utcnow
from stockpile.errors import Conflict, NotFound
from stockpile.extensions import db
from stockpile.coverage import tasks as coverage_tasks
from stockpile.rotation import tasks as rotation_tasks
from stockpile.scheduler.models import JobLease, JobOutcome, JobRun

log = logging.getLogger("stockpile.scheduler")

KEEP_RUNS = dt.timedelta(days=90)


@dataclass(frozen=True)
class JobContext:
    """What a job function is given: sessions on the database and the time of its run.

    ``session()`` opens a session to use in a ``with`` block; the job commits its own work.
    ``today`` is the date in the configured time zone; ``tick`` the scheduled time being run
    (None for a run by hand).
    """

    session: Callable[[], AbstractContextManager[so.Session]]
    now: dt.datetime
    today: dt.date
    tick: dt.datetime | None
    config: Mapping[str, Any]


@dataclass(frozen=True)
class Job:
    """A job of the registry: ``func(context)`` returns a one-line summary of what it did.

    ``schedule`` is a crontab line (minute hour day month weekday) in the configured time zone,
    or a function building an APScheduler trigger for that zone. ``lease`` must exceed the
    longest run the job will ever have: on SQLite, a lease that runs out lets another process
    start the job again. ``misfire_grace`` is how late a run may still start (a process that was
    busy or suspended at the tick); later ticks are dropped, and missed ticks run once, not
    once each (coalesced).
    """

    name: str
    func: Callable[[JobContext], str | None]
    schedule: str | Callable[[dt.tzinfo], BaseTrigger]
    description: str
    lease: dt.timedelta = dt.timedelta(minutes=15)
    misfire_grace: dt.timedelta = dt.timedelta(minutes=15)

    def trigger(self, timezone: dt.tzinfo) -> BaseTrigger:
        if isinstance(self.schedule, str):
            return CronTrigger.from_crontab(self.schedule, timezone=timezone)
        return self.schedule(timezone)

    @property
    def schedule_text(self) -> str:
        return self.schedule if isinstance(self.schedule, str) else "custom"


def cleanup_job_runs(job: JobContext) -> str:
    """Delete finished runs older than ``KEEP_RUNS``; returns how many went."""
    with job.session() as session:
        begin_write(session)
        result = session.execute(
            sa.delete(JobRun).where(JobRun.started_at < job.now - KEEP_RUNS,
                                    JobRun.outcome != JobOutcome.RUNNING.value),
            execution_options={"synchronize_session": False})
        session.commit()
    return f"{result.rowcount} run(s) older than {KEEP_RUNS.days} days deleted"


# The registry. A new job is one line here: name, function, crontab (in TIMEZONE), description.
#
# rotation hourly at half past: the 00:30 run moves tasks into due/overdue for the new day, the
# 05:30 run has the lists fresh before the working day, and the day's receipts and issues are in
# the plan within the hour. alerts_scan ten minutes later, so overdue tasks are seen; the digest
# at 07:00, after the morning's scans; webhooks every minute, the first retry's back-off;
# computed_use just after midnight, when yesterday's kept computed baselines stop counting.
JOBS: tuple[Job, ...] = (
    Job("rotation", rotation_tasks.refresh_rotation, "30 * * * *",
        _l("Re-plans rotation for every organisation holding emergency stock and brings the "
           "rotation tasks up to date: created, due, overdue or cancelled.")),
    Job("alerts_scan", alert_tasks.alerts_scan, "40 * * * *",
        _l("Evaluates every alert rule for every organisation: opens, re-opens and resolves alerts.")),
    Job("alert_digest", alert_tasks.alert_digest, "0 7 * * *",
        _l("Sends each user's daily e-mail digest of new alerts (when SMTP is configured)."),
        lease=dt.timedelta(minutes=30)),
    Job("webhooks", alert_tasks.webhooks, "* * * * *",
        _l("Delivers queued alert webhooks and retries failed ones after their back-off."),
        misfire_grace=dt.timedelta(minutes=1)),
    Job("job_runs_cleanup", cleanup_job_runs, "15 3 * * *",
        _l("Deletes the records of job runs older than 90 days.")),
    Job("computed_use", coverage_tasks.keep_computed_use, "5 0 * * *",
        _l("Computes the new day's computed baselines of every organisation and keeps them, so "
           "coverage pages need not read the last 13 weeks of movements.")),
)


def job_named(name: str, jobs: Sequence[Job] | None = None) -> Job:
    """The registered job called ``name``; NotFound names the jobs there are."""
    jobs = JOBS if jobs is None else jobs
    for job in jobs:
        if job.name == name:
            return job
    known = ", ".join(j.name for j in jobs)
    raise NotFound(f"There is no job called {name!r}. Jobs: {known}.", code="unknown_job")


class JobBusy(Conflict):
    """The job is running in another process (it holds the job's lock)."""

    code = "job_busy"


@dataclass(frozen=True)
class Runtime:
    """How runs reach the database: sessions, a connection for the advisory lock, who we are."""

    session: Callable[[], AbstractContextManager[so.Session]]
    lock_connection: Callable[[], AbstractContextManager[sa.Connection]]
    dialect: str
    timezone: ZoneInfo
    config: Mapping[str, Any]
    holder: str


@contextmanager
def _borrowed(session: so.Session) -> Iterator[so.Session]:
    # The tests' single session: left open, but what a job did not commit is undone, as
    # closing a session of its own would.
    try:
        yield session
    finally:
        if session.in_transaction():
            session.rollback()


def runtime_for(app: Flask) -> Runtime:
    """Runs against ``app``'s database (inside the tests' transaction when one is fixed)."""
    maker: so.sessionmaker[so.Session] = app.extensions["stockpile.db"]
    engine = maker.kw["bind"]
    fixed = db.fixed_session
    if fixed is not None:
        def session() -> AbstractContextManager[so.Session]:
            return _borrowed(fixed)

        def lock_connection() -> AbstractContextManager[sa.Connection]:
            return nullcontext(fixed.connection())
    else:
        def session() -> AbstractContextManager[so.Session]:
            return maker()  # closed (and what was not committed rolled back) at the end

        def lock_connection() -> AbstractContextManager[sa.Connection]:
            # Autocommit: the lock outlives transactions, and the connection is not left
            # idle in a transaction for as long as the job runs.
            return engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    return Runtime(session=session, lock_connection=lock_connection, dialect=engine.dialect.name,
                   timezone=ZoneInfo(app.config["TIMEZONE"]), config=dict(app.config),
                   holder=f"{socket.gethostname()}:{os.getpid()}"[:120])


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for the job (the same in every process)."""
    digest = hashlib.sha256(f"stockpile.job:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def job_lock(rt: Runtime, job: Job) -> Iterator[None]:
    """Hold ``job``'s database lock for the block; JobBusy when another process holds it."""
    if rt.dialect == "postgresql":
        with rt.lock_connection() as conn:
            key = lock_key(job.name)
            if not conn.scalar(sa.select(sa.func.pg_try_advisory_lock(key))):
                raise JobBusy(f"Job {job.name} is running in another process (it holds the job's "
                              "advisory lock); nothing was run.")
            try:
                yield
            finally:
                try:
                    conn.scalar(sa.select(sa.func.pg_advisory_unlock(key)))
                except Exception:
                    # Never hand a connection that may still hold the lock back to the pool;
                    # the server releases it when the connection goes.
                    conn.invalidate()
                    raise
        return
    with rt.session() as session:
        begin_write(session)
        now = utcnow()  # after waiting for the write lock, not before
        lease = session.scalar(sa.select(JobLease).where(JobLease.job == job.name)
                               .execution_options(populate_existing=True))
        if lease is not None and lease.expires_at > now:
            session.rollback()
            raise JobBusy(f"Job {job.name} is running in another process ({lease.holder} holds its "
                          f"lease until {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC); nothing was run.")
        if lease is None:
            session.add(JobLease(job=job.name, holder=rt.holder, expires_at=now + job.lease))
        else:  # expired: its holder died or overran the lease
            lease.holder, lease.expires_at = rt.holder, now + job.lease
        session.commit()
    try:
        yield
    finally:
        with rt.session() as session:
            begin_write(session)
            session.execute(sa.delete(JobLease).where(JobLease.job == job.name,
                                                      JobLease.holder == rt.holder))
            session.commit()


def latest_tick(trigger: BaseTrigger, now: dt.datetime, lookback: dt.timedelta) -> dt.datetime | None:
    """The last time ``trigger`` fired at or before ``now``, within ``lookback``; None if none."""
    tick = None
    fire = trigger.get_next_fire_time(None, now - lookback)
    while fire is not None and fire <= now:
        tick = fire
        fire = trigger.get_next_fire_time(fire, fire + dt.timedelta(microseconds=1))
    return tick


def _close_abandoned(session: so.Session, job: Job, now: dt.datetime) -> None:
    # Called under the job's lock, so no run of it is in progress: a run still marked running
    # belongs to a process that died before it could record the end.
    for run in session.scalars(sa.select(JobRun).where(JobRun.job == job.name,
                                                       JobRun.outcome == JobOutcome.RUNNING.value)):
        run.outcome = JobOutcome.FAILED.value
        run.finished_at = now
        run.summary = "Abandoned: the process running it stopped before the run ended."
        run.error = (f"The process {run.runner} stopped (killed, crashed or lost its database "
                     "connection) before it recorded the end of this run. Check that process's log.")


def execute(rt: Runtime, job: Job, *, tick: dt.datetime | None = None) -> JobRun | None:
    """Run ``job`` once under its lock and record the run; return the finished ``JobRun``.

    A job that raises is recorded as failed (summary ``Type: message``, the traceback in
    ``error``) and returned, not raised. Returns None, running nothing, when ``tick`` is given
    and a run started at or after it already (another process ran this tick). Raises JobBusy
    when another process holds the job's lock.
    """
    with job_lock(rt, job):
        with rt.session() as session:
            begin_write(session)
            if tick is not None and session.scalar(sa.select(sa.exists().where(
                    JobRun.job == job.name, JobRun.started_at >= tick))):
                session.rollback()
                return None
            started_at = utcnow()
            _close_abandoned(session, job, started_at)
            run = JobRun(job=job.name, started_at=started_at, outcome=JobOutcome.RUNNING.value,
                         summary="", runner=rt.holder)
            session.add(run)
            session.commit()
            run_id = run.id
        clock = time.monotonic()
        context = JobContext(session=rt.session, now=started_at,
                             today=started_at.astimezone(rt.timezone).date(), tick=tick, config=rt.config)
        interrupted: BaseException | None = None
        try:
            summary = job.func(context) or ""
            outcome, error = JobOutcome.SUCCEEDED, None
        except BaseException as exc:  # noqa: BLE001 - whatever the job raised is recorded
            outcome, error = JobOutcome.FAILED, traceback.format_exc()
            summary = f"{type(exc).__name__}: {exc}".strip()
            if not isinstance(exc, Exception):  # Ctrl+C or exit: record it, then let it through
                interrupted = exc
        duration_ms = int((time.monotonic() - clock) * 1000)
        with rt.session() as session:
            begin_write(session)
            run = session.get(JobRun, run_id, populate_existing=True)
            assert run is not None
            run.finished_at = utcnow()
            run.duration_ms = duration_ms
            run.outcome = outcome.value
            run.summary = summary
            run.error = error
            session.commit()
    if interrupted is not None:
        raise interrupted
    return run


def run_by_hand(rt: Runtime, job: Job) -> JobRun:
    """Run ``job`` now, recorded like a scheduled run; JobBusy if it is running elsewhere."""
    run = execute(rt, job)
    assert run is not None  # only a scheduled tick is ever skipped
    return run


def run_scheduled(rt: Runtime, job: Job, trigger: BaseTrigger) -> None:
    """What the scheduler calls at each tick: run, record, log; never raises."""
    try:
        tick = latest_tick(trigger, utcnow(), job.misfire_grace + dt.timedelta(minutes=1))
        run = execute(rt, job, tick=tick)
    except JobBusy as busy:
        log.info("Skipped %s: %s", job.name, busy.message)
        return
    except Exception:
        # The database is unreachable or the run could not be recorded: say so and keep the
        # scheduler alive for the next tick.
        log.exception("Job %s could not be run or recorded", job.name)
        return
    if run is None:
        log.info("Skipped %s: the tick of %s has already run in another process", job.name,
                 tick.isoformat() if tick else "?")
    elif run.outcome == JobOutcome.FAILED.value:
        log.error("Job %s failed after %d ms: %s\n%s", job.name, run.duration_ms, run.summary, run.error)
    else:
        log.info("Job %s succeeded in %d ms: %s", job.name, run.duration_ms, run.summary)


def build_scheduler(app: Flask, jobs: Sequence[Job] | None = None) -> BackgroundScheduler:
    """A scheduler (not started) with ``jobs`` (default: the registry) at their times."""
    rt = runtime_for(app)
    scheduler = BackgroundScheduler(timezone=rt.timezone)
    for job in JOBS if jobs is None else jobs:
        trigger = job.trigger(rt.timezone)
        scheduler.add_job(run_scheduled, trigger, args=(rt, job, trigger), id=job.name, name=job.name,
                          coalesce=True, max_instances=1,
                          misfire_grace_time=max(1, int(job.misfire_grace.total_seconds())))
    return scheduler


def serve(app: Flask, jobs: Sequence[Job] | None = None) -> None:
    """Run the scheduler until SIGINT (Ctrl+C) or SIGTERM; a running job finishes, and is
    recorded, before it returns."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    # APScheduler's own per-run lines would repeat ours; its warnings (missed runs) still show.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = build_scheduler(app, jobs)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    scheduler.start()
    try:
        for planned in scheduler.get_jobs():
            log.info("Job %s: next run %s", planned.id, planned.next_run_time.isoformat())
        log.info("Scheduler started (pid %d, time zone %s); stop it with Ctrl+C or SIGTERM.",
                 os.getpid(), scheduler.timezone)
        while not stop.wait(timeout=0.2):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # a second Ctrl+C interrupts the wait below
        log.info("Stopping: waiting for running jobs to finish.")
        scheduler.shutdown(wait=True)
        log.info("Scheduler stopped.")


# What the jobs page and the CLI show about the jobs.
@dataclass(frozen=True)
class JobStatus:
    job: Job
    next_run: dt.datetime | None
    last_run: JobRun | None
    last_success: JobRun | None
    missed_since: dt.datetime | None  # a tick that should have run by now but did not


def job_statuses(session: so.Session, timezone: dt.tzinfo, now: dt.datetime,
                 jobs: Sequence[Job] | None = None) -> list[JobStatus]:
    """Each registered job with its next time, its last run and last success, and the tick it
    missed (no run started since it was due, grace included), which means no scheduler runs."""
    statuses = []
    for job in JOBS if jobs is None else jobs:
        trigger = job.trigger(timezone)
        last = session.scalar(sa.select(JobRun).where(JobRun.job == job.name)
                              .order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(1))
        success = session.scalar(sa.select(JobRun).where(JobRun.job == job.name,
                                                         JobRun.outcome == JobOutcome.SUCCEEDED.value)
                                 .order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(1))
        due = latest_tick(trigger, now - job.misfire_grace, dt.timedelta(days=8))
        missed = due if due is not None and (last is None or last.started_at < due) else None
        statuses.append(JobStatus(job, trigger.get_next_fire_time(None, now), last, success, missed))
    return statuses


def recent_runs(session: so.Session, *, job: str | None = None, limit: int = 100) -> list[JobRun]:
    stmt = sa.select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(limit)
    if job:
        stmt = stmt.where(JobRun.job == job)
    return list(session.scalars(stmt))
