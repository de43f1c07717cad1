"""The daily e-mail digest, sent to a real SMTP server on localhost and read back, and the webhook
deliveries queued when alerts open, re-open and resolve."""

from __future__ import annotations

import datetime as dt
import json
from itertools import count

import pytest
import sqlalchemy as sa

from stockpile.alerts import notify, tasks
from stockpile.alerts import services as alerts
from stockpile.alerts.models import Alert, AlertRule, DigestSetting, Webhook, WebhookDelivery
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Organisation
from tests import factories
from tests.alerts.local_servers import free_port, smtp_server
from tests.factories import TODAY

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 07:00 in Oslo on TODAY
YESTERDAY_NOON = dt.datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
LINK = "https://stockpile.example.org/alerts"
_keys = count(1)


@pytest.fixture
def mailbox():
    with smtp_server() as box:
        yield box


def mail_config(port: int, **overrides) -> dict[str, object]:
    config = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_TLS": "none",
              "MAIL_FROM": "Stockpile <stockpile@example.org>", "PUBLIC_URL": "https://stockpile.example.org/",
              "TIMEZONE": "Europe/Oslo"}
    config.update(overrides)
    return config


def raise_alert(session, org, rule: str, message: str, *, severity: str | None = None,
                opened_at: dt.datetime = YESTERDAY_NOON, state: str = "open") -> Alert:
    """An alert as the rules leave it (the digest reads stored alerts, whatever raised them)."""
    alert = Alert(key=f"test:{next(_keys)}", rule=rule, organisation_id=org.id,
                  severity=severity or session.get(AlertRule, rule).severity, state=state, message=message,
                  first_seen=opened_at, last_seen=opened_at, opened_at=opened_at,
                  resolved_at=opened_at if state == "resolved" else None)
    session.add(alert)
    session.flush()
    return alert


def digest_run(session, port: int, *, today: dt.date = TODAY, now: dt.datetime = NOW, **config) -> str:
    return tasks.send_digests(session, today=today, now=now, config=mail_config(port, **config))


def setting(session, world, who: str) -> DigestSetting:
    found = session.get(DigestSetting, world.users[who].id)
    assert found is not None
    return found


@pytest.fixture
def region_alerts(session, world):
    """Alerts at the centre (SC), the municipality (MUN) — both in region REG — and OTHER, outside it."""
    other = session.scalar(sa.select(Organisation).where(Organisation.code == "OTHER"))
    return {
        "sc_critical": raise_alert(session, world.centre, "coverage_below_min",
                                   "Masks at the centre: 4 days of coverage, below the minimum of 21."),
        "sc_warning": raise_alert(session, world.centre, "lot_expiring",
                                  "Lot SC-LOT-7 of gloves expires on 2027-01-10 and no rotation task covers it."),
        "sc_info": raise_alert(session, world.centre, "no_baseline", "Gauze at the centre has no baseline."),
        "mun_warning": raise_alert(session, world.municipality, "coverage_falling",
                                   "Gloves at the municipality fall below the minimum on 2026-12-01."),
        "mun_warning_2": raise_alert(session, world.municipality, "coverage_falling",
                                     "Masks at the municipality fall below the minimum on 2026-12-04."),
        "other_critical": raise_alert(session, other, "expired_on_hand",
                                      "Lot OTHER-SECRET of masks expired on 2026-11-01 and is still on hand."),
    }


def test_each_user_gets_one_digest_with_only_what_they_may_read(session, world, region_alerts, mailbox):
    summary = digest_run(session, mailbox.port)

    assert summary == "6 digest(s) sent (2 regional summaries)"
    # Everyone who acts on alerts, once each, each mail to its recipient alone; the viewer is not told.
    assert mailbox.recipients == sorted(f"{who}@example.org" for who in
                                        ("admin", "coordinator", "supply", "pharmacist", "municipal", "outsider"))
    for received in mailbox.received:
        assert len(received.rcpt_tos) == 1
        assert received.message["To"] == received.rcpt_tos[0]
        assert received.message["From"] == "Stockpile <stockpile@example.org>"
        assert LINK in received.body
        assert " ".join(received.body.split()).endswith("digest settings: https://stockpile.example.org/alerts/settings")

    texts = {name: alert.message.split(":")[0] for name, alert in region_alerts.items()}

    def sees(who: str) -> set[str]:
        body = " ".join(mailbox.only(f"{who}@example.org").body.split())  # messages are wrapped
        return {name for name, text in texts.items() if text in body}

    # Staff get every line of their own organisation (warning and up), nothing of anyone else's.
    assert sees("supply") == sees("pharmacist") == {"sc_critical", "sc_warning"}
    assert sees("municipal") == {"mun_warning", "mun_warning_2"}
    assert sees("outsider") == {"other_critical"}
    supply = mailbox.only("supply@example.org")
    assert supply.message["Subject"] == "Stockpile: 2 open alerts, 1 critical"
    assert "CRITICAL  Coverage below the policy minimum" in supply.body
    assert "WARNING   Lot expiring without a rotation task" in supply.body
    assert "Organisation SC (SC)" in supply.body and "Organisation MUN" not in supply.body

    # The coordinator: counts per organisation and rule in the region, only the critical spelt out.
    coordinator = mailbox.only("coordinator@example.org")
    assert coordinator.message["Subject"] == "Stockpile regional summary: 4 open alerts, 1 critical"
    assert sees("coordinator") == {"sc_critical"}
    body = coordinator.body
    assert " ".join(body.split()).startswith(
        "Hello coordinator@example.org, Regional summary for REG and the organisations below: 4 open alerts, "
        "1 of them critical. This is your first digest, so it reports everything still open. "
        "Open alerts by organisation and rule:")
    municipality = body.index("  Organisation MUN (MUN)")
    assert body[municipality:].splitlines()[1] == "       2  Coverage projected to fall below the minimum"
    centre = body.index("  Organisation SC (SC)")
    assert body[centre:].splitlines()[1:3] == ["       1  Coverage below the policy minimum",
                                              "       1  Lot expiring without a rotation task"]
    assert "OTHER" not in body

    # Administrators see every organisation, summarised.
    assert sees("admin") == {"sc_critical", "other_critical"}
    assert "Organisation OTHER (OTHER)" in mailbox.only("admin@example.org").body

    for who in ("admin", "coordinator", "supply", "pharmacist", "municipal", "outsider"):
        assert setting(session, world, who).last_sent_at == NOW
    viewer = setting(session, world, "viewer")
    assert viewer.enabled is False and viewer.last_sent_at is None


def test_at_most_one_digest_a_day_with_only_what_is_new(session, world, region_alerts, mailbox):
    digest_run(session, mailbox.port)
    assert len(mailbox.received) == 6
    later = raise_alert(session, world.centre, "expired_on_hand", "Lot SC-NEW of masks expired yesterday.",
                        opened_at=NOW + dt.timedelta(hours=2))

    assert digest_run(session, mailbox.port, now=NOW + dt.timedelta(hours=5)) == "Nothing new for anyone: no digests sent."
    assert len(mailbox.received) == 6

    # The next morning: only the alert opened since, to those who may read the centre.
    tomorrow = NOW + dt.timedelta(days=1)
    assert digest_run(session, mailbox.port, today=TODAY + dt.timedelta(days=1), now=tomorrow).startswith(
        "4 digest(s) sent")
    new = mailbox.received[6:]
    assert sorted(r.rcpt_tos[0] for r in new) == [
        "admin@example.org", "coordinator@example.org", "pharmacist@example.org", "supply@example.org"]
    [supply] = [r for r in new if r.rcpt_tos == ["supply@example.org"]]
    assert later.message in supply.body and region_alerts["sc_critical"].message not in supply.body
    assert supply.message["Subject"] == "Stockpile: 1 new alert, 1 critical"
    assert "since your last digest (2026-11-23 07:00 Europe/Oslo)" in supply.body
    assert setting(session, world, "supply").last_sent_at == tomorrow
    assert setting(session, world, "municipal").last_sent_at == NOW  # nothing new: no mail, no mark


def test_nothing_new_means_no_mail(session, world, mailbox):
    # Resolved, or opened before the last digest, or still to come after this run: not new.
    raise_alert(session, world.centre, "expired_on_hand", "Resolved already.", state="resolved")
    raise_alert(session, world.centre, "expired_on_hand", "Opened after the run started.",
                opened_at=NOW + dt.timedelta(minutes=1))
    for user in world.users.values():
        notify.digest_setting(session, user).last_sent_at = YESTERDAY_NOON - dt.timedelta(days=1)
    raise_alert(session, world.centre, "expired_on_hand", "Before the last digest.",
                opened_at=YESTERDAY_NOON - dt.timedelta(days=2))

    assert digest_run(session, mailbox.port) == "Nothing new for anyone: no digests sent."
    assert mailbox.received == []
    assert setting(session, world, "supply").last_sent_at == YESTERDAY_NOON - dt.timedelta(days=1)


def test_a_reopened_alert_is_new_again(session, world, mailbox):
    alert = raise_alert(session, world.centre, "expired_on_hand", "Lot SC-BACK expired and is on hand again.",
                        opened_at=YESTERDAY_NOON - dt.timedelta(days=5))
    alert.state = "acknowledged"
    for who in ("supply", "pharmacist", "coordinator", "admin"):
        notify.digest_setting(session, world.users[who]).last_sent_at = YESTERDAY_NOON - dt.timedelta(days=1)
    assert digest_run(session, mailbox.port) == "Nothing new for anyone: no digests sent."

    alert.opened_at = YESTERDAY_NOON  # re-opened after the last digest
    alert.state = "open"
    digest_run(session, mailbox.port)
    assert "Lot SC-BACK expired" in mailbox.only("supply@example.org").body


def test_digest_settings_are_the_users_own(session, world, region_alerts, mailbox):
    notify.digest_setting(session, world.users["supply"]).enabled = False
    notify.digest_setting(session, world.users["municipal"]).min_severity = "critical"  # MUN has warnings only
    pharmacist = notify.digest_setting(session, world.users["pharmacist"])
    pharmacist.min_severity = "info"
    viewer = notify.digest_setting(session, world.users["viewer"])
    assert viewer.enabled is False  # viewers are not told unless they ask
    viewer.enabled = True
    viewer.min_severity = "critical"

    digest_run(session, mailbox.port)

    assert mailbox.to("supply@example.org") == [] and mailbox.to("municipal@example.org") == []
    assert setting(session, world, "supply").last_sent_at is None
    assert setting(session, world, "municipal").last_sent_at is None
    assert region_alerts["sc_info"].message in mailbox.only("pharmacist@example.org").body
    assert "INFO      Item under a policy without a baseline" in mailbox.only("pharmacist@example.org").body
    viewer_body = mailbox.only("viewer@example.org").body
    assert region_alerts["sc_critical"].message.split(":")[0] in viewer_body
    assert region_alerts["sc_warning"].message.split(" of")[0] not in viewer_body
    assert "for alerts of severity critical and above" in " ".join(viewer_body.split())


def test_inactive_users_get_nothing(session, world, region_alerts, mailbox):
    world.users["outsider"].active = False
    digest_run(session, mailbox.port)
    assert mailbox.to("outsider@example.org") == []


def test_a_refused_recipient_fails_the_run_and_is_tried_again(session, world, region_alerts, mailbox):
    mailbox.refuse.add("municipal@example.org")
    with pytest.raises(notify.MailError) as failed:
        digest_run(session, mailbox.port)
    message = str(failed.value)
    assert message.startswith("5 digest(s) sent (2 regional summaries); 1 of 6 not sent")
    assert "municipal@example.org refused by 127.0.0.1" in message and "550" in message
    assert setting(session, world, "municipal").last_sent_at is None
    assert setting(session, world, "supply").last_sent_at == NOW

    mailbox.refuse.clear()
    assert digest_run(session, mailbox.port, now=NOW + dt.timedelta(hours=1)) == "1 digest(s) sent (0 regional summaries)"
    assert len(mailbox.to("municipal@example.org")) == 1 and len(mailbox.to("supply@example.org")) == 1


def test_an_unreachable_server_sends_nothing_and_marks_nothing(session, world, region_alerts):
    with pytest.raises(notify.MailError, match=r"0 digest\(s\) sent .*6 of 6 not sent.*Could not connect to the "
                                               r"SMTP server 127\.0\.0\.1"):
        digest_run(session, free_port())
    assert session.scalars(sa.select(DigestSetting.last_sent_at).where(
        DigestSetting.last_sent_at.is_not(None))).all() == []


def test_without_an_smtp_host_mail_is_off(session, world, region_alerts):
    summary = tasks.send_digests(session, today=TODAY, now=NOW, config={"TIMEZONE": "Europe/Oslo", "SMTP_HOST": None})
    assert summary == "E-mail is off (SMTP_HOST is not set): no digests sent."
    assert session.scalar(sa.select(sa.func.count()).select_from(DigestSetting)) == 0


def test_without_a_public_url_the_mail_names_the_page(session, world, region_alerts, mailbox):
    digest_run(session, mailbox.port, PUBLIC_URL=None)
    body = mailbox.only("supply@example.org").body
    assert "See and acknowledge them on the Alerts page of Stockpile." in body
    assert " ".join(body.split()).endswith("in your digest settings in Stockpile.") and "http" not in body


@pytest.mark.parametrize(("config", "error"), [
    ({"SMTP_TLS": "tls"}, "SMTP_TLS is 'tls'; use one of none, starttls, ssl."),
    ({"SMTP_PORT": "twenty-five"}, "SMTP_PORT is 'twenty-five'; it must be a port number such as 587."),
    ({"SMTP_PORT": "70000"}, "SMTP_PORT is 70000; a port number lies between 1 and 65535."),
    ({"MAIL_FROM": None}, "MAIL_FROM must be set"),
])
def test_smtp_settings_say_what_is_wrong(config, error):
    with pytest.raises(notify.MailError) as wrong:
        notify.SmtpSettings.from_config({"SMTP_HOST": "mail.example.org", "MAIL_FROM": "s@example.org", **config})
    assert str(wrong.value).startswith(error)


@pytest.mark.parametrize(("tls", "port"), [("none", 25), ("starttls", 587), ("ssl", 465), ("SSL", 465)])
def test_the_port_follows_the_tls_mode(tls, port):
    settings = notify.SmtpSettings.from_config({"SMTP_HOST": "mail.example.org", "SMTP_TLS": tls,
                                                "MAIL_FROM": "s@example.org"})
    assert settings is not None and settings.port == port and settings.tls == tls.lower()


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    from stockpile.config import from_environment

    for name in ("SMTP_HOST", "SMTP_PORT", "SMTP_TLS", "SMTP_USERNAME", "SMTP_PASSWORD", "MAIL_FROM", "PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"STOCKPILE_{name}", raising=False)
    monkeypatch.setenv("STOCKPILE_SMTP_HOST", "smtp.helse.example")
    monkeypatch.setenv("SMTP_HOST", "ignored.example")  # the prefixed name wins
    monkeypatch.setenv("SMTP_PORT", "2525")
    monkeypatch.setenv("STOCKPILE_SMTP_TLS", "ssl")
    monkeypatch.setenv("MAIL_FROM", "Stockpile <varsel@helse.example>")
    monkeypatch.setenv("STOCKPILE_PUBLIC_URL", "https://lager.helse.example")
    config = from_environment(str(tmp_path))
    settings = notify.SmtpSettings.from_config(config)
    assert settings == notify.SmtpSettings(host="smtp.helse.example", port=2525, tls="ssl", username=None,
                                           password=None, sender="Stockpile <varsel@helse.example>")
    assert config["PUBLIC_URL"] == "https://lager.helse.example"


# --- webhook deliveries queued with the alert's changes ------------------------------------

def deliveries(session, alert_id: int | None = None) -> list[WebhookDelivery]:
    stmt = sa.select(WebhookDelivery).order_by(WebhookDelivery.id)
    if alert_id is not None:
        stmt = stmt.where(WebhookDelivery.alert_id == alert_id)
    return list(session.scalars(stmt))


@pytest.fixture
def expired_lot(session, world):
    """An expired lot on hand at the centre, which has a webhook; the municipality has none."""
    session.add(Webhook(organisation_id=world.centre.id, url="https://hooks.example.org/sc", secret="s3cret"))
    factories.receive(session, world.centre_depot, world.mask, "M-OLD", TODAY - dt.timedelta(days=3), 40,
                      today=TODAY - dt.timedelta(days=30))
    factories.receive(session, world.municipal_depot, world.mask, "M-OLD", TODAY - dt.timedelta(days=3), 10,
                      today=TODAY - dt.timedelta(days=30))
    session.flush()
    return world


def expired_alert(session, org) -> Alert:
    return session.scalars(sa.select(Alert).where(Alert.rule == "expired_on_hand", Alert.organisation_id == org.id)).one()


def test_opening_reopening_and_resolving_queue_a_delivery_each(session, expired_lot):
    world = expired_lot
    rule = session.get(AlertRule, "expired_on_hand")
    alerts.evaluate(session, [world.centre, world.municipality], today=TODAY)
    alert = expired_alert(session, world.centre)
    [opened] = deliveries(session, alert.id)
    assert opened.webhook.url == "https://hooks.example.org/sc" and opened.attempts == 0
    assert opened.next_attempt_at <= notify.utcnow() and opened.delivered_at is None
    assert opened.payload == {
        "event": "alert.opened",
        "alert": {"id": alert.id, "rule": "expired_on_hand", "severity": "critical", "state": "open",
                  "organisation": "SC", "item": "MASK", "lot_number": "M-OLD", "message": alert.message,
                  "first_seen": alert.first_seen.isoformat(), "last_seen": alert.last_seen.isoformat()}}
    # The municipality's alert is as real, but it has no webhook.
    assert deliveries(session, expired_alert(session, world.municipality).id) == []

    alerts.acknowledge(session, alert, user_id=world.users["supply"].id, comment="Disposing today")
    alerts.evaluate(session, [world.centre], today=TODAY)  # seen again: no change to tell
    assert len(deliveries(session, alert.id)) == 1

    rule.enabled = False
    alerts.evaluate(session, [world.centre], today=TODAY)
    rule.enabled = True
    alerts.evaluate(session, [world.centre], today=TODAY)
    events = [(d.payload["event"], d.payload["alert"]["state"]) for d in deliveries(session, alert.id)]
    assert events == [("alert.opened", "open"), ("alert.resolved", "resolved"), ("alert.reopened", "open")]


def test_no_delivery_for_an_inactive_webhook_or_a_rolled_back_change(session, expired_lot):
    world = expired_lot
    with session.begin_nested() as savepoint:
        alerts.evaluate(session, [world.centre], today=TODAY)
        assert "expired_on_hand" in {d.payload["alert"]["rule"] for d in deliveries(session)}
        savepoint.rollback()
    assert deliveries(session) == []
    session.scalars(sa.select(Webhook)).one().active = False
    alerts.evaluate(session, [world.centre], today=TODAY)
    assert deliveries(session) == []


def test_a_posting_that_opens_an_alert_queues_its_delivery(session, expired_lot):
    """Through the evaluation before commit, as a posting in a request gets it."""
    world = expired_lot
    today = inventory.local_today("Europe/Oslo")  # what the evaluation at commit takes
    inventory.receive(session, factories.ctx(today=today), depot=world.centre_depot, item=world.glove,
                      lot_number="G-1", expiry=today + dt.timedelta(days=20), quantity=5)
    session.commit()
    [queued] = [d for d in deliveries(session) if d.payload["alert"]["rule"] == "lot_expiring"]
    assert queued.payload["event"] == "alert.opened"
    assert queued.payload["alert"]["item"] == "GLOVE" and queued.payload["alert"]["lot_number"] == "G-1"
    assert json.loads(notify.body(queued.payload)) == queued.payload


def test_a_long_digest_lists_the_first_alerts_and_counts_the_rest(session, world, mailbox):
    for n in range(notify.MAX_LISTED + 2):
        raise_alert(session, world.municipality, "lot_expiring", f"Lot MUN-{n:03d} expires soon.",
                    opened_at=YESTERDAY_NOON + dt.timedelta(seconds=n))
    digest_run(session, mailbox.port)
    body = mailbox.only("municipal@example.org").body
    assert body.count("Lot MUN-") == notify.MAX_LISTED
    assert "Lot MUN-000 expires soon." in body and f"Lot MUN-{notify.MAX_LISTED:03d}" not in body
    assert "… and 2 more alerts." in body
    assert mailbox.only("municipal@example.org").message["Subject"] == "Stockpile: 52 open alerts, 0 critical"
