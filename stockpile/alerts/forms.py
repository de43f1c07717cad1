"""Forms for alerts: acknowledging one, a user's digest settings, and the administration of the
rules (with their JSON parameters checked against what each rule reads) and webhooks."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.validators import URL, DataRequired, Length, Optional, ValidationError

from stockpile.alerts.models import AlertState, Severity
from stockpile.forms import DomainForm, choices

SEVERITY_LABELS = {Severity.CRITICAL: _l("Critical"), Severity.WARNING: _l("Warning"),
                   Severity.INFO: _l("Info")}
STATE_LABELS = {AlertState.OPEN: _l("Open"), AlertState.ACKNOWLEDGED: _l("Acknowledged"),
                AlertState.RESOLVED: _l("Resolved")}
EVENT_LABELS = {"opened": _l("Opened"), "acknowledged": _l("Acknowledged"), "resolved": _l("Resolved"),
                "reopened": _l("Re-opened")}
# The seeded rules (migration 0004), named for the pages in the user's language.
RULE_LABELS = {
    "coverage_below_min": _l("Coverage below the policy minimum"),
    "coverage_falling": _l("Coverage projected to fall below the minimum"),
    "expiry_erodes_coverage": _l("Expiry erodes coverage below the minimum"),
    "lot_expiring": _l("Lot expiring without a rotation task"),
    "expired_on_hand": _l("Expired stock still on hand"),
    "rotation_overdue": _l("Rotation task overdue"),
    "no_baseline": _l("Item under a policy without a baseline"),
    "count_discrepancy": _l("Stock count differed from the books"),
    "critical_drug_below_min": _l("Critical drug below its minimum days"),
}

MAX_DAYS = 3650      # ten years: beyond any horizon or look-back that makes sense for stock
MAX_UNITS = 1_000_000_000
MAX_HORIZONS = 10


@dataclass(frozen=True)
class Parameter:
    """One key of a rule's ``params``: what kind of value it takes, and what it means."""

    kind: str  # "days", "units", "percent" or "days_list"
    help: Any


# What ``stockpile.alerts.services`` reads from each rule's params; a rule not named here
# takes none. Every key may be left out: the service then uses its default.
RULE_PARAMETERS: dict[str, dict[str, Parameter]] = {
    "coverage_falling": {
        "within_days": Parameter("days", _l("Alert when coverage falls below the minimum within this many days "
                                           "at current use (default 14)."))},
    "lot_expiring": {
        "horizons": Parameter("days_list", _l("Days before expiry at which a lot is reported, e.g. [180, 90, 30]; "
                                              "the largest is how far ahead lots are looked at.")),
        "critical_within": Parameter("days", _l("A lot this close to expiry is critical (default 30).")),
        "info_beyond": Parameter("days", _l("A lot further from expiry than this is only info (default 90)."))},
    "count_discrepancy": {
        "threshold_percent": Parameter("percent", _l("Alert when a count differs from the books by more than "
                                                     "this share (default 5).")),
        "min_units": Parameter("units", _l("… and by at least this many units (default 1).")),
        "within_days": Parameter("days", _l("Counts of the last this many days are looked at (default 30)."))},
}


def _whole(value: Any) -> int | None:
    """``value`` as an int if it is a JSON number without a fraction (not true/false)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        return None
    return int(value)


def _check(key: str, spec: Parameter, value: Any) -> tuple[Any, list[str]]:
    if spec.kind == "days":
        days = _whole(value)
        if days is None or not 1 <= days <= MAX_DAYS:
            return None, [str(_("%(key)s must be a whole number of days from 1 to %(max)s.", key=key, max=MAX_DAYS))]
        return days, []
    if spec.kind == "units":
        units = _whole(value)
        if units is None or not 1 <= units <= MAX_UNITS:
            return None, [str(_("%(key)s must be a whole number of units, at least 1.", key=key))]
        return units, []
    if spec.kind == "percent":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not 0 < value <= 100:
            return None, [str(_("%(key)s must be a number above 0 and at most 100.", key=key))]
        return value, []
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_HORIZONS:
        return None, [str(_("%(key)s must be a list of 1 to %(n)s numbers of days, e.g. [180, 90, 30].",
                             key=key, n=MAX_HORIZONS))]
    days_list = [_whole(v) for v in value]
    if any(d is None or not 1 <= d <= MAX_DAYS for d in days_list):
        return None, [str(_("Each of %(key)s must be a whole number of days from 1 to %(max)s.",
                             key=key, max=MAX_DAYS))]
    if len(set(days_list)) != len(days_list):
        return None, [str(_("%(key)s lists a number of days twice.", key=key))]
    return sorted(days_list, reverse=True), []  # type: ignore[type-var]


def parse_rule_params(code: str, text: str) -> tuple[dict[str, Any], list[str]]:
    """The parameters in ``text`` (a JSON object) checked against what rule ``code`` reads:
    known keys only, positive numbers within range. Returns the cleaned params and the errors."""
    text = (text or "").strip() or "{}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, [str(_("Not valid JSON: %(reason)s (line %(line)s, column %(column)s).",
                           reason=exc.msg, line=exc.lineno, column=exc.colno))]
    if not isinstance(data, dict):
        return {}, [str(_('Write the parameters as a JSON object, e.g. {"within_days": 14}.'))]
    known = RULE_PARAMETERS.get(code, {})
    errors: list[str] = []
    cleaned: dict[str, Any] = {}
    for key, value in data.items():
        spec = known.get(key)
        if spec is None:
            errors.append(str(_("Unknown parameter %(key)s: this rule takes %(known)s.", key=json.dumps(key),
                                 known=", ".join(known) if known else _("no parameters"))))
            continue
        value, problems = _check(key, spec, value)
        errors += problems
        if not problems:
            cleaned[key] = value
    return cleaned, errors


def params_text(params: dict[str, Any]) -> str:
    """``params`` as JSON to edit: one key a line, lists kept on it."""
    if not params:
        return "{}"
    lines = [f"  {json.dumps(key)}: {json.dumps(params[key])}" for key in sorted(params)]
    return "{\n" + ",\n".join(lines) + "\n}"


class AcknowledgeForm(DomainForm):
    comment = TextAreaField(_l("Comment"), validators=[Optional(), Length(max=2000)],
                            description=_l("Optional: what is being done, e.g. “Order placed, arrives Friday”."),
                            render_kw={"rows": 2})


class DigestSettingForm(DomainForm):
    enabled = BooleanField(_l("Send me a daily e-mail digest of new alerts"))
    min_severity = SelectField(_l("Include alerts from this severity up"), choices=choices(SEVERITY_LABELS),
                               default=Severity.WARNING.value)


class AlertRuleForm(DomainForm):
    enabled = BooleanField(_l("Enabled"))
    severity = SelectField(_l("Severity"), choices=choices(SEVERITY_LABELS))
    params = TextAreaField(_l("Parameters (JSON)"), render_kw={"rows": 6, "spellcheck": "false", "class": "mono"})

    def __init__(self, rule_code: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rule_code = rule_code
        self.cleaned_params: dict[str, Any] = {}

    def validate_params(self, field: TextAreaField) -> None:
        self.cleaned_params, errors = parse_rule_params(self.rule_code, field.data or "")
        if errors:
            # The first errors are added here and the last raised, so they show in order.
            field.errors.extend(errors[:-1])
            raise ValidationError(errors[-1])


def _web_url(_form: Any, field: StringField) -> None:
    if not (field.data or "").strip().lower().startswith(("http://", "https://")):
        raise ValidationError(_("Enter an http:// or https:// URL."))


def _url_field() -> StringField:
    return StringField(_l("URL"), validators=[DataRequired(), Length(max=500), _web_url,
                                              URL(require_tld=False, message=_l("Enter an http:// or https:// URL."))],
                       description=_l("Alerts of the organisation are POSTed here as JSON, signed with the "
                                      "webhook's secret (HMAC-SHA256)."),
                       filters=[lambda v: v.strip() if isinstance(v, str) else v])


class WebhookEditForm(DomainForm):
    url = _url_field()
    active = BooleanField(_l("Active"), default=True)


class WebhookForm(WebhookEditForm):
    organisation = SelectField(_l("Organisation"), choices=[], validate_choice=False, validators=[DataRequired()])
