"""Alerts sent out of the app: the daily e-mail digest and each organisation's webhook.

Digest. At most one mail per user per day, with the alerts that became open (first seen or
re-opened) since the user's last digest, are not resolved, are at or above the user's minimum
severity, and belong to an organisation the user may read (``auth.readable_organisation_ids``,
the same rule as the pages). Who is told what therefore follows membership and role: supply
staff their centre, municipal staff their municipality, pharmacists their pharmacy. Coordinators
(and administrators, who see everything) get a regional summary instead: counts per organisation
and rule, with only the critical alerts spelt out. Each mail is built from its recipient's own
visibility and sent to that recipient alone.

Webhooks. When an alert of an organisation with an active webhook is opened, re-opened or
resolved, a ``WebhookDelivery`` is queued as the alert's history event is written, in the same
transaction: whatever changed the alert (the evaluation after a posting, the scheduler's scan),
the delivery is queued with it, and a change that is rolled back queues nothing. The scheduler's
``webhooks`` job POSTs them (``post``), signed with HMAC-SHA256, and ``record_attempt`` retries a
failure after a back-off and gives up after ``MAX_ATTEMPTS``.

What the pages change goes through here too: a user's digest setting (``save_digest_setting``)
and the webhooks themselves (``create_webhook``, ``update_webhook``, ``renew_secret``,
``delete_webhook``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import secrets
import smtplib
import ssl
import textwrap
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.alerts.models import (Alert, AlertEvent, AlertEventKind, AlertRule, AlertState,
                                     DigestSetting, Severity, Webhook, WebhookDelivery)
from stockpile.auth import services as auth
from stockpile.auth.models import Membership, Role, User
from stockpile.db import utcnow
from stockpile.errors import Conflict, check_choice, field_error
from stockpile.inventory.models import Item, Lot, Organisation

log = logging.getLogger(__name__)

SEVERITY_RANK = {Severity.INFO.value: 0, Severity.WARNING.value: 1, Severity.CRITICAL.value: 2}


def severities_from(minimum: str) -> list[str]:
    """The severities at or above ``minimum``, most severe first."""
    floor = SEVERITY_RANK[minimum]
    return sorted((s for s, rank in SEVERITY_RANK.items() if rank >= floor), key=SEVERITY_RANK.__getitem__,
                  reverse=True)


def told_by_default(user: User) -> bool:
    """Whether a digest is on before the user chooses: for everyone who acts on alerts, not for
    those who only view (a viewer can switch it on)."""
    return user.is_admin or any(m.role != Role.VIEWER for m in user.memberships)


def digest_setting(session: so.Session, user: User) -> DigestSetting:
    """The user's digest setting, created with the defaults (on from ``warning`` up, off for
    viewers) the first time it is needed."""
    setting = session.get(DigestSetting, user.id)
    if setting is None:
        setting = DigestSetting(user_id=user.id, enabled=told_by_default(user),
                                min_severity=Severity.WARNING.value)
        session.add(setting)
        session.flush()
    return setting


def save_digest_setting(session: so.Session, user: User, *, enabled: bool, min_severity: str) -> DigestSetting:
    """Record the user's choice: a digest or none, and from which severity up."""
    setting = session.get(DigestSetting, user.id)
    if setting is None:
        setting = DigestSetting(user_id=user.id)
        session.add(setting)
    setting.enabled = enabled
    setting.min_severity = check_choice("min_severity", min_severity, Severity)
    session.flush()
    return setting


def new_alerts(session: so.Session, organisation_ids: Iterable[int] | None, *, since: dt.datetime | None,
               until: dt.datetime, min_severity: str) -> list[Alert]:
    """Alerts of ``organisation_ids`` (None = all) that became open after ``since`` (any time when
    None) and at or before ``until``, are not resolved and are at least ``min_severity``;
    ordered by organisation, most severe first."""
    stmt = (sa.select(Alert).join(Alert.organisation)
            .where(Alert.state != AlertState.RESOLVED.value, Alert.opened_at <= until,
                   Alert.severity.in_(severities_from(min_severity)))
            .options(so.contains_eager(Alert.organisation), so.joinedload(Alert.item))
            .order_by(Organisation.name, Organisation.id, Alert.opened_at, Alert.id))
    if since is not None:
        stmt = stmt.where(Alert.opened_at > since)
    if organisation_ids is not None:
        stmt = stmt.where(Alert.organisation_id.in_(list(organisation_ids)))
    found = list(session.scalars(stmt).unique())
    # Stable sort: within an organisation, critical first, then by when they opened.
    found.sort(key=lambda a: (a.organisation.name, a.organisation_id, -SEVERITY_RANK[a.severity]))
    return found


# A digest names at most this many alerts; the rest are counted and left to the alerts page.
MAX_LISTED = 50
WIDTH = 72


@dataclass(frozen=True)
class Digest:
    """One mail to one user: what it says and which alerts it reports."""

    user_id: int
    to: str
    name: str
    subject: str
    body: str
    alert_ids: tuple[int, ...]
    regional: bool


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


def _wrapped(text: str, indent: int) -> list[str]:
    return textwrap.wrap(text, width=WIDTH, initial_indent=" " * indent, subsequent_indent=" " * indent,
                         break_long_words=False, break_on_hyphens=False) or [" " * indent]


def _org_label(org: Organisation) -> str:
    return f"{org.name} ({org.code})"


def _alert_lines(alert: Alert, rule_names: Mapping[str, str], indent: int) -> list[str]:
    title = f"{alert.severity.upper():<8}  {rule_names.get(alert.rule, alert.rule)}"
    if alert.state == AlertState.ACKNOWLEDGED:
        title += " (acknowledged)"
    return [" " * indent + title, *_wrapped(alert.message, indent + 10)]


def _alerts_link(public_url: str | None) -> str:
    if public_url:
        return f"See and acknowledge them: {public_url.rstrip('/')}/alerts"
    return "See and acknowledge them on the Alerts page of Stockpile."


def _staff_body(alerts: Sequence[Alert], rule_names: Mapping[str, str]) -> list[str]:
    lines: list[str] = []
    shown = alerts[:MAX_LISTED]
    current: int | None = None
    for alert in shown:
        if alert.organisation_id != current:
            current = alert.organisation_id
            lines += ["", _org_label(alert.organisation)]
        lines += _alert_lines(alert, rule_names, 2)
    if len(alerts) > len(shown):
        lines += ["", f"… and {_plural(len(alerts) - len(shown), 'more alert')}."]
    return lines


def _regional_body(alerts: Sequence[Alert], rule_names: Mapping[str, str], heading: str) -> list[str]:
    counts: dict[int, Counter[str]] = {}
    orgs: dict[int, Organisation] = {}
    for alert in alerts:
        orgs[alert.organisation_id] = alert.organisation
        counts.setdefault(alert.organisation_id, Counter())[alert.rule] += 1
    lines = ["", heading]
    for org_id, by_rule in counts.items():
        lines += ["", "  " + _org_label(orgs[org_id])]
        for rule, count in sorted(by_rule.items(), key=lambda kv: (-kv[1], rule_names.get(kv[0], kv[0]))):
            lines.append(f"    {count:>4}  {rule_names.get(rule, rule)}")
    critical = [a for a in alerts if a.severity == Severity.CRITICAL]
    if critical:
        lines += ["", f"Critical ({len(critical)}):"]
        shown = critical[:MAX_LISTED]
        current: int | None = None
        for alert in shown:
            if alert.organisation_id != current:
                current = alert.organisation_id
                lines += ["", "  " + _org_label(alert.organisation)]
            lines += _alert_lines(alert, rule_names, 4)
        if len(critical) > len(shown):
            lines += ["", f"… and {_plural(len(critical) - len(shown), 'more critical alert')}."]
    return lines


def _scope_text(user: User) -> str:
    if user.is_admin:
        return "all organisations"
    regions = sorted({m.organisation.code for m in user.memberships if m.role == Role.COORDINATOR})
    return f"{', '.join(regions)} and the organisations below"


def build_digest(session: so.Session, user: User, *, today: dt.date, now: dt.datetime, timezone: ZoneInfo,
                 public_url: str | None, rule_names: Mapping[str, str] | None = None) -> Digest | None:
    """``user``'s digest for ``today``, or None: digest off, one already sent today, or nothing
    new. Reports only alerts of organisations ``user`` may read; changes nothing but creating
    the user's default digest setting."""
    if not user.active:
        return None
    setting = digest_setting(session, user)
    if not setting.enabled:
        return None
    since = setting.last_sent_at
    if since is not None and since.astimezone(timezone).date() >= today:
        return None
    readable = auth.readable_organisation_ids(session, user)
    if readable is not None and not readable:
        return None
    alerts = new_alerts(session, readable, since=since, until=now, min_severity=setting.min_severity)
    if not alerts:
        return None
    if rule_names is None:
        rule_names = dict(session.execute(sa.select(AlertRule.code, AlertRule.name)).all())
    regional = user.is_admin or any(m.role == Role.COORDINATOR for m in user.memberships)
    critical = sum(1 for a in alerts if a.severity == Severity.CRITICAL)
    if since is None:
        count = _plural(len(alerts), "open alert")
        when, first = "", " This is your first digest, so it reports everything still open."
    else:
        count = _plural(len(alerts), "new alert")
        when, first = f" since your last digest ({since.astimezone(timezone):%Y-%m-%d %H:%M} {timezone.key})", ""
    if regional:
        subject = f"Stockpile regional summary: {count}, {critical} critical"
        intro = (f"Regional summary for {_scope_text(user)}: {count}{when}, {critical} of them "
                 f"critical.{first}")
        body = _regional_body(alerts, rule_names, f"{'Open' if since is None else 'New'} alerts by organisation "
                                                  "and rule:")
    else:
        subject = f"Stockpile: {count}, {critical} critical"
        intro = f"{count.capitalize()}{when} for the organisations you are responsible for.{first}"
        body = _staff_body(alerts, rule_names)
    lines = [f"Hello {user.name or user.email},", "", *_wrapped(intro, 0), *body, "",
             _alerts_link(public_url), "", "-- ",
             *_wrapped(f"You get this digest at most once a day, for alerts of severity {setting.min_severity} "
                       "and above. You can change that, or turn the digest off, in your digest settings"
                       + (f": {public_url.rstrip('/')}/alerts/settings" if public_url else " in Stockpile."), 0)]
    return Digest(user_id=user.id, to=user.email, name=user.name, subject=subject, body="\n".join(lines) + "\n",
                  alert_ids=tuple(a.id for a in alerts), regional=regional)


def build_digests(session: so.Session, *, today: dt.date, now: dt.datetime, timezone: ZoneInfo,
                  public_url: str | None) -> list[Digest]:
    """The digest of every active user who has one due today (see ``build_digest``)."""
    rule_names = dict(session.execute(sa.select(AlertRule.code, AlertRule.name)).all())
    users = session.scalars(sa.select(User).where(User.active.is_(True)).order_by(User.id)
                            .options(so.selectinload(User.memberships).joinedload(Membership.organisation)))
    digests = []
    for user in users:
        digest = build_digest(session, user, today=today, now=now, timezone=timezone, public_url=public_url,
                              rule_names=rule_names)
        if digest is not None:
            digests.append(digest)
    return digests


def mark_sent(session: so.Session, user_ids: Iterable[int], *, now: dt.datetime) -> None:
    """Record that these users' digests went out at ``now`` (the end of what they reported)."""
    for user_id in user_ids:
        setting = session.get(DigestSetting, user_id)
        if setting is not None:  # built with the digest; gone only if the user was deleted since
            setting.last_sent_at = now
    session.flush()


class MailError(Exception):
    """Mail could not be sent, or is configured wrongly; the message says what to fix."""


TLS_MODES = {"none": 25, "starttls": 587, "ssl": 465}  # with the port each mode uses by default
SMTP_TIMEOUT = 30.0


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: str
    username: str | None
    password: str | None
    sender: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SmtpSettings | None:
        """The SMTP settings of ``config``; None when ``SMTP_HOST`` is unset (mail is off).
        MailError names the setting that is wrong."""
        host = (config.get("SMTP_HOST") or "").strip()
        if not host:
            return None
        tls = str(config.get("SMTP_TLS") or "starttls").strip().lower()
        if tls not in TLS_MODES:
            raise MailError(f"SMTP_TLS is {config.get('SMTP_TLS')!r}; use one of {', '.join(TLS_MODES)}.")
        raw_port = config.get("SMTP_PORT")
        try:
            port = int(raw_port) if raw_port not in (None, "") else TLS_MODES[tls]
        except (TypeError, ValueError):
            raise MailError(f"SMTP_PORT is {raw_port!r}; it must be a port number such as {TLS_MODES[tls]}.") from None
        if not 0 < port < 65536:
            raise MailError(f"SMTP_PORT is {port}; a port number lies between 1 and 65535.")
        sender = (config.get("MAIL_FROM") or "").strip()
        if "@" not in sender:
            raise MailError("MAIL_FROM must be set to the sender's address (e.g. "
                            "'Stockpile <stockpile@example.org>') when SMTP_HOST is set.")
        return cls(host=host, port=port, tls=tls, username=config.get("SMTP_USERNAME") or None,
                   password=config.get("SMTP_PASSWORD") or None, sender=sender)


def connect(settings: SmtpSettings, *, timeout: float = SMTP_TIMEOUT) -> smtplib.SMTP:
    """An SMTP connection, encrypted as ``settings.tls`` says and logged in when a user is set."""
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.tls == "ssl":
        smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    try:
        if settings.tls == "starttls":
            smtp.starttls(context=context)
        if settings.username:
            smtp.login(settings.username, settings.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def message(digest: Digest, settings: SmtpSettings, *, now: dt.datetime) -> EmailMessage:
    """The mail for ``digest``: plain text, addressed to its user alone."""
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = Address(display_name=digest.name, addr_spec=digest.to) if digest.name else digest.to
    msg["Subject"] = digest.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid("digest", domain=settings.sender.rpartition("@")[2].strip("> ") or None)
    msg["Auto-Submitted"] = "auto-generated"  # so that out-of-office replies are not sent back
    msg.set_content(digest.body)
    return msg


def send_digests(digests: Sequence[Digest], settings: SmtpSettings, *,
                 now: dt.datetime) -> tuple[list[int], dict[int, str]]:
    """Send each digest over one SMTP connection. Returns the ids of the users whose digest was
    accepted, and the error for each of the others (all of them when the server cannot be
    reached). Never raises for a send that fails: the caller decides what a failure means."""
    if not digests:
        return [], {}
    where = f"{settings.host}:{settings.port} ({settings.tls})"
    try:
        smtp = connect(settings)
    except (OSError, smtplib.SMTPException) as exc:
        error = f"Could not connect to the SMTP server {where}: {type(exc).__name__}: {exc}"
        log.error("%s; %s not sent", error, _plural(len(digests), "digest"))
        return [], {d.user_id: error for d in digests}
    sent: list[int] = []
    failed: dict[int, str] = {}
    disconnected: str | None = None
    try:
        for digest in digests:
            if disconnected is not None:  # nothing more goes through this connection
                failed[digest.user_id] = disconnected
                continue
            try:
                smtp.send_message(message(digest, settings, now=now), to_addrs=[digest.to])
            except smtplib.SMTPServerDisconnected as exc:
                disconnected = failed[digest.user_id] = f"The SMTP server {where} closed the connection: {exc}"
            except smtplib.SMTPRecipientsRefused as exc:
                code, reason = next(iter(exc.recipients.values()))
                failed[digest.user_id] = f"{digest.to} refused by {where}: {code} {_text(reason)}"
            except smtplib.SMTPResponseException as exc:
                failed[digest.user_id] = (f"Digest to {digest.to} refused by {where}: {exc.smtp_code} "
                                          f"{_text(exc.smtp_error)}")
            except (OSError, smtplib.SMTPException) as exc:
                failed[digest.user_id] = f"Digest to {digest.to} not sent via {where}: {type(exc).__name__}: {exc}"
            else:
                sent.append(digest.user_id)
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
    for user_id, error in failed.items():
        log.error("Digest for user %s not sent: %s", user_id, error)
    return sent, failed


def _text(reason: bytes | str) -> str:
    return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


EVENTS = {AlertEventKind.OPENED.value: "alert.opened", AlertEventKind.REOPENED.value: "alert.reopened",
          AlertEventKind.RESOLVED.value: "alert.resolved"}
# The wait after the 1st, 2nd, … failed attempt; the attempt after the last wait is the last.
BACKOFF = (dt.timedelta(minutes=1), dt.timedelta(minutes=5), dt.timedelta(minutes=30),
           dt.timedelta(hours=2), dt.timedelta(hours=12))
MAX_ATTEMPTS = len(BACKOFF) + 1
TIMEOUT = 10.0
SIGNATURE_HEADER = "X-Stockpile-Signature"
DELIVERY_HEADER = "X-Stockpile-Delivery"


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def queue_deliveries(session: so.Session, events: Sequence[AlertEvent]) -> None:
    """Queue the webhook deliveries of alert changes, in the transaction that records them:
    one per active webhook of the alert's organisation and event. The events are flushed, so
    what is read is each alert's new state."""
    for event in events:
        name = EVENTS.get(event.kind)
        if name is None:
            continue
        row = session.execute(
            sa.select(Webhook.id.label("webhook_id"), Alert.id, Alert.rule, Alert.severity, Alert.state,
                      Organisation.code.label("organisation"), Item.code.label("item"), Lot.lot_number,
                      Alert.message, Alert.first_seen, Alert.last_seen)
            .select_from(Alert)
            .join(Organisation, Organisation.id == Alert.organisation_id)
            .join(Webhook, sa.and_(Webhook.organisation_id == Alert.organisation_id, Webhook.active.is_(True)))
            .outerjoin(Item, Item.id == Alert.item_id)
            .outerjoin(Lot, Lot.id == Alert.lot_id)
            .where(Alert.id == event.alert_id)).one_or_none()
        if row is None:  # the organisation has no active webhook
            continue
        payload = {"event": name,
                   "alert": {"id": row.id, "rule": row.rule, "severity": row.severity, "state": row.state,
                             "organisation": row.organisation, "item": row.item, "lot_number": row.lot_number,
                             "message": row.message, "first_seen": _iso(row.first_seen),
                             "last_seen": _iso(row.last_seen)}}
        session.execute(sa.insert(WebhookDelivery).values(
            webhook_id=row.webhook_id, alert_id=row.id, payload=payload, attempts=0,
            next_attempt_at=event.at or utcnow()))


def body(payload: Mapping[str, Any]) -> bytes:
    """The bytes POSTed for ``payload`` (and signed): compact JSON in UTF-8, keys sorted."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def signature(secret: str, raw_body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``raw_body`` keyed with ``secret``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Outgoing:
    """A delivery ready to POST: nothing in it refers to the database session."""

    delivery_id: int
    webhook_id: int
    url: str
    body: bytes
    headers: dict[str, str]


def outgoing(delivery: WebhookDelivery) -> Outgoing:
    raw = body(delivery.payload)
    return Outgoing(delivery_id=delivery.id, webhook_id=delivery.webhook_id, url=delivery.webhook.url, body=raw,
                    headers={"Content-Type": "application/json; charset=utf-8",
                             "User-Agent": "stockpile-webhooks/1",
                             SIGNATURE_HEADER: signature(delivery.webhook.secret, raw),
                             DELIVERY_HEADER: str(delivery.id)})


def due_delivery_ids(session: so.Session, *, now: dt.datetime) -> list[int]:
    """Deliveries to active webhooks neither delivered nor given up, whose next attempt is due
    at ``now``; oldest first, so that each endpoint gets an alert's changes in order."""
    return list(session.scalars(
        sa.select(WebhookDelivery.id).join(WebhookDelivery.webhook)
        .where(WebhookDelivery.delivered_at.is_(None), WebhookDelivery.failed_at.is_(None),
               WebhookDelivery.next_attempt_at <= now, Webhook.active.is_(True))
        .order_by(WebhookDelivery.id)))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would be re-sent as a GET without its body: count it as a failure.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def post(out: Outgoing, *, timeout: float = TIMEOUT) -> str | None:
    """POST ``out``; None when the endpoint answers 2xx, else what went wrong, in words."""
    parts = urlsplit(out.url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return f"The webhook URL {out.url!r} is not an http:// or https:// address."
    request = urllib.request.Request(out.url, data=out.body, headers=out.headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(65536)  # let the endpoint finish its answer; its content is not used
            return None
    except urllib.error.HTTPError as exc:
        try:
            detail = exc.read(300).decode("utf-8", "replace").strip()
        except (OSError, http.client.HTTPException):
            detail = ""
        finally:
            exc.close()
        return f"{parts.hostname} answered HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return f"No answer from {parts.hostname} within {timeout:g} s."
        return f"Could not reach {parts.hostname}: {exc.reason}"
    except TimeoutError:
        return f"No answer from {parts.hostname} within {timeout:g} s."
    except (OSError, http.client.HTTPException) as exc:
        return f"Delivery to {parts.hostname} failed: {type(exc).__name__}: {exc}"


def record_attempt(delivery: WebhookDelivery, error: str | None, *, now: dt.datetime) -> None:
    """Record one attempt: delivered, or failed and retried after the back-off, or — after
    ``MAX_ATTEMPTS`` — given up (``failed_at``)."""
    delivery.attempts += 1
    if error is None:
        delivery.delivered_at = now
        return
    delivery.last_error = error[:2000]
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.failed_at = now
        log.error("Webhook delivery %s to %s given up after %d attempts: %s", delivery.id,
                  delivery.webhook.url, delivery.attempts, error)
    else:
        delivery.next_attempt_at = now + BACKOFF[delivery.attempts - 1]
        log.warning("Webhook delivery %s to %s failed (attempt %d of %d, next at %s): %s", delivery.id,
                    delivery.webhook.url, delivery.attempts, MAX_ATTEMPTS,
                    delivery.next_attempt_at.isoformat(), error)


def webhooks(session: so.Session) -> list[Webhook]:
    """Every webhook, by its organisation's name."""
    return list(session.scalars(sa.select(Webhook).join(Webhook.organisation)
                                .options(so.contains_eager(Webhook.organisation)).order_by(Organisation.name)))


def delivery_counts(session: so.Session) -> dict[int, dict[str, int]]:
    """Per webhook id: its deliveries ``delivered``, ``failed`` (given up) and ``pending``."""
    pending = sa.func.sum(sa.case((sa.and_(WebhookDelivery.delivered_at.is_(None),
                                           WebhookDelivery.failed_at.is_(None)), 1), else_=0))
    rows = session.execute(sa.select(WebhookDelivery.webhook_id, sa.func.count(WebhookDelivery.delivered_at),
                                     sa.func.count(WebhookDelivery.failed_at), pending)
                           .group_by(WebhookDelivery.webhook_id))
    return {hook_id: {"delivered": delivered, "failed": failed, "pending": int(waiting or 0)}
            for hook_id, delivered, failed, waiting in rows}


def last_errors(session: so.Session) -> dict[int, WebhookDelivery]:
    """Per webhook id: its newest delivery that recorded an error."""
    newest = (sa.select(sa.func.max(WebhookDelivery.id)).where(WebhookDelivery.last_error.is_not(None))
              .group_by(WebhookDelivery.webhook_id))
    return {d.webhook_id: d for d in session.scalars(sa.select(WebhookDelivery).where(WebhookDelivery.id.in_(newest)))}


def _new_secret() -> str:
    return secrets.token_hex(32)


def create_webhook(session: so.Session, *, organisation_code: str, url: str, active: bool) -> tuple[Webhook, str]:
    """A webhook for the organisation with ``organisation_code``, and its signing secret (shown
    once: nothing else returns it). An organisation has one webhook at most (``Conflict``)."""
    organisation = session.scalar(sa.select(Organisation).where(Organisation.code == organisation_code))
    if organisation is None:
        raise field_error("organisation", f"No organisation with code {organisation_code}.")
    if session.scalar(sa.select(Webhook.id).where(Webhook.organisation_id == organisation.id)) is not None:
        message = f"{organisation.name} already has a webhook; change it in the list."
        raise Conflict(message, code="webhook_exists", fields={"organisation": [message]})
    secret = _new_secret()
    hook = Webhook(organisation=organisation, url=url, secret=secret, active=active)
    session.add(hook)
    session.flush()
    return hook, secret


def update_webhook(session: so.Session, hook: Webhook, *, url: str, active: bool) -> Webhook:
    hook.url = url
    hook.active = active
    session.flush()
    return hook


def renew_secret(session: so.Session, hook: Webhook) -> str:
    """A new signing secret for ``hook``, returned to be shown once; the old one stops working."""
    hook.secret = _new_secret()
    session.flush()
    return hook.secret


def delete_webhook(session: so.Session, hook: Webhook) -> None:
    """Delete ``hook``; its deliveries go with it."""
    session.delete(hook)
    session.flush()
