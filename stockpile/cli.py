"""Command-line commands (``flask --app stockpile …``): the same services as the API."""

from __future__ import annotations

import sys
from zoneinfo import ZoneInfo

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup

from stockpile import demo as demo_data
from stockpile import scheduler
from stockpile.auth import services as auth
from stockpile.auth.models import User
from stockpile.db import upgrade, utcnow
from stockpile.errors import DomainError
from stockpile.extensions import db
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Depot, Lot, Organisation
from stockpile.scheduler.models import JobOutcome


def _fail(error: DomainError) -> None:
    db.session.rollback()
    raise click.ClickException(error.message)


db_cli = AppGroup("db", help="Database schema.")


@db_cli.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema (Alembic)."""
    upgrade(db.engine, revision)
    click.echo(f"Database at {db.engine.url.render_as_string(hide_password=True)} is at {revision}.")


users_cli = AppGroup("users", help="User accounts.")


@users_cli.command("create-admin")
@click.option("--email", required=True)
@click.option("--password", help="Sign-in password for the pages (optional; the token works for the API).")
def create_admin(email: str, password: str | None) -> None:
    """Create the first administrator and print an API token on the last line."""
    session = db.session
    try:
        user = auth.create_user(session, email=email, password=password, role="admin")
        token = auth.create_token(session, user, name="created with create-admin")
    except DomainError as error:
        _fail(error)
    session.commit()
    click.echo(f"Administrator {user.email} created. API token:")
    click.echo(token)


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--role", required=True)
@click.option("--organisation", "organisation_code", help="Organisation code (not needed for admin).")
@click.option("--name", default="")
def create_user(email: str, password: str, role: str, organisation_code: str | None, name: str) -> None:
    """Create a user with one role in one organisation."""
    session = db.session
    try:
        org = inventory.by_code(session, Organisation, organisation_code) if organisation_code else None
        user = auth.create_user(session, email=email, password=password, name=name, role=role,
                                organisation=org)
    except DomainError as error:
        _fail(error)
    session.commit()
    click.echo(f"User {user.email} created ({role}{' at ' + organisation_code if organisation_code else ''}).")


tokens_cli = AppGroup("tokens", help="API tokens.")


@tokens_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", default="")
def create_token(email: str, name: str) -> None:
    """Print a new API token for the user, alone on the last line."""

    session = db.session
    user = session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"No user with e-mail {email}.")
    token = auth.create_token(session, user, name=name)
    session.commit()
    click.echo(f"New API token for {user.email}:")
    click.echo(token)


@click.command("verify")
def verify() -> None:
    """Recompute every balance from the ledger; exit 1 and list differences if any."""
    session = db.session
    differences = inventory.verify(session)
    if not differences:
        click.echo("Ledger and balances agree.")
        return
    for d in differences:
        lot = session.get(Lot, d.lot_id)
        depot = session.get(Depot, d.depot_id)
        click.echo(f"lot {lot.item.code}/{lot.lot_number} in {depot.code} ({d.pool}): "
                   f"balance {d.balance}, ledger {d.ledger}")
    click.echo(f"{len(differences)} balance(s) differ from the ledger.", err=True)
    sys.exit(1)


@click.command("demo")
@click.option("--if-empty", is_flag=True, help="Do nothing (and succeed) when data is already there.")
def demo(if_empty: bool) -> None:
    """Load the demo data set (invented quantities) into an empty database."""

    session = db.session
    if session.scalar(sa.select(sa.func.count()).select_from(Organisation)):
        if if_empty:
            click.echo("The database already holds data; demo data not loaded.")
            return
        raise click.ClickException("The database already holds organisations; the demo loads only into an empty one.")
    users = demo_data.load(session)
    session.commit()
    click.echo("Demo data loaded (invented quantities, for trying stockpile out). Demo users:")
    for email, password, role, org in users:
        click.echo(f"  {role:<16} {email:<36} password: {password:<20} {org or ''}")


jobs_cli = AppGroup("jobs", help="Scheduled jobs: list them, run one by hand.")


@jobs_cli.command("list")
def jobs_list() -> None:
    """List the jobs, when they run (crontab in the configured time zone) and their last run."""

    timezone = ZoneInfo(current_app.config["TIMEZONE"])
    for status in scheduler.job_statuses(db.session, timezone, utcnow()):
        job, last = status.job, status.last_run
        next_run = f"{status.next_run.astimezone(timezone):%Y-%m-%d %H:%M %Z}" if status.next_run else "never"
        click.echo(f"{job.name:<20} {job.schedule_text:<14} next {next_run}")
        click.echo(f"    {job.description}")
        if last is None:
            click.echo("    last run: never")
        else:
            took = f" in {last.duration_ms} ms" if last.duration_ms is not None else ""
            click.echo(f"    last run: {last.outcome} {last.started_at.astimezone(timezone):%Y-%m-%d %H:%M:%S}"
                       f"{took}{': ' + last.summary if last.summary else ''}")
        if status.missed_since is not None:
            click.echo(f"    no run since it was due at {status.missed_since.astimezone(timezone):%Y-%m-%d %H:%M}: "
                       "is the scheduler (flask --app stockpile scheduler) running?")


@jobs_cli.command("run")
@click.argument("name")
def jobs_run(name: str) -> None:
    """Run the job NAME once now, recorded like a scheduled run; exit 1 if it fails."""

    try:
        job = scheduler.job_named(name)
        run = scheduler.run_by_hand(scheduler.runtime_for(current_app), job)
    except DomainError as error:
        raise click.ClickException(error.message)
    if run.outcome != JobOutcome.SUCCEEDED.value:
        click.echo(run.error or "", err=True)
        raise click.ClickException(f"Job {name} failed after {run.duration_ms} ms: {run.summary}")
    click.echo(f"Job {name} succeeded in {run.duration_ms} ms: {run.summary}")


@click.command("scheduler")
def scheduler_command() -> None:
    """Run the scheduled jobs until Ctrl+C or SIGTERM (a service of its own, beside gunicorn)."""

    scheduler.serve(current_app)


def register(app: Flask) -> None:
    for command in (db_cli, users_cli, tokens_cli, verify, demo, jobs_cli, scheduler_command):
        app.cli.add_command(command)
