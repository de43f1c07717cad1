"""The scheduler (stockpile/scheduler/): every run recorded, failures recorded and survived,
one run per tick across processes, the CLI commands and the administration page."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so
from apscheduler.triggers.cron import CronTrigger

from stockpile import create_app, scheduler
from stockpile.db import make_engine, upgrade, utcnow
from stockpile.extensions import db
from stockpile.inventory.models import Organisation
from stockpile.scheduler.models import JobLease, JobRun
from tests import factories, scheduler_process

OSLO = ZoneInfo("Europe/Oslo")
REPO = Path(__file__).resolve().parent.parent


def job(name: str, func, **kw) -> scheduler.Job:
    return scheduler.Job(name, func, "0 0 1 1 *", "A job of the tests.", **kw)


def runs_of(session: so.Session, name: str) -> list[JobRun]:
    return list(session.scalars(sa.select(JobRun).where(JobRun.job == name).order_by(JobRun.id)
                                .execution_options(populate_existing=True)))


def ok(_job: scheduler.JobContext) -> str:
    return "fine"


# --- a run and its record ----------------------------------------------------------------------

def test_a_run_is_recorded_with_its_outcome_and_duration(app, session):
    seen = []

    def slow(context: scheduler.JobContext) -> str:
        seen.append(context)
        time.sleep(0.05)
        with context.session() as s:
            assert s.scalar(sa.select(sa.literal(1))) == 1
        return "did it"

    returned = scheduler.run_by_hand(scheduler.runtime_for(app), job("slow", slow))
    [run] = runs_of(session, "slow")
    assert run.id == returned.id
    assert (run.outcome, run.summary, run.error) == ("succeeded", "did it", None)
    assert run.duration_ms >= 50 and run.finished_at - run.started_at >= dt.timedelta(milliseconds=50)
    assert run.runner == f"{socket.gethostname()}:{os.getpid()}"
    [context] = seen
    assert context.tick is None and context.now == run.started_at
    assert context.today == run.started_at.astimezone(OSLO).date()


def test_a_job_that_raises_is_recorded_as_failed_its_work_undone_and_the_next_job_runs(app, session):
    def failing(context: scheduler.JobContext) -> str:
        with context.session() as s:
            factories.org(s, "HALF-DONE")
            raise ValueError("the supplier file is missing")

    rt = scheduler.runtime_for(app)
    run = scheduler.run_by_hand(rt, job("failing", failing))
    assert run.outcome == "failed" and run.summary == "ValueError: the supplier file is missing"
    [stored] = runs_of(session, "failing")
    assert stored.outcome == "failed" and stored.duration_ms is not None and stored.finished_at is not None
    assert "Traceback" in stored.error and "in failing" in stored.error
    assert "ValueError: the supplier file is missing" in stored.error
    assert session.scalar(sa.select(Organisation).where(Organisation.code == "HALF-DONE")) is None
    # Nothing is left locked: the same job and the next one run.
    assert scheduler.run_by_hand(rt, job("failing", failing)).outcome == "failed"
    assert scheduler.run_by_hand(rt, job("after", ok)).outcome == "succeeded"
    assert session.scalars(sa.select(JobLease)).all() == []


def test_a_scheduled_run_never_raises(app, session, caplog):
    rt = scheduler.runtime_for(app)
    trigger = CronTrigger(second="*", timezone=OSLO)

    def boom(_context):
        raise RuntimeError("boom")

    with caplog.at_level(logging.INFO, logger="stockpile.scheduler"):
        scheduler.run_scheduled(rt, job("boom", boom), trigger)

        def unreachable():
            raise sa.exc.OperationalError("SELECT 1", {}, Exception("could not connect to server"))

        scheduler.run_scheduled(dataclasses.replace(rt, session=unreachable), job("cut-off", ok), trigger)
    assert [r.outcome for r in runs_of(session, "boom")] == ["failed"]
    assert runs_of(session, "cut-off") == []
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Job boom failed") and "RuntimeError: boom" in m for m in messages)
    assert "Job cut-off could not be run or recorded" in messages


def test_each_tick_runs_once(app, session):
    rt = scheduler.runtime_for(app)
    tick = utcnow()
    assert scheduler.execute(rt, job("ticking", ok), tick=tick) is not None
    # Another process firing the same tick a moment later finds it done.
    assert scheduler.execute(rt, job("ticking", ok), tick=tick) is None
    assert scheduler.execute(rt, job("ticking", ok), tick=utcnow()) is not None
    assert len(runs_of(session, "ticking")) == 2


def test_a_run_left_running_by_a_dead_process_is_closed_as_failed(app, session):
    session.add(JobRun(job="orphan", started_at=utcnow() - dt.timedelta(hours=1), outcome="running",
                       summary="", runner="gone-host:4242"))
    session.commit()
    scheduler.run_by_hand(scheduler.runtime_for(app), job("orphan", ok))
    old, new = runs_of(session, "orphan")
    assert old.outcome == "failed" and old.finished_at is not None and "gone-host:4242" in old.error
    assert new.outcome == "succeeded"


def test_latest_tick_in_oslo_time():
    hourly = CronTrigger.from_crontab("30 * * * *", timezone=OSLO)
    at = dt.datetime(2026, 11, 23, 10, 45, tzinfo=OSLO)
    assert scheduler.latest_tick(hourly, at, dt.timedelta(hours=2)) == dt.datetime(2026, 11, 23, 10, 30, tzinfo=OSLO)
    assert scheduler.latest_tick(hourly, at.replace(minute=30), dt.timedelta(hours=2)).minute == 30
    assert scheduler.latest_tick(hourly, at, dt.timedelta(minutes=10)) is None
    daily = CronTrigger.from_crontab("30 5 * * *", timezone=OSLO)
    # 05:30 in Oslo is 04:30 UTC in winter and 03:30 UTC in summer.
    assert scheduler.latest_tick(daily, dt.datetime(2026, 11, 23, 6, tzinfo=dt.UTC),
                                 dt.timedelta(days=1)).astimezone(dt.UTC).hour == 4
    assert scheduler.latest_tick(daily, dt.datetime(2026, 7, 1, 6, tzinfo=dt.UTC),
                                 dt.timedelta(days=1)).astimezone(dt.UTC).hour == 3


def test_the_registry():
    names = [j.name for j in scheduler.JOBS]
    assert names == ["rotation", "alerts_scan", "alert_digest", "webhooks", "job_runs_cleanup", "computed_use"]
    for registered in scheduler.JOBS:
        assert registered.trigger(OSLO).get_next_fire_time(None, utcnow()) is not None
    with pytest.raises(scheduler.NotFound, match="Jobs: rotation, alerts_scan, alert_digest, webhooks, job_runs_cleanup"):
        scheduler.job_named("nope")


def test_cleanup_deletes_old_finished_runs_only(app, session):
    now = utcnow()
    for age, outcome in ((100, "succeeded"), (100, "failed"), (10, "succeeded")):
        session.add(JobRun(job="old", started_at=now - dt.timedelta(days=age), outcome=outcome, summary="",
                           runner="x:1"))
    session.commit()
    run = scheduler.run_by_hand(scheduler.runtime_for(app), scheduler.job_named("job_runs_cleanup"))
    assert run.summary == "2 run(s) older than 90 days deleted"
    assert [(now - r.started_at).days for r in runs_of(session, "old")] == [10]


# --- the lock ------------------------------------------------------------------------------------

@pytest.fixture
def sqlite_app(tmp_path: Path):
    """An app on a migrated SQLite file of its own (committed data, as two processes would see)."""
    url = f"sqlite:///{tmp_path / 'lease.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "test"})
    yield app
    with app.app_context():
        db.engine.dispose()


def test_a_lease_held_elsewhere_skips_the_run_and_an_expired_one_is_taken_over(sqlite_app, caplog):
    rt = scheduler.runtime_for(sqlite_app)
    with sqlite_app.app_context():
        session = db.session
        session.add(JobLease(job="leased", holder="other-host:99", expires_at=utcnow() + dt.timedelta(minutes=5)))
        session.commit()
        with pytest.raises(scheduler.JobBusy, match="other-host:99 holds its lease"):
            scheduler.run_by_hand(rt, job("leased", ok))
        with caplog.at_level(logging.INFO, logger="stockpile.scheduler"):
            scheduler.run_scheduled(rt, job("leased", ok), CronTrigger(second="*", timezone=OSLO))
        assert any(r.getMessage().startswith("Skipped leased") for r in caplog.records)
        assert runs_of(session, "leased") == []
        session.get(JobLease, "leased").expires_at = utcnow() - dt.timedelta(seconds=1)
        session.commit()
        assert scheduler.run_by_hand(rt, job("leased", ok)).outcome == "succeeded"
        session.expire_all()
        assert session.scalars(sa.select(JobLease)).all() == []


def test_an_advisory_lock_held_elsewhere_skips_the_run(postgres_engine):
    app = create_app({"TESTING": True, "SECRET_KEY": "test",
                      "DATABASE_URL": postgres_engine.url.render_as_string(hide_password=False)})
    rt = scheduler.runtime_for(app)
    with postgres_engine.connect() as other:
        assert other.scalar(sa.select(sa.func.pg_try_advisory_lock(scheduler.lock_key("locked"))))
        with pytest.raises(scheduler.JobBusy, match="advisory lock"):
            scheduler.run_by_hand(rt, job("locked", ok))
        other.scalar(sa.select(sa.func.pg_advisory_unlock(scheduler.lock_key("locked"))))
        other.rollback()
    with so.Session(postgres_engine) as session:
        assert runs_of(session, "locked") == []
        assert scheduler.run_by_hand(rt, job("locked", ok)).outcome == "succeeded"
        assert [r.outcome for r in runs_of(session, "locked")] == ["succeeded"]
    with app.app_context():
        db.engine.dispose()


def test_lock_keys_are_stable_64_bit_integers():
    assert scheduler.lock_key("rotation") == scheduler.lock_key("rotation") != scheduler.lock_key("alerts")
    assert scheduler.lock_key("rotation") == -113276049180025989  # sha256 of "stockpile.job:rotation"
    assert all(-2**63 <= scheduler.lock_key(j.name) < 2**63 for j in scheduler.JOBS)


# --- two scheduler processes on one database ---------------------------------------------------

def _process_env(**settings: str) -> dict[str, str]:
    """The environment for a scheduler process of a test, without libfaketime.

    Under ``faketime`` (docs/testing.md) Python's timed waits never return — glibc's
    ``sem_clockwait``, behind ``threading.Event.wait``, is not faked — so APScheduler would never
    fire. The processes run on the real clock; these tests compare only times they wrote.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME")}
    preload = [lib for lib in env.pop("LD_PRELOAD", "").split(":") if lib and "faketime" not in lib]
    if preload:
        env["LD_PRELOAD"] = ":".join(preload)
    return {**env, **settings}


def _start(url: str, log: Path) -> subprocess.Popen:
    env = _process_env(DATABASE_URL=url, PYTHONPATH=str(REPO))
    with log.open("w") as out:  # the child writes to its own copy of the file descriptor
        return subprocess.Popen([sys.executable, "-m", "tests.scheduler_process"], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=out)


def _wait_for(logs: list[Path], text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not all(text in log.read_text() for log in logs):
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} within {timeout} s:\n" + "\n".join(log.read_text() for log in logs))
        time.sleep(0.05)


def _finished_runs(engine: sa.Engine, name: str) -> list[JobRun]:
    with so.Session(engine) as session:
        return list(session.scalars(sa.select(JobRun).where(JobRun.job == name, JobRun.outcome != "running")
                                    .order_by(JobRun.started_at)))


PROBE_TICKS = 3


def _two_schedulers(url: str, engine: sa.Engine, tmp_path: Path, timeout: float = 120.0):
    """Run two scheduler processes side by side until the probe has run ``PROBE_TICKS`` ticks, the
    failing job has failed twice and the probe ran again after it, and one process has skipped a
    tick of the probe; then stop them. However loaded the machine (a busy process may miss a tick,
    as the misfire grace allows), that happens within ``timeout``; a fixed window would not."""
    logs = [tmp_path / "scheduler-1.log", tmp_path / "scheduler-2.log"]
    processes = [_start(url, log) for log in logs]
    try:
        _wait_for(logs, "Scheduler started")
        deadline = time.monotonic() + timeout
        while True:
            probes, broken = _finished_runs(engine, "probe"), _finished_runs(engine, "broken")
            skipped = sum(log.read_text().count("Skipped probe") for log in logs)
            if (len(probes) >= PROBE_TICKS and len(broken) >= 2 and skipped
                    and probes[-1].started_at > broken[0].finished_at):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"within {timeout} s: {len(probes)} probe runs, {len(broken)} broken runs, "
                            f"{skipped} skips:\n" + "\n".join(log.read_text() for log in logs))
            time.sleep(0.2)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=30) for process in processes]
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], "\n".join(texts)
    assert all("Scheduler stopped." in text for text in texts)
    return texts, {process.pid for process in processes}


def _assert_each_tick_ran_once(engine: sa.Engine, texts: list[str], pids: set[int]) -> None:
    with so.Session(engine) as session:
        probes = list(session.scalars(sa.select(JobRun).where(JobRun.job == "probe").order_by(JobRun.started_at)))
        broken = list(session.scalars(sa.select(JobRun).where(JobRun.job == "broken").order_by(JobRun.started_at)))
    assert len(probes) >= PROBE_TICKS and all(r.outcome == "succeeded" for r in probes), \
        [(r.outcome, r.error) for r in probes]
    ticks = Counter(r.summary for r in probes)
    assert [tick for tick, n in ticks.items() if n > 1] == []  # no tick ran twice
    for earlier, later in itertools.pairwise(probes):  # and no two runs overlapped
        assert earlier.finished_at <= later.started_at, (earlier.summary, later.summary)
    assert {int(r.runner.rsplit(":", 1)[1]) for r in probes} <= pids
    # The process that did not get a tick skipped it; a tick skipped as "already run" was run.
    skips = [line for text in texts for line in text.splitlines() if "Skipped probe" in line]
    assert skips
    for line in skips:
        if "has already run in another process" in line:
            tick = line.split("the tick of ", 1)[1].split(" has already run", 1)[0]
            assert f"tick {tick}" in ticks, (line, sorted(ticks))
    # The failing job failed at every tick it ran, recorded with its error, and the schedulers went on.
    assert len(broken) >= 2 and all(r.outcome == "failed" for r in broken)
    assert all(scheduler_process.BROKEN_MESSAGE in r.error and "Traceback" in r.error for r in broken)
    assert max(r.started_at for r in probes) > min(r.finished_at for r in broken)
    assert "running" not in {r.outcome for r in probes + broken}  # shutdown waited for them


@pytest.mark.real_clock
def test_two_scheduler_processes_on_sqlite_run_each_tick_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'scheduler.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    try:
        texts, pids = _two_schedulers(url, engine, tmp_path)
        _assert_each_tick_ran_once(engine, texts, pids)
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.real_clock
def test_two_scheduler_processes_on_postgresql_run_each_tick_once(postgres_database, tmp_path):
    url = postgres_database("scheduler")
    engine = make_engine(url)
    try:
        texts, pids = _two_schedulers(url, engine, tmp_path)
        _assert_each_tick_ran_once(engine, texts, pids)
    finally:
        engine.dispose()


@pytest.mark.real_clock
def test_flask_scheduler_command_runs_until_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path / 'command.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    log = tmp_path / "command.log"
    env = _process_env(DATABASE_URL=url, SECRET_KEY="scheduler-test")
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "stockpile", "scheduler"], cwd=REPO,
                                   env=env, stdout=subprocess.DEVNULL, stderr=out)
    try:
        _wait_for([log], "Scheduler started")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    text = log.read_text()
    assert code == 0, text
    assert all(f"Job {j.name}: next run" in text for j in scheduler.JOBS)
    assert "time zone Europe/Oslo" in text and "Scheduler stopped." in text


# --- the CLI -------------------------------------------------------------------------------------

def test_jobs_run_exits_1_with_the_error_when_the_job_fails(runner, session, monkeypatch):
    def failing(_context):
        raise RuntimeError("the mail server refused the digest")

    monkeypatch.setattr(scheduler, "JOBS", (*scheduler.JOBS, job("digest", failing)))
    result = runner.invoke(args=["jobs", "run", "digest"])
    assert result.exit_code == 1
    assert "Job digest failed after" in result.output
    assert "RuntimeError: the mail server refused the digest" in result.output
    assert "Traceback" in result.output
    [run] = runs_of(session, "digest")
    assert run.outcome == "failed"


def test_jobs_run_refuses_an_unknown_job_and_a_busy_one(runner, session):
    unknown = runner.invoke(args=["jobs", "run", "nope"])
    assert unknown.exit_code == 1 and "There is no job called 'nope'. Jobs: rotation, alerts_scan," in unknown.output
    if session.get_bind().dialect.name == "sqlite":
        session.add(JobLease(job="rotation", holder="other-host:7", expires_at=utcnow() + dt.timedelta(minutes=5)))
        session.commit()
        busy = runner.invoke(args=["jobs", "run", "rotation"])
        assert busy.exit_code == 1 and "running in another process (other-host:7" in busy.output
    assert runs_of(session, "rotation") == []


def test_jobs_list_shows_schedule_and_last_run(runner, session):
    session.add(JobRun(job="rotation", started_at=utcnow(), finished_at=utcnow(), duration_ms=120,
                       outcome="failed", summary="RuntimeError: no database", error="Traceback …", runner="h:1"))
    session.commit()
    result = runner.invoke(args=["jobs", "list"])
    assert result.exit_code == 0, result.output
    assert "rotation             30 * * * *" in result.output
    assert "last run: failed" in result.output and "RuntimeError: no database" in result.output
    assert "job_runs_cleanup     15 3 * * *" in result.output
    assert "last run: never" in result.output and "is the scheduler" in result.output


# --- the administration page ---------------------------------------------------------------------

def test_the_page_lists_runs_with_failures_marked(client, auth, session, world):
    now = utcnow()
    session.add_all([
        JobRun(job="rotation", started_at=now - dt.timedelta(minutes=2), finished_at=now, duration_ms=1500,
               outcome="succeeded", summary="5 organisation(s): 2 task(s) created", runner="h:1"),
        JobRun(job="rotation", started_at=now - dt.timedelta(minutes=1), finished_at=now, duration_ms=20,
               outcome="failed", summary="OperationalError: database is locked",
               error="Traceback (most recent call last):\n  …\nOperationalError: database is locked", runner="h:1"),
    ])
    session.commit()
    auth.login("admin@example.org")
    page = client.get("/admin/jobs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('class="job-run job-failed"') == 1 and html.count('data-outcome="succeeded"') == 1
    assert "OperationalError: database is locked" in html and "Traceback (most recent call last)" in html
    assert "5 organisation(s): 2 task(s) created" in html and "1.5 s" in html
    # The daily clean-up has never run although it was due: the page says so.
    assert "No run since it was due" in html
    assert 'href="/admin/jobs"' in html  # in the administration menu
    only_cleanup = client.get("/admin/jobs?job=job_runs_cleanup").get_data(as_text=True)
    assert "database is locked" not in only_cleanup.split("Recent runs")[1]
    assert client.get("/admin/jobs?job=nope").status_code == 404


@pytest.mark.parametrize("who", ["supply", "coordinator", "viewer"])
def test_the_page_is_for_administrators_only(client, auth, world, who):
    auth.login(f"{who}@example.org")
    assert client.get("/admin/jobs").status_code == 403


def test_the_page_needs_a_sign_in(client):
    response = client.get("/admin/jobs")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
