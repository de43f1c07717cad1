"""The alert jobs: the full scan queues webhook deliveries, and the deliveries reach a real HTTP
server on localhost, signed; a failing endpoint is retried after the back-off and given up."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import re

import pytest
import sqlalchemy as sa

from stockpile import scheduler
from stockpile.alerts import notify, tasks
from stockpile.alerts.models import Alert, AlertRule, DigestSetting, Webhook, WebhookDelivery
from stockpile.inventory import services as inventory
from stockpile.scheduler.models import JobRun
from tests import factories
from tests.alerts.local_servers import free_port, http_server, smtp_server
from tests.factories import TODAY

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def endpoint():
    with http_server() as server:
        yield server


def verified(hit, secret: str) -> dict:
    """The JSON of a POST whose signature matches its raw body, as a receiver would check it."""
    expected = "sha256=" + hmac.new(secret.encode(), hit.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(hit.headers["X-Stockpile-Signature"], expected)
    assert hit.headers["Content-Type"] == "application/json; charset=utf-8"
    return json.loads(hit.body)


def webhook(session, org, url: str, secret: str = "s3cret-of-the-centre", active: bool = True) -> Webhook:
    hook = Webhook(organisation_id=org.id, url=url, secret=secret, active=active)
    session.add(hook)
    session.flush()
    return hook


def queued(session, hook: Webhook, *, due: dt.datetime = NOW - dt.timedelta(minutes=1),
           message: str = "Lot L-1 expired on 2026-11-20 and is still on hand.") -> WebhookDelivery:
    """One delivery, queued by hand for an alert raised by hand (no lifecycle events)."""
    alert = Alert(key=f"test:{hook.id}:{message}", rule="expired_on_hand", organisation_id=hook.organisation_id,
                  severity="critical", state="open", message=message, first_seen=due, last_seen=due, opened_at=due)
    session.add(alert)
    session.flush()
    delivery = WebhookDelivery(webhook_id=hook.id, alert_id=alert.id, next_attempt_at=due,
                               payload={"event": "alert.opened", "alert": {"id": alert.id, "message": message}})
    session.add(delivery)
    session.flush()
    return delivery


def test_the_scan_queues_and_the_job_delivers_signed_changes(session, world, endpoint):
    hook = webhook(session, world.centre, endpoint.url)
    factories.receive(session, world.centre_depot, world.mask, "M-OLD", TODAY - dt.timedelta(days=3), 40,
                      today=TODAY - dt.timedelta(days=30))
    factories.receive(session, world.municipal_depot, world.mask, "M-OLD", TODAY - dt.timedelta(days=3), 10,
                      today=TODAY - dt.timedelta(days=30))

    summary = tasks.scan(session, today=TODAY)

    opened = session.scalars(sa.select(Alert).where(Alert.state == "open")).all()
    at_centre = {a.id for a in opened if a.organisation_id == world.centre.id}
    assert {a.rule for a in opened if a.organisation_id == world.municipality.id} >= {"expired_on_hand"}
    assert summary == (f"Alerts on 2026-11-23: {len(opened)} opened, 0 re-opened, 0 resolved, 0 still holding; "
                       f"{len(at_centre)} webhook deliveries queued")

    now = notify.utcnow()
    assert tasks.deliver_webhooks(session, now=now) == (
        f"{len(at_centre)} webhook deliveries due: {len(at_centre)} delivered, 0 failed and to be retried, "
        "0 given up; 0 left for the next run")
    # Only the centre's alerts reach the centre's endpoint, each signed with its secret.
    payloads = [verified(hit, hook.secret) for hit in endpoint.hits]
    assert {p["alert"]["id"] for p in payloads} == at_centre
    assert {p["alert"]["organisation"] for p in payloads} == {"SC"}
    expired = next(p for p in payloads if p["alert"]["rule"] == "expired_on_hand")
    assert expired["event"] == "alert.opened" and expired["alert"]["lot_number"] == "M-OLD"
    assert "expired on 2026-11-20" in expired["alert"]["message"]
    deliveries = {d.id: d for d in session.scalars(sa.select(WebhookDelivery))}
    for hit in endpoint.hits:
        delivery = deliveries[int(hit.headers["X-Stockpile-Delivery"])]
        assert json.loads(hit.body) == delivery.payload and hit.path == "/hooks/stockpile"
        assert delivery.delivered_at == now and delivery.attempts == 1 and delivery.last_error is None

    # Put right: the next scan resolves the alert and the endpoint hears of it.
    inventory.dispose(session, factories.ctx(), depot=world.centre_depot, pool="operational", item=world.mask,
                      lot_number="M-OLD", quantity=40, reason="expired")
    summary = tasks.scan(session, today=TODAY)
    resolved_ids = set(session.scalars(sa.select(Alert.id).where(Alert.state == "resolved")))
    assert expired["alert"]["id"] in resolved_ids and resolved_ids <= at_centre
    assert re.search(rf"0 re-opened, {len(resolved_ids)} resolved, \d+ still holding; {len(resolved_ids)} webhook "
                     "deliveries queued$", summary)
    tasks.deliver_webhooks(session, now=notify.utcnow())
    told = {p["alert"]["id"]: p for p in (verified(hit, hook.secret) for hit in endpoint.hits[len(at_centre):])}
    assert told.keys() == resolved_ids
    assert told[expired["alert"]["id"]]["event"] == "alert.resolved"
    assert told[expired["alert"]["id"]]["alert"]["state"] == "resolved"
    assert len(endpoint.hits) == len(at_centre) + len(resolved_ids)


def test_a_failing_endpoint_is_retried_after_each_back_off_then_given_up(session, world, endpoint):
    endpoint.status = 500
    delivery = queued(session, webhook(session, world.centre, endpoint.url))
    now = NOW
    waits = [dt.timedelta(minutes=1), dt.timedelta(minutes=5), dt.timedelta(minutes=30), dt.timedelta(hours=2),
             dt.timedelta(hours=12)]
    for attempt, wait in enumerate(waits, start=1):
        assert tasks.deliver_webhooks(session, now=now) == (
            "1 webhook deliveries due: 0 delivered, 1 failed and to be retried, 0 given up; 0 left for the next run")
        assert len(endpoint.hits) == attempt
        assert delivery.attempts == attempt and delivery.failed_at is None and delivery.delivered_at is None
        assert delivery.last_error == "127.0.0.1 answered HTTP 500 Internal Server Error: receiver is down"
        assert delivery.next_attempt_at == now + wait
        # Not before the back-off has passed.
        assert tasks.deliver_webhooks(session, now=now + wait - dt.timedelta(seconds=1)).startswith(
            "0 webhook deliveries due")
        assert len(endpoint.hits) == attempt
        now += wait

    assert tasks.deliver_webhooks(session, now=now) == (
        "1 webhook deliveries due: 0 delivered, 0 failed and to be retried, 1 given up; 0 left for the next run")
    assert len(endpoint.hits) == 6 == delivery.attempts
    assert delivery.failed_at == now and "HTTP 500" in delivery.last_error
    # Given up is final, even when the endpoint comes back.
    endpoint.status = 200
    assert tasks.deliver_webhooks(session, now=now + dt.timedelta(days=7)).startswith("0 webhook deliveries due")
    assert len(endpoint.hits) == 6
    # Every attempt carried the same signed body and the same delivery id.
    assert len({(hit.body, hit.headers["X-Stockpile-Delivery"]) for hit in endpoint.hits}) == 1
    assert verified(endpoint.hits[0], "s3cret-of-the-centre")["alert"]["id"] == delivery.alert_id


def test_a_delivery_that_fails_once_is_delivered_on_the_retry(session, world, endpoint):
    endpoint.status = 503
    delivery = queued(session, webhook(session, world.centre, endpoint.url))
    tasks.deliver_webhooks(session, now=NOW)
    endpoint.status = 204
    assert tasks.deliver_webhooks(session, now=NOW + dt.timedelta(minutes=1)).startswith(
        "1 webhook deliveries due: 1 delivered")
    assert delivery.attempts == 2 and delivery.delivered_at == NOW + dt.timedelta(minutes=1)
    assert "HTTP 503" in delivery.last_error  # the failure stays on record
    assert tasks.deliver_webhooks(session, now=NOW + dt.timedelta(days=1)).startswith("0 webhook deliveries due")


def test_an_unreachable_endpoint_holds_up_only_its_own_deliveries(session, world, endpoint):
    dead = webhook(session, world.centre, f"http://127.0.0.1:{free_port()}/hook")
    first, second = queued(session, dead, message="first"), queued(session, dead, message="second")
    alive = queued(session, webhook(session, world.municipality, endpoint.url, secret="mun"))

    summary = tasks.deliver_webhooks(session, now=NOW)

    assert summary == ("3 webhook deliveries due: 1 delivered, 1 failed and to be retried, 0 given up; "
                       "1 left for the next run")
    assert first.attempts == 1 and first.last_error.startswith("Could not reach 127.0.0.1: ")
    assert "refused" in first.last_error.lower()
    assert second.attempts == 0 and second.last_error is None  # not tried: the endpoint was down
    assert alive.delivered_at == NOW and len(endpoint.hits) == 1


def test_a_slow_endpoint_times_out(session, world, endpoint):
    endpoint.delay = 1.0
    delivery = queued(session, webhook(session, world.centre, endpoint.url))
    tasks.deliver_webhooks(session, now=NOW, timeout=0.2)
    assert delivery.attempts == 1 and delivery.last_error == "No answer from 127.0.0.1 within 0.2 s."
    assert delivery.next_attempt_at == NOW + dt.timedelta(minutes=1)


def test_a_redirect_is_not_followed(session, world, endpoint):
    endpoint.status = 302
    endpoint.location = "http://127.0.0.1:9/elsewhere"
    delivery = queued(session, webhook(session, world.centre, endpoint.url))
    tasks.deliver_webhooks(session, now=NOW)
    assert len(endpoint.hits) == 1 and delivery.delivered_at is None
    assert delivery.last_error.startswith("127.0.0.1 answered HTTP 302")


def test_only_http_addresses_are_posted_to(session, world):
    delivery = queued(session, webhook(session, world.centre, "file:///etc/passwd"))
    tasks.deliver_webhooks(session, now=NOW)
    assert delivery.last_error == "The webhook URL 'file:///etc/passwd' is not an http:// or https:// address."


def test_deliveries_of_an_inactive_webhook_wait(session, world, endpoint):
    hook = webhook(session, world.centre, endpoint.url, active=False)
    delivery = queued(session, hook)
    assert tasks.deliver_webhooks(session, now=NOW).startswith("0 webhook deliveries due")
    hook.active = True
    tasks.deliver_webhooks(session, now=NOW)
    assert delivery.delivered_at == NOW and len(endpoint.hits) == 1


# --- run by the scheduler ---------------------------------------------------------------------

@pytest.fixture
def mailbox():
    with smtp_server() as box:
        yield box


def run_job(app, name: str, **config) -> JobRun:
    """Run the registered job ``name`` as the scheduler does, with ``config`` on top of the app's."""
    rt = scheduler.runtime_for(app)
    rt = dataclasses.replace(rt, config={**rt.config, **config})
    return scheduler.run_by_hand(rt, scheduler.job_named(name))


def mail_settings(port: int) -> dict[str, object]:
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_TLS": "none", "MAIL_FROM": "stockpile@example.org",
            "PUBLIC_URL": "https://stockpile.example.org"}


def test_the_alert_jobs_are_registered():
    assert {name: scheduler.job_named(name).func for name in ("alerts_scan", "alert_digest", "webhooks")} == {
        "alerts_scan": tasks.alerts_scan, "alert_digest": tasks.alert_digest, "webhooks": tasks.webhooks}


def test_the_digest_job_sends_and_records_its_run(app, session, world, mailbox):
    opened = notify.utcnow() - dt.timedelta(hours=1)
    session.add(Alert(key="job:1", rule="expired_on_hand", organisation_id=world.municipality.id,
                      severity="critical", state="open", message="Lot MUN-9 expired and is on hand.",
                      first_seen=opened, last_seen=opened, opened_at=opened))
    session.commit()

    run = run_job(app, "alert_digest", **mail_settings(mailbox.port))

    assert (run.outcome, run.summary) == ("succeeded", "3 digest(s) sent (2 regional summaries)")
    assert mailbox.recipients == ["admin@example.org", "coordinator@example.org", "municipal@example.org"]
    assert session.get(DigestSetting, world.users["municipal"].id).last_sent_at == run.started_at


def test_a_digest_job_that_cannot_send_is_recorded_as_failed_and_marks_nothing(app, session, world):
    opened = notify.utcnow() - dt.timedelta(hours=1)
    session.add(Alert(key="job:2", rule="expired_on_hand", organisation_id=world.centre.id, severity="critical",
                      state="open", message="Lot SC-9 expired and is on hand.", first_seen=opened, last_seen=opened,
                      opened_at=opened))
    session.commit()

    run = run_job(app, "alert_digest", **mail_settings(free_port()))

    assert run.outcome == "failed"
    assert run.summary.startswith("MailError: 0 digest(s) sent (0 regional summaries); 4 of 4 not sent")
    assert "Could not connect to the SMTP server 127.0.0.1" in run.summary and "MailError" in run.error
    assert session.scalars(sa.select(DigestSetting).where(DigestSetting.last_sent_at.is_not(None))).all() == []


def test_a_wrong_mail_setting_fails_the_job_saying_which(app, session, world):
    run = run_job(app, "alert_digest", SMTP_HOST="mail.example.org", SMTP_TLS="yes please",
                  MAIL_FROM="stockpile@example.org")
    assert run.outcome == "failed"
    assert run.summary == "MailError: SMTP_TLS is 'yes please'; use one of none, starttls, ssl."


def test_the_scan_and_webhook_jobs_run_under_the_scheduler(app, session, world, endpoint):
    webhook(session, world.centre, endpoint.url)
    factories.receive(session, world.centre_depot, world.mask, "M-OLD", TODAY - dt.timedelta(days=3), 40,
                      today=TODAY - dt.timedelta(days=30))
    session.commit()

    scan = run_job(app, "alerts_scan")
    assert scan.outcome == "succeeded" and scan.summary.startswith("Alerts on ")
    session.execute(sa.delete(WebhookDelivery))  # what the scan and the commit before it queued
    session.commit()

    rule = session.get(AlertRule, "expired_on_hand")
    rule.enabled = False
    session.commit()
    scan = run_job(app, "alerts_scan")
    assert re.search(r"[1-9]\d* resolved, .*; 1 webhook deliveries queued$", scan.summary)
    hooks = run_job(app, "webhooks")
    assert hooks.outcome == "succeeded"
    assert hooks.summary == ("1 webhook deliveries due: 1 delivered, 0 failed and to be retried, 0 given up; "
                             "0 left for the next run")
    [hit] = endpoint.hits
    assert verified(hit, "s3cret-of-the-centre")["event"] == "alert.resolved"
