"""Scheduled jobs of the alerts package: the full scan, the daily digest, webhook deliveries.

Each job is a thin wrapper (``alerts_scan``, ``alert_digest``, ``webhooks``) that opens a
session and calls a core taking that session (``scan``, ``send_digests``,
``deliver_webhooks``), which the tests call with theirs. They are registered in
``stockpile.scheduler.JOBS`` and run there or by hand with ``flask --app stockpile jobs run <name>``.
A core that fails raises, so the scheduler records the run as failed with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.alerts import notify
from stockpile.alerts import services as alerts
from stockpile.alerts.models import WebhookDelivery
from stockpile.db import begin_write

if TYPE_CHECKING:
    from stockpile.scheduler import JobContext

# Attempts per run: a run stays well inside the job's lease even if every endpoint times out.
MAX_ATTEMPTS_PER_RUN = 60


def scan(session: so.Session, *, today: dt.date) -> str:
    """Evaluate every rule for every organisation on ``today`` and commit. Webhook deliveries
    for the alerts opened, re-opened and resolved are queued with them (``notify``)."""
    begin_write(session)
    before = session.scalar(sa.select(sa.func.max(WebhookDelivery.id))) or 0
    counts = alerts.full_scan(session, today=today)
    queued = session.scalar(sa.select(sa.func.count()).where(WebhookDelivery.id > before)) or 0
    session.commit()
    return (f"Alerts on {today.isoformat()}: {counts['opened']} opened, {counts['reopened']} re-opened, "
            f"{counts['resolved']} resolved, {counts['seen']} still holding; "
            f"{queued} webhook deliveries queued")


def send_digests(session: so.Session, *, today: dt.date, now: dt.datetime, config: Mapping[str, Any]) -> str:
    """Send today's digests over one SMTP connection and mark those accepted as sent.

    Raises ``notify.MailError`` when mail is configured wrongly (nothing sent) or when any
    digest could not be sent; those stay unmarked, so the next run tries them again.
    """
    settings = notify.SmtpSettings.from_config(config)
    if settings is None:
        return "E-mail is off (SMTP_HOST is not set): no digests sent."
    begin_write(session)
    digests = notify.build_digests(session, today=today, now=now, timezone=ZoneInfo(config["TIMEZONE"]),
                                   public_url=config.get("PUBLIC_URL"))
    session.commit()  # the default settings created on the way; no transaction while mailing
    if not digests:
        return "Nothing new for anyone: no digests sent."
    sent, failed = notify.send_digests(digests, settings, now=now)
    if sent:
        begin_write(session)
        notify.mark_sent(session, sent, now=now)
        session.commit()
    regional = sum(1 for d in digests if d.regional and d.user_id in sent)
    summary = f"{len(sent)} digest(s) sent ({regional} regional summaries)"
    if failed:
        first = next(iter(failed.values()))
        raise notify.MailError(f"{summary}; {len(failed)} of {len(digests)} not sent, to be tried again on the "
                               f"next run. First error: {first}")
    return summary


def deliver_webhooks(session: so.Session, *, now: dt.datetime, timeout: float = notify.TIMEOUT,
                     limit: int = MAX_ATTEMPTS_PER_RUN) -> str:
    """POST the webhook deliveries due at ``now``, each recorded (and committed) as it is tried.

    No transaction is held while an endpoint is waited for. An endpoint that fails is not tried
    again in the same run: its other deliveries wait for the next run rather than each taking
    the full timeout.
    """
    due = notify.due_delivery_ids(session, now=now)
    session.commit()
    failing: set[int] = set()
    delivered = retrying = given_up = 0
    left = 0
    for delivery_id in due:
        delivery = session.get(WebhookDelivery, delivery_id, populate_existing=True,
                               options=[so.joinedload(WebhookDelivery.webhook)])
        if delivery is None:  # its webhook was deleted meanwhile
            continue
        if delivery.webhook_id in failing or delivered + retrying + given_up >= limit:
            left += 1
            continue
        out = notify.outgoing(delivery)
        session.commit()
        error = notify.post(out, timeout=timeout)
        begin_write(session)
        delivery = session.get(WebhookDelivery, delivery_id, populate_existing=True)
        assert delivery is not None
        notify.record_attempt(delivery, error, now=now)
        session.commit()
        if error is None:
            delivered += 1
        else:
            failing.add(out.webhook_id)
            if delivery.failed_at is not None:
                given_up += 1
            else:
                retrying += 1
    return (f"{len(due)} webhook deliveries due: {delivered} delivered, {retrying} failed and to be retried, "
            f"{given_up} given up; {left} left for the next run")


def alerts_scan(job: JobContext) -> str:
    with job.session() as session:
        return scan(session, today=job.today)


def alert_digest(job: JobContext) -> str:
    with job.session() as session:
        return send_digests(session, today=job.today, now=job.now, config=job.config)


def webhooks(job: JobContext) -> str:
    with job.session() as session:
        return deliver_webhooks(session, now=job.now)
