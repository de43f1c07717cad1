"""Pages for alerts: the list of what the user is responsible for (with a regional summary for
coordinators), an alert with its history, acknowledging one, the user's digest settings, and the
administration of rules and webhooks.

What a user sees follows ``auth.readable_organisation_ids``: supply staff their centre, municipal
staff their municipality, pharmacists their pharmacy, coordinators their region. Acknowledging
needs the right to record stock for the alert's organisation (or administrator), checked here
whatever the page offered.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from stockpile.alerts import notify
from stockpile.alerts import services as alerts
from stockpile.alerts.forms import (
    EVENT_LABELS,
    RULE_LABELS,
    RULE_PARAMETERS,
    SEVERITY_LABELS,
    STATE_LABELS,
    AcknowledgeForm,
    AlertRuleForm,
    DigestSettingForm,
    WebhookEditForm,
    WebhookForm,
    params_text,
)
from stockpile.alerts.models import (
    Alert,
    AlertEvent,
    AlertRule,
    AlertState,
    DigestSetting,
    Severity,
    Webhook,
    WebhookDelivery,
)
from stockpile.auth import services as auth
from stockpile.auth.models import Role, User
from stockpile.errors import Conflict, Forbidden, NotFound
from stockpile.extensions import db
from stockpile.inventory import services as inventory
from stockpile.forms import option
from stockpile.inventory.models import Organisation

bp = Blueprint("alerts", __name__)

PER_PAGE = 50
MAX_PAGE = 100_000
MAX_ID = 2**31 - 1  # ids are INTEGER columns
SEVERITY_ORDER = [Severity.CRITICAL.value, Severity.WARNING.value, Severity.INFO.value]
# The list's state filter: "active" (open or acknowledged: still to be put right) by default.
STATE_FILTERS = ("active", "open", "acknowledged", "resolved", "all")
# Rules about an item's coverage, acted on from the item's coverage page.
COVERAGE_RULES = {"coverage_below_min", "coverage_falling", "expiry_erodes_coverage", "no_baseline",
                  "critical_drug_below_min"}


@bp.before_request
@login_required
def _signed_in() -> None:
    """Every page here needs a signed-in user."""


# --- the count in the navigation --------------------------------------------------------------

def open_alert_count(session: so.Session, user: User) -> int:
    """Open (not yet acknowledged) alerts of the organisations ``user`` may read."""
    readable = auth.readable_organisation_ids(session, user)
    stmt = sa.select(sa.func.count(Alert.id)).where(Alert.state == AlertState.OPEN.value)
    if readable is not None:
        if not readable:
            return 0
        stmt = stmt.where(Alert.organisation_id.in_(readable))
    return session.scalar(stmt) or 0


@bp.app_context_processor
def _inject_alert_count() -> dict[str, Any]:
    if not current_user.is_authenticated:
        return {}
    return {"nav_alert_count": open_alert_count(db.session, current_user)}


# --- labels and links ---------------------------------------------------------------------------

def _label(table: dict[Any, Any], value: str | None) -> str:
    for key, text in table.items():
        if getattr(key, "value", key) == value:
            return str(text)
    return value or ""


@bp.record_once
def _register_labels(state: Any) -> None:
    state.app.jinja_env.globals.update(
        severity_label=lambda v: _label(SEVERITY_LABELS, v),
        alert_state_label=lambda v: _label(STATE_LABELS, v),
        alert_event_label=lambda v: _label(EVENT_LABELS, v),
        rule_label=lambda v: _label(RULE_LABELS, v))


def action_link(alert: Alert) -> tuple[str, str]:
    """Where to act on ``alert``, and what the link says."""
    views = current_app.view_functions
    org = alert.organisation.code
    if alert.rule == "rotation_overdue" and "rotation.overview" in views:
        return url_for("rotation.overview", organisation=org), _("Open the rotation list")
    if alert.item is None:
        return url_for("coverage.overview", organisation=org), _("Open coverage")
    if alert.rule in COVERAGE_RULES and "coverage.item" in views:
        return (url_for("coverage.item", org_code=org, item_code=alert.item.code),
                _("Open the item's coverage"))
    return url_for("inventory.item", code=alert.item.code), _("Open the item's lots")


def _alert(alert_id: int, *, lock: bool = False) -> Alert:
    """The alert if the user may read its organisation; 404 as if it did not exist otherwise."""
    session = db.session
    alert = None
    if alert_id <= MAX_ID:
        alert = session.get(Alert, alert_id, with_for_update=lock, populate_existing=lock)
    if alert is None or not auth.can_read(session, current_user, alert.organisation_id):
        raise NotFound(_("No alert %(id)s.", id=alert_id))
    return alert


def _readable_organisations(readable: set[int] | None) -> list[Organisation]:
    stmt = sa.select(Organisation).order_by(Organisation.name)
    if readable is not None:
        stmt = stmt.where(Organisation.id.in_(readable))
    return list(db.session.scalars(stmt))


def _safe_next(default: str) -> str:
    """The page to return to after a form: only a page of this list, never another site."""
    target = request.form.get("next", "")
    base = url_for("alerts.index")
    ours = target == base or target.startswith((base + "?", base + "/"))
    return target if ours and "//" not in target and "\\" not in target else default


# --- the list --------------------------------------------------------------------------------

@dataclass
class SummaryRow:
    organisation: Organisation | None  # None for the totals
    counts: dict[str, int] = field(default_factory=dict)
    not_acknowledged: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def regional_summary(readable: set[int] | None) -> tuple[list[SummaryRow], int, SummaryRow]:
    """Unresolved alerts per readable organisation and severity (one GROUP BY), worst first;
    with the number of organisations that have none, and the totals."""
    stmt = (sa.select(Alert.organisation_id, Alert.severity, Alert.state, sa.func.count(Alert.id))
            .where(Alert.state != AlertState.RESOLVED.value)
            .group_by(Alert.organisation_id, Alert.severity, Alert.state))
    if readable is not None:
        stmt = stmt.where(Alert.organisation_id.in_(readable))
    orgs = {o.id: o for o in _readable_organisations(readable)}
    rows: dict[int, SummaryRow] = {}
    for org_id, severity, state, count in db.session.execute(stmt):
        if org_id not in orgs:
            continue
        row = rows.setdefault(org_id, SummaryRow(orgs[org_id]))
        row.counts[severity] = row.counts.get(severity, 0) + count
        if state == AlertState.OPEN.value:
            row.not_acknowledged += count
    ordered = sorted(rows.values(), key=lambda r: (*(-r.counts.get(s, 0) for s in SEVERITY_ORDER),
                                                   r.organisation.name if r.organisation else ""))
    totals = SummaryRow(None,
                        {s: sum(r.counts.get(s, 0) for r in ordered) for s in SEVERITY_ORDER},
                        sum(r.not_acknowledged for r in ordered))
    return ordered, len(orgs) - len(rows), totals


def _sees_summary() -> bool:
    return current_user.is_admin or Role.COORDINATOR.value in current_user.roles


def _page_number() -> int:
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:
        return 1
    return min(max(page, 1), MAX_PAGE)


@bp.route("/alerts")
def index() -> str:
    session = db.session
    readable = auth.readable_organisation_ids(session, current_user)
    state = request.args.get("state", "active")
    state = state if state in STATE_FILTERS else "active"
    severity = request.args.get("severity", "")
    severity = severity if severity in SEVERITY_ORDER else ""
    rules = {r.code: r for r in session.scalars(sa.select(AlertRule).order_by(AlertRule.code))}
    rule = request.args.get("rule", "")
    rule = rule if rule in rules else ""
    code = request.args.get("organisation", "").strip()
    organisation = None
    if code:
        organisation = inventory.by_code(session, Organisation, code[:40], field="organisation")
        auth.require_read(session, current_user, organisation)

    stmt = alerts.visible_alerts(session, readable, state=state if state in {s.value for s in AlertState} else None,
                                 severity=severity or None, organisation=organisation)
    if state == "active":
        stmt = stmt.where(Alert.state != AlertState.RESOLVED.value)
    if rule:
        stmt = stmt.where(Alert.rule == rule)
    # Newest first: the alert that most recently became open heads the list; of those opened
    # together (one scan), the most severe first.
    rank = sa.case({s: i for i, s in enumerate(SEVERITY_ORDER)}, value=Alert.severity, else_=len(SEVERITY_ORDER))
    stmt = stmt.order_by(None).order_by(Alert.opened_at.desc(), rank, Alert.id.desc())
    total = session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())) or 0
    pages = max(1, math.ceil(total / PER_PAGE))
    page = min(_page_number(), pages)
    shown = list(session.scalars(stmt.limit(PER_PAGE).offset((page - 1) * PER_PAGE)).unique())

    writable = auth.writable_organisation_ids(current_user)
    summary = regional_summary(readable) if _sees_summary() else None
    args = {k: v for k, v in {"state": state, "severity": severity, "rule": rule,
                              "organisation": organisation.code if organisation else ""}.items() if v}
    return render_template(
        "alerts/index.html", alerts=shown, total=total, page=page, pages=pages, args=args,
        state=state, severity=severity, rule=rule, organisation=organisation, rules=rules,
        organisations=_readable_organisations(readable), states=STATE_FILTERS, severities=SEVERITY_ORDER,
        summary=summary, links={a.id: action_link(a) for a in shown},
        can_acknowledge={a.id for a in shown if a.state == AlertState.OPEN.value
                         and (writable is None or a.organisation_id in writable)},
        form=AcknowledgeForm(formdata=None), here=request.full_path.rstrip("?"))


# --- one alert --------------------------------------------------------------------------------

def _detail_page(alert: Alert, form: AcknowledgeForm | None = None, status: int = 200) -> tuple[str, int]:
    events = list(db.session.scalars(sa.select(AlertEvent).where(AlertEvent.alert_id == alert.id)
                                     .options(so.joinedload(AlertEvent.user))
                                     .order_by(AlertEvent.at.desc(), AlertEvent.id.desc())))
    can_acknowledge = alert.state == AlertState.OPEN.value and auth.can_write(current_user, alert.organisation_id)
    rule = db.session.get(AlertRule, alert.rule)
    return render_template("alerts/detail.html", alert=alert, events=events, rule=rule,
                           link=action_link(alert), can_acknowledge=can_acknowledge,
                           form=form or AcknowledgeForm(formdata=None)), status


@bp.route("/alerts/<int:alert_id>")
def detail(alert_id: int) -> tuple[str, int]:
    return _detail_page(_alert(alert_id))


@bp.route("/alerts/<int:alert_id>/acknowledge", methods=["POST"])
def acknowledge(alert_id: int) -> Any:
    alert = _alert(alert_id, lock=True)
    if not auth.can_write(current_user, alert.organisation_id):
        raise Forbidden(_("You may not acknowledge alerts of %(organisation)s: only those who record its "
                          "stock, and administrators, may.", organisation=alert.organisation.name))
    form = AcknowledgeForm()
    if not form.validate_on_submit():
        db.session.rollback()
        return _detail_page(alert, form, 422)
    try:
        alerts.acknowledge(db.session, alert, user_id=current_user.id, comment=form.comment.data)
        db.session.commit()
    except Conflict:
        db.session.rollback()
        flash(_("Alert %(id)s is already %(state)s; only open alerts can be acknowledged.",
                id=alert.id, state=_label(STATE_LABELS, alert.state).lower()), "error")
        return redirect(url_for("alerts.detail", alert_id=alert.id))
    flash(_("Alert %(id)s acknowledged. It stays in the list until its condition clears.", id=alert.id),
          "success")
    return redirect(_safe_next(url_for("alerts.detail", alert_id=alert.id)))


# --- the user's digest settings ------------------------------------------------------------------

@bp.route("/alerts/settings", methods=["GET", "POST"])
def settings() -> Any:
    session = db.session
    setting = session.get(DigestSetting, current_user.id)
    if request.method == "POST":
        form = DigestSettingForm()
    else:
        form = DigestSettingForm(formdata=None, data={
            "enabled": setting.enabled if setting else notify.told_by_default(current_user),
            "min_severity": setting.min_severity if setting else Severity.WARNING.value})
    if form.validate_on_submit():
        if setting is None:
            setting = DigestSetting(user_id=current_user.id)
            session.add(setting)
        setting.enabled = bool(form.enabled.data)
        setting.min_severity = form.min_severity.data
        session.commit()
        flash(_("Your digest settings are saved.") if setting.enabled
              else _("Your digest settings are saved: no digest will be sent to you."), "success")
        return redirect(url_for("alerts.settings"))
    status = 422 if request.method == "POST" else 200
    return render_template("alerts/settings.html", form=form, setting=setting), status


# --- administration: rules ----------------------------------------------------------------------

@bp.route("/admin/alert-rules")
def rules() -> str:
    auth.require_admin(current_user)
    session = db.session
    counts = dict(session.execute(sa.select(Alert.rule, sa.func.count(Alert.id))
                                  .where(Alert.state != AlertState.RESOLVED.value).group_by(Alert.rule)).all())
    all_rules = list(session.scalars(sa.select(AlertRule)))
    order = list(RULE_LABELS)
    all_rules.sort(key=lambda r: (order.index(r.code) if r.code in order else len(order), r.code))
    return render_template("alerts/rules.html", rules=all_rules, counts=counts, params_text=params_text)


@bp.route("/admin/alert-rules/<code>", methods=["GET", "POST"])
def rule(code: str) -> Any:
    auth.require_admin(current_user)
    found = db.session.get(AlertRule, code[:40])
    if found is None:
        raise NotFound(_("No alert rule %(code)s.", code=code[:40]))
    if request.method == "POST":
        form = AlertRuleForm(found.code)
    else:
        form = AlertRuleForm(found.code, formdata=None, data={
            "enabled": found.enabled, "severity": found.severity, "params": params_text(found.params)})
    if form.validate_on_submit():
        found.enabled = bool(form.enabled.data)
        found.severity = form.severity.data
        found.params = form.cleaned_params
        db.session.commit()
        flash(_("Rule “%(name)s” saved. It applies from the next evaluation: after the next posting of "
                "the stock concerned, or the scheduled full scan.", name=_label(RULE_LABELS, found.code) or found.name),
              "success")
        return redirect(url_for("alerts.rules"))
    status = 422 if request.method == "POST" else 200
    return render_template("alerts/rule.html", rule=found, form=form,
                           parameters=RULE_PARAMETERS.get(found.code, {})), status


# --- administration: webhooks -----------------------------------------------------------------

def _new_secret() -> str:
    return secrets.token_hex(32)


def _webhooks_page(form: WebhookForm | None = None, status: int = 200,
                   secret: tuple[Webhook, str] | None = None) -> Any:
    session = db.session
    hooks = list(session.scalars(sa.select(Webhook).join(Webhook.organisation)
                                 .options(so.contains_eager(Webhook.organisation)).order_by(Organisation.name)))
    stats: dict[int, dict[str, int]] = {}
    for hook_id, delivered, failed, pending in session.execute(
            sa.select(WebhookDelivery.webhook_id,
                      sa.func.count(WebhookDelivery.delivered_at),
                      sa.func.count(WebhookDelivery.failed_at),
                      sa.func.sum(sa.case((sa.and_(WebhookDelivery.delivered_at.is_(None),
                                                   WebhookDelivery.failed_at.is_(None)), 1), else_=0)))
            .group_by(WebhookDelivery.webhook_id)):
        stats[hook_id] = {"delivered": delivered, "failed": failed, "pending": int(pending or 0)}
    newest_error = (sa.select(sa.func.max(WebhookDelivery.id)).where(WebhookDelivery.last_error.is_not(None))
                    .group_by(WebhookDelivery.webhook_id))
    errors = {d.webhook_id: d for d in session.scalars(sa.select(WebhookDelivery)
                                                       .where(WebhookDelivery.id.in_(newest_error)))}
    if form is None:
        form = WebhookForm(formdata=None)
    taken = {h.organisation_id for h in hooks}
    form.organisation.choices = [option("", _("— choose —")), *(
        option(o.code, f"{o.name} ({o.code})") for o in _readable_organisations(None) if o.id not in taken)]
    page = render_template("alerts/webhooks.html", webhooks=hooks, stats=stats, errors=errors, form=form,
                           new_secret=secret, signature_header=notify.SIGNATURE_HEADER,
                           max_attempts=notify.MAX_ATTEMPTS)
    response = current_app.make_response((page, status))
    if secret is not None:
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/admin/webhooks", methods=["GET", "POST"])
def webhooks() -> Any:
    auth.require_admin(current_user)
    if request.method == "GET":
        return _webhooks_page()
    session = db.session
    form = WebhookForm()
    if not form.validate_on_submit():
        return _webhooks_page(form, 422)
    organisation = session.scalar(sa.select(Organisation).where(Organisation.code == form.organisation.data))
    if organisation is None:
        form.organisation.errors = [_("No organisation with code %(code)s.", code=form.organisation.data)]
        return _webhooks_page(form, 422)
    if session.scalar(sa.select(Webhook.id).where(Webhook.organisation_id == organisation.id)) is not None:
        form.organisation.errors = [_("%(name)s already has a webhook; change it in the list.",
                                      name=organisation.name)]
        return _webhooks_page(form, 409)
    secret = _new_secret()
    hook = Webhook(organisation=organisation, url=form.url.data, secret=secret, active=bool(form.active.data))
    session.add(hook)
    session.commit()
    # Shown in this response only: it is not put in the session cookie or shown again.
    return _webhooks_page(status=201, secret=(hook, secret))


def _webhook(webhook_id: int) -> Webhook:
    hook = db.session.get(Webhook, webhook_id) if webhook_id <= MAX_ID else None
    if hook is None:
        raise NotFound(_("No webhook %(id)s.", id=webhook_id))
    return hook


@bp.route("/admin/webhooks/<int:webhook_id>", methods=["GET", "POST"])
def webhook(webhook_id: int) -> Any:
    auth.require_admin(current_user)
    hook = _webhook(webhook_id)
    if request.method == "POST":
        form = WebhookEditForm()
    else:
        form = WebhookEditForm(formdata=None, data={"url": hook.url, "active": hook.active})
    if form.validate_on_submit():
        hook.url = form.url.data
        hook.active = bool(form.active.data)
        db.session.commit()
        flash(_("Webhook of %(name)s saved.", name=hook.organisation.name), "success")
        return redirect(url_for("alerts.webhooks"))
    status = 422 if request.method == "POST" else 200
    return render_template("alerts/webhook.html", webhook=hook, form=form), status


@bp.route("/admin/webhooks/<int:webhook_id>/secret", methods=["POST"])
def webhook_secret(webhook_id: int) -> Any:
    auth.require_admin(current_user)
    hook = _webhook(webhook_id)
    secret = _new_secret()
    hook.secret = secret
    db.session.commit()
    return _webhooks_page(secret=(hook, secret))


@bp.route("/admin/webhooks/<int:webhook_id>/delete", methods=["POST"])
def webhook_delete(webhook_id: int) -> Response:
    auth.require_admin(current_user)
    hook = _webhook(webhook_id)
    name = hook.organisation.name
    db.session.delete(hook)
    db.session.commit()
    flash(_("Webhook of %(name)s deleted; its deliveries are deleted with it.", name=name), "success")
    return redirect(url_for("alerts.webhooks"))
