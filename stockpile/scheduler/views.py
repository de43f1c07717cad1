"""The administrators' page of scheduled jobs: when each last ran, how it ended, what is next."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, render_template, request
from flask_babel import format_datetime
from flask_login import current_user

from stockpile import pages
from stockpile.auth import services as auth
from stockpile.db import utcnow
from stockpile.extensions import db
from stockpile.scheduler import job_named, job_statuses, recent_runs

bp = Blueprint("jobs", __name__)
pages.require_sign_in(bp)

RUNS_SHOWN = 100


@bp.app_template_filter("job_time")
def _format_job_time(value: dt.datetime | None) -> str:
    """A timestamp in the site's time zone, to the second."""
    return format_datetime(value, "yyyy-MM-dd HH:mm:ss") if value else "—"


@bp.route("/admin/jobs")
def runs() -> str:
    auth.require_admin(current_user)
    session = db.session
    selected = request.args.get("job") or None
    if selected is not None:
        selected = job_named(selected).name
    timezone = ZoneInfo(current_app.config["TIMEZONE"])
    return render_template("admin/jobs.html", statuses=job_statuses(session, timezone, utcnow()),
                           runs=recent_runs(session, job=selected, limit=RUNS_SHOWN),
                           selected=selected, runs_shown=RUNS_SHOWN, timezone=timezone)
