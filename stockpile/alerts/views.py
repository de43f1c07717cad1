"""Pages for alerts: the list of what the user is responsible for (with a regional summary for
coordinators), an alert with its history, acknowledging one, the user's digest settings, and the
administration of rules and webhooks.

What a user sees follows ``auth.readable_organisation_ids``: supply staff their centre, municipal
staff their municipality, pharmacists their pharmacy, coordinators their region. Acknowledging
needs the right to record stock for the alert's organisation (or administrator), checked here
whatever the page offered.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from stockpile import pages
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
from stockpile.alerts.models import Alert, AlertRule, AlertState, DigestSetting, Severity, Webhook
from stockpile.auth import services as auth
from stockpile.auth.models import Role
from stockpile.db import get
from stockpile.errors import Conflict, DomainError, Forbidden, NotFound
from stockpile.extensions import db
from stockpile.forms import label

bp = Blueprint("alerts", __name__)
pages.require_sign_in(bp)

PER_PAGE = 50
MAX_PAGE = 100_000
# Rules about an item's coverage, acted on from the item's coverage page.
COVERAGE_RULES = {"coverage_below_min", "coverage_falling", "expiry_erodes_coverage", "no_baseline",
                  "critical_drug_below_min"}


@bp.app_context_processor
def _inject_alert_count() -> dict[str, Any]:
    """The number of open alerts in the navigation."""
    if not current_user.is_authenticated:
        return {}
    return {"nav_alert_count": alerts.open_alert_count(db.session, current_user)}


@bp.record_once
def _register_labels(state: Any) -> None:
    state.app.jinja_env.globals.update(
        severity_label=lambda v: label(SEVERITY_LABELS, v),
        alert_state_label=lambda v: label(STATE_LABELS, v),
        alert_event_label=lambda v: label(EVENT_LABELS, v),
        rule_label=lambda v: label(RULE_LABELS, v))


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
    alert = get(db.session, Alert, alert_id, with_for_update=lock, populate_existing=lock)
    if alert is None or not auth.can_read(db.session, current_user, alert.organisation_id):
        raise NotFound(_("No alert %(id)s.", id=alert_id))
    return alert


def _safe_next(default: str) -> str:
    """The page to return to after a form: only a page of this list, never another site."""
    target = request.form.get("next", "")
    base = url_for("alerts.index")
    ours = target == base or target.startswith((base + "?", base + "/"))
    return target if ours and "//" not in target and "\\" not in target else default


def _page_number() -> int:
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:
        return 1
    return min(max(page, 1), MAX_PAGE)


@bp.route("/alerts")
def index() -> str:
    readable = auth.readable_organisation_ids(db.session, current_user)
    state = request.args.get("state", "active")
    state = state if state in alerts.STATE_FILTERS else "active"
    severity = request.args.get("severity", "")
    severity = severity if severity in alerts.SEVERITY_ORDER else ""
    rules = alerts.rules(db.session)
    rule = request.args.get("rule", "")
    rule = rule if rule in rules else ""
    code = request.args.get("organisation", "").strip()
    organisation = pages.readable_organisation(code[:40]) if code else None
    found = alerts.alert_page(db.session, readable, state=state, severity=severity or None, rule=rule or None,
                              organisation=organisation, page=_page_number(), per_page=PER_PAGE)
    writable = auth.writable_organisation_ids(current_user)
    sees_summary = current_user.is_admin or Role.COORDINATOR.value in current_user.roles
    args = {k: v for k, v in {"state": state, "severity": severity, "rule": rule,
                              "organisation": organisation.code if organisation else ""}.items() if v}
    return render_template(
        "alerts/index.html", alerts=found.alerts, total=found.total, page=found.page, pages=found.pages,
        args=args, state=state, severity=severity, rule=rule, organisation=organisation, rules=rules,
        organisations=pages.readable_organisations(), states=alerts.STATE_FILTERS,
        severities=alerts.SEVERITY_ORDER,
        summary=alerts.regional_summary(db.session, readable) if sees_summary else None,
        links={a.id: action_link(a) for a in found.alerts},
        can_acknowledge={a.id for a in found.alerts if a.state == AlertState.OPEN.value
                         and (writable is None or a.organisation_id in writable)},
        form=AcknowledgeForm(formdata=None), here=request.full_path.rstrip("?"))


def _detail_page(alert: Alert, form: AcknowledgeForm | None = None, status: int = 200) -> tuple[str, int]:
    can_acknowledge = alert.state == AlertState.OPEN.value and auth.can_write(current_user, alert.organisation_id)
    return render_template("alerts/detail.html", alert=alert, events=alerts.history(db.session, alert),
                           rule=db.session.get(AlertRule, alert.rule), link=action_link(alert),
                           can_acknowledge=can_acknowledge, form=form or AcknowledgeForm(formdata=None)), status


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
                id=alert.id, state=label(STATE_LABELS, alert.state).lower()), "error")
        return redirect(url_for("alerts.detail", alert_id=alert.id))
    flash(_("Alert %(id)s acknowledged. It stays in the list until its condition clears.", id=alert.id),
          "success")
    return redirect(_safe_next(url_for("alerts.detail", alert_id=alert.id)))


@bp.route("/alerts/settings", methods=["GET", "POST"])
def settings() -> Any:
    setting = db.session.get(DigestSetting, current_user.id)
    if request.method == "POST":
        form = DigestSettingForm()
    else:
        form = DigestSettingForm(formdata=None, data={
            "enabled": setting.enabled if setting else notify.told_by_default(current_user),
            "min_severity": setting.min_severity if setting else Severity.WARNING.value})
    submitted = pages.submit(form, lambda: notify.save_digest_setting(
        db.session, current_user, enabled=bool(form.enabled.data), min_severity=form.min_severity.data))
    if submitted.done:
        flash(_("Your digest settings are saved.") if submitted.result.enabled
              else _("Your digest settings are saved: no digest will be sent to you."), "success")
        return redirect(url_for("alerts.settings"))
    return render_template("alerts/settings.html", form=form, setting=setting), submitted.status


@bp.route("/admin/alert-rules")
def rules() -> str:
    auth.require_admin(current_user)
    order = list(RULE_LABELS)
    all_rules = sorted(alerts.rules(db.session).values(),
                       key=lambda r: (order.index(r.code) if r.code in order else len(order), r.code))
    return render_template("alerts/rules.html", rules=all_rules, counts=alerts.unresolved_by_rule(db.session),
                           params_text=params_text)


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
    submitted = pages.submit(form, lambda: alerts.update_rule(
        db.session, found, enabled=bool(form.enabled.data), severity=form.severity.data, params=form.cleaned_params))
    if submitted.done:
        flash(_("Rule “%(name)s” saved. It applies from the next evaluation: after the next posting of "
                "the stock concerned, or the scheduled full scan.", name=label(RULE_LABELS, found.code) or found.name),
              "success")
        return redirect(url_for("alerts.rules"))
    return render_template("alerts/rule.html", rule=found, form=form,
                           parameters=RULE_PARAMETERS.get(found.code, {})), submitted.status


def _webhooks_page(form: WebhookForm | None = None, status: int = 200,
                   secret: tuple[Webhook, str] | None = None) -> Any:
    hooks = notify.webhooks(db.session)
    if form is None:
        form = WebhookForm(formdata=None)
    taken = {h.organisation.code for h in hooks}
    form.organisation.choices = [c for c in pages.organisation_choices(blank=_("— choose —")) if c.value not in taken]
    page = render_template("alerts/webhooks.html", webhooks=hooks, stats=notify.delivery_counts(db.session),
                           errors=notify.last_errors(db.session), form=form, new_secret=secret,
                           signature_header=notify.SIGNATURE_HEADER, max_attempts=notify.MAX_ATTEMPTS)
    response = current_app.make_response((page, status))
    if secret is not None:
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/admin/webhooks", methods=["GET", "POST"])
def webhooks() -> Any:
    auth.require_admin(current_user)
    if request.method == "GET":
        return _webhooks_page()
    form = WebhookForm()
    if not form.validate_on_submit():
        return _webhooks_page(form, 422)
    try:
        hook, secret = notify.create_webhook(db.session, organisation_code=form.organisation.data,
                                             url=form.url.data, active=bool(form.active.data))
        db.session.commit()
    except DomainError as error:
        pages.refused(form, error)
        return _webhooks_page(form, 409 if isinstance(error, Conflict) else 422)
    # Shown in this response only: it is not put in the session cookie or shown again.
    return _webhooks_page(status=201, secret=(hook, secret))


def _webhook(webhook_id: int) -> Webhook:
    return pages.get_or_404(Webhook, webhook_id, _("No webhook %(id)s.", id=webhook_id))


@bp.route("/admin/webhooks/<int:webhook_id>", methods=["GET", "POST"])
def webhook(webhook_id: int) -> Any:
    auth.require_admin(current_user)
    hook = _webhook(webhook_id)
    if request.method == "POST":
        form = WebhookEditForm()
    else:
        form = WebhookEditForm(formdata=None, data={"url": hook.url, "active": hook.active})
    submitted = pages.submit(form, lambda: notify.update_webhook(db.session, hook, url=form.url.data,
                                                                 active=bool(form.active.data)))
    if submitted.done:
        flash(_("Webhook of %(name)s saved.", name=hook.organisation.name), "success")
        return redirect(url_for("alerts.webhooks"))
    return render_template("alerts/webhook.html", webhook=hook, form=form), submitted.status


@bp.route("/admin/webhooks/<int:webhook_id>/secret", methods=["POST"])
def webhook_secret(webhook_id: int) -> Any:
    auth.require_admin(current_user)
    hook = _webhook(webhook_id)
    secret = notify.renew_secret(db.session, hook)
    db.session.commit()
    return _webhooks_page(secret=(hook, secret))


@bp.route("/admin/webhooks/<int:webhook_id>/delete", methods=["POST"])
def webhook_delete(webhook_id: int) -> Response:
    auth.require_admin(current_user)
    hook = _webhook(webhook_id)
    name = hook.organisation.name
    notify.delete_webhook(db.session, hook)
    db.session.commit()
    flash(_("Webhook of %(name)s deleted; its deliveries are deleted with it.", name=name), "success")
    return redirect(url_for("alerts.webhooks"))
