"""Coverage pages: the supply centre's coverage, an item's projection, the coordinator's region,
and administration of policies, scenarios and baselines.

Each page makes one ``coverage.evaluate`` call for the organisations it shows and reads every
other fact in a fixed number of queries, so its cost does not grow with its rows. Access is
checked here, where the data is read: an organisation the user may not read is 403, a baseline
may be set only by those who may write for its organisation, policies and scenarios only by
administrators.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from stockpile.auth import services as auth
from stockpile.errors import Forbidden, InvalidInput, NotFound
from stockpile.extensions import db
from stockpile.coverage import arithmetic
from stockpile import pages
from stockpile.coverage import display
from stockpile.coverage import services as coverage
from stockpile.inventory import services as inventory
from stockpile.coverage.services import (BaselineInForce, CoverageRow, Status)
from stockpile.coverage.forms import (ManualBaselineForm, POLICY_POOL_LABELS, PolicyForm,
                                      ScenarioForm)
from stockpile.forms import CATEGORY_LABELS, label
from stockpile.coverage.models import (BaselineSource, Policy,
                                       Scenario, ScenarioFactor)
from stockpile.inventory.models import Category, Item, Organisation, OrganisationKind
from stockpile.web import posting_context as _context

bp = Blueprint("coverage", __name__)

STATUS_LABELS = {
    Status.BELOW_MIN: _l("Below minimum"),
    Status.BELOW_TARGET: _l("Below target"),
    Status.OK: _l("OK"),
    Status.OVERSTOCK: _l("Overstock"),
    Status.NO_BASELINE: _l("No baseline"),
}
SOURCE_LABELS = {
    BaselineSource.MANUAL: _l("Entered by hand"),
    BaselineSource.COMPUTED: _l("Computed from issues"),
    BaselineSource.ANNUAL_3Y: _l("§ 8a: three calendar years"),
}
# What the stock of each policy pool is called on the pages.
STOCK_LABELS = {
    "operational": _l("Safety stock (operational pool)"),
    "emergency": _l("Emergency stock (emergency pool)"),
    "all": _l("All stock (both pools)"),
}
KIND_PLURALS = {
    OrganisationKind.SUPPLY_CENTRE: _l("supply centres"),
    OrganisationKind.HEALTH_TRUST: _l("health trusts"),
    OrganisationKind.HOSPITAL_PHARMACY: _l("hospital pharmacies"),
    OrganisationKind.MUNICIPALITY: _l("municipalities"),
    OrganisationKind.WHOLESALER: _l("wholesalers"),
    OrganisationKind.REGION: _l("regions"),
}
POOL_ORDER = ("operational", "emergency", "all")
# Long lists on the region page are cut here (with the number left out said).
REGION_LIST_LIMIT = 25


pages.require_sign_in(bp)


@bp.record_once
def _register_template_helpers(state: Any) -> None:
    env = state.app.jinja_env
    env.filters.update(cov_weeks=display.format_weeks, cov_days=display.format_days, cov_use=display.format_use)
    env.globals.update(
        kind_plural=lambda v: label(KIND_PLURALS, v) if v else _("organisations"),
        coverage_status_label=lambda v: label(STATUS_LABELS, v),
        baseline_source_label=lambda v: label(SOURCE_LABELS, v),
        stock_label=lambda v: label(STOCK_LABELS, v),
        policy_pool_label=lambda v: label(POLICY_POOL_LABELS, v))


@dataclass(frozen=True)
class ScenarioChoice:
    scenarios: list[Scenario]
    chosen: Scenario | None

    @property
    def name(self) -> str | None:
        return self.chosen.name if self.chosen else None


def _scenario_choice() -> ScenarioChoice:
    """The scenarios to offer and the one asked for with ``?scenario=`` (404 if unknown)."""
    scenarios = list(db.session.scalars(sa.select(Scenario).options(so.selectinload(Scenario.factors))
                                        .order_by(Scenario.name)))
    wanted = request.args.get("scenario", "").strip()
    if not wanted:
        return ScenarioChoice(scenarios, None)
    for scenario in scenarios:
        if scenario.name == wanted:
            return ScenarioChoice(scenarios, scenario)
    known = ", ".join(s.name for s in scenarios) or _("none")
    message = _("No scenario named “%(name)s”. Known scenarios: %(known)s.", name=wanted[:100], known=known)
    raise NotFound(message, fields={"scenario": [message]})


def scenario_summary(scenario: Scenario) -> str:
    """E.g. ``PPE ×4, Drug ×2``."""
    parts = []
    for factor in sorted(scenario.factors, key=lambda f: (f.item_id is not None, f.category or "")):
        scope = label(CATEGORY_LABELS, factor.category) if factor.category else (factor.item.code if factor.item else "")
        parts.append(f"{scope} ×{format_decimal(factor.factor, format='#,##0.###')}")
    return ", ".join(parts)


def _query_args(**changes: Any) -> dict[str, Any]:
    """The current page's filters (date, scenario, …) with ``changes``, for links."""
    kept = {k: v for k, v in request.args.items() if k in ("date", "scenario", "category", "list", "weeks")}
    kept.update(changes)
    return {k: v for k, v in kept.items() if v not in (None, "")}


def _default_organisation(orgs: Sequence[Organisation]) -> Organisation | None:
    """A supply centre before other kinds, the user's own before others, regions last."""
    own = {m.organisation_id for m in current_user.memberships}
    return min(orgs, key=lambda o: (o.kind == OrganisationKind.REGION, o.kind != OrganisationKind.SUPPLY_CENTRE,
                                    o.id not in own, o.name), default=None)


@dataclass
class ItemLine:
    """One item on the coverage page: its rows side by side, one per pool."""

    item: Item
    baseline: BaselineInForce | None
    no_baseline_reason: str
    factor: Fraction
    cells: dict[str, CoverageRow] = field(default_factory=dict)

    @property
    def worst(self) -> Status:
        order = [Status.BELOW_MIN, Status.NO_BASELINE, Status.BELOW_TARGET, Status.OVERSTOCK, Status.OK]
        return min((row.status for row in self.cells.values()), key=order.index)


def item_lines(rows: Iterable[CoverageRow]) -> list[ItemLine]:
    """Rows grouped per item, in the order ``evaluate`` sorts them (worst first)."""
    lines: dict[int, ItemLine] = {}
    for row in rows:
        line = lines.get(row.item.id)
        if line is None:
            line = lines[row.item.id] = ItemLine(row.item, row.baseline, row.no_baseline_reason, row.factor)
        line.cells[row.pool] = row
    return list(lines.values())


@dataclass(frozen=True)
class PolicyTotals:
    summary: coverage.PolicySummary
    shortfall: int

    @property
    def policy(self) -> Policy:
        return self.summary.policy


@bp.route("/coverage")
def overview() -> Any:
    session = db.session
    orgs = pages.readable_organisations()
    code = request.args.get("organisation", "").strip()
    organisation = pages.readable_organisation(code) if code else _default_organisation(orgs)
    today = pages.evaluation_date()
    scenarios = _scenario_choice()
    if organisation is None:
        return render_template("coverage/overview.html", organisation=None, orgs=orgs, today=today,
                               scenarios=scenarios, lines=[], pools=[], totals=[], lists=[],
                               category="", list_code="", categories=CATEGORY_LABELS,
                               scenario_summary=scenario_summary, args=_query_args())
    rows = coverage.evaluate(session, [organisation], today=today, scenario=scenarios.name)

    lists = coverage.item_lists(session, organisation)
    category = request.args.get("category", "")
    if category not in {c.value for c in Category}:
        category = ""
    list_code = request.args.get("list", "")
    chosen_list = next((lst for lst in lists if lst.code == list_code), None)
    if chosen_list is None:
        list_code = ""
    if category:
        rows = [r for r in rows if r.item.category == category]
    if chosen_list is not None:
        on_list = {e.item_id for e in chosen_list.entries}
        rows = [r for r in rows if r.item.id in on_list]

    lines = item_lines(rows)
    pools = [p for p in POOL_ORDER if any(r.pool == p for r in rows)]
    totals = [PolicyTotals(s, sum(r.shortfall or 0 for r in s.rows)) for s in coverage.summarise(rows)]
    totals.sort(key=lambda t: (POOL_ORDER.index(t.policy.pool) if t.policy.pool in POOL_ORDER else 9,
                               t.policy.name))
    return render_template("coverage/overview.html", organisation=organisation, orgs=orgs, today=today,
                           scenarios=scenarios, lines=lines, pools=pools, totals=totals, lists=lists,
                           category=category, list_code=list_code, categories=CATEGORY_LABELS,
                           scenario_summary=scenario_summary, args=_query_args())


@dataclass(frozen=True)
class PolicyPanel:
    row: CoverageRow
    normal: display.Figures
    scenario: display.Figures | None
    chart: display.Chart


def _chart_weeks_asked() -> int | None:
    raw = request.args.get("weeks", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not display.MIN_CHART_WEEKS <= int(raw) <= display.MAX_CHART_WEEKS:
        message = _("weeks must be a whole number from %(low)s to %(high)s.", low=display.MIN_CHART_WEEKS,
                    high=display.MAX_CHART_WEEKS)
        raise InvalidInput(message, fields={"weeks": [message]})
    return int(raw)


def _item_and_organisation(org_code: str, item_code: str) -> tuple[Organisation, Item]:
    organisation = pages.readable_organisation(org_code)
    item = inventory.by_code(db.session, Item, item_code.strip(), field="item")
    return organisation, item


@bp.route("/coverage/<org_code>/<item_code>")
def item(org_code: str, item_code: str) -> Any:
    session = db.session
    organisation, the_item = _item_and_organisation(org_code, item_code)
    today = pages.evaluation_date()
    scenarios = _scenario_choice()
    asked_weeks = _chart_weeks_asked()
    rows = coverage.evaluate(session, [organisation], today=today, item=the_item, scenario=scenarios.name)
    rows.sort(key=lambda r: POOL_ORDER.index(r.pool) if r.pool in POOL_ORDER else 9)

    panels = []
    for row in rows:
        normal_rate = arithmetic.daily_rate(row.baseline.weekly_use) if row.baseline else None
        affected = scenarios.chosen is not None and row.factor != 1
        scenario_rate = row.rate if affected else None
        label = f"{scenarios.name} (×{format_decimal(float(row.factor), format='#,##0.###')})" if affected else None
        weeks = asked_weeks or display.chart_weeks(row, normal_rate)
        panels.append(PolicyPanel(row, display.figures(row, normal_rate),
                                  display.figures(row, scenario_rate) if affected else None,
                                  display.build_chart(row, normal_rate, scenario_rate, label, weeks)))

    # The baseline of an item no policy reaches here is still worth showing (and setting).
    if rows:
        baseline, no_baseline_reason = rows[0].baseline, rows[0].no_baseline_reason
    else:
        found = coverage.item_coverage(session, organisation, [the_item], today=today)[the_item.id]
        baseline, no_baseline_reason = found.baseline, "" if found.baseline else _(
            "No baseline entered and not enough issue history to compute one.")
    balances = sorted(session.scalars(inventory.stock(session, organisation_ids=[organisation.id], item=the_item)),
                      key=lambda b: (b.lot.expiry or dt.date.max, b.lot.lot_number, b.depot.code, b.pool))
    entered = coverage.entered_baselines(session, organisation, the_item)
    lists = coverage.lists_holding(session, organisation, the_item)
    can_write = auth.can_write(current_user, organisation.id)
    form = ManualBaselineForm(formdata=None, data={"valid_from": today}) if can_write else None
    return render_template("coverage/item.html", organisation=organisation, item=the_item, today=today,
                           scenarios=scenarios, panels=panels, baseline=baseline,
                           no_baseline_reason=no_baseline_reason, balances=balances, entered=entered,
                           lists=lists, can_write=can_write, form=form, asked_weeks=asked_weeks,
                           scenario_summary=scenario_summary, args=_query_args())


@bp.route("/coverage/<org_code>/<item_code>/baseline", methods=["GET", "POST"])
def baseline(org_code: str, item_code: str) -> Any:
    """Set normal weekly use by hand (those who may write for the organisation, and admins)."""
    organisation, the_item = _item_and_organisation(org_code, item_code)
    if not auth.can_write(current_user, organisation.id):
        raise Forbidden(_("You may not change baselines for %(code)s: only those who record stock "
                          "for it and administrators may.", code=organisation.code))
    form = (ManualBaselineForm() if request.method == "POST"
            else ManualBaselineForm(data={"valid_from": pages.evaluation_date()}))
    submitted = pages.submit(form, lambda: coverage.set_manual_baseline(
        db.session, _context(), organisation=organisation, item=the_item, weekly_use=form.weekly_use.data,
        valid_from=form.valid_from.data, note=form.note.data))
    if submitted.done:
        flash(_("Normal use of %(item)s at %(organisation)s is now %(weekly)s a week from %(date)s.",
                item=the_item.name, organisation=organisation.name, weekly=display.format_use(form.weekly_use.data),
                date=form.valid_from.data.isoformat()), "success")
        return redirect(url_for("coverage.item", org_code=organisation.code, item_code=the_item.code,
                                **_query_args()))
    entered = coverage.entered_baselines(db.session, organisation, the_item)
    return render_template("coverage/baseline.html", organisation=organisation, item=the_item, form=form,
                           entered=entered, args=_query_args()), submitted.status


def _default_parent(readable: Sequence[Organisation], parents: set[int]) -> Organisation | None:
    coordinated = {m.organisation_id for m in current_user.memberships if m.role == "coordinator"}
    candidates = [o for o in readable if o.id in parents]
    return min(candidates, key=lambda o: (o.id not in coordinated, o.kind != OrganisationKind.REGION, o.name),
               default=None)


@bp.route("/coverage/region")
def region() -> Any:
    session = db.session
    readable = pages.readable_organisations()
    parents = set(session.scalars(sa.select(Organisation.parent_id).where(Organisation.parent_id.is_not(None))
                                  .distinct()))
    code = request.args.get("parent", "").strip()
    parent = pages.readable_organisation(code, "parent") if code else _default_parent(readable, parents)
    today = pages.evaluation_date()
    scenarios = _scenario_choice()
    choices_ = [o for o in readable if o.id in parents]
    if parent is None:
        return render_template("coverage/region.html", parent=None, parent_choices=choices_, today=today,
                               scenarios=scenarios, verdicts=[], matrix=[], columns=[], below_min=[],
                               at_risk=[], below_min_total=0, at_risk_total=0, members=[],
                               scenario_summary=scenario_summary, args=_query_args())
    picture = coverage.region(session, parent, today=today, scenario=scenarios.name)
    return render_template("coverage/region.html", parent=parent, parent_choices=choices_, today=today,
                           scenarios=scenarios, verdicts=picture.verdicts, matrix=picture.matrix,
                           columns=picture.columns, below_min=picture.below_min[:REGION_LIST_LIMIT],
                           below_min_total=len(picture.below_min), at_risk=picture.at_risk[:REGION_LIST_LIMIT],
                           at_risk_total=len(picture.at_risk), members=picture.members,
                           scenario_summary=scenario_summary, args=_query_args())


def _plain(value: Decimal | None) -> Decimal | None:
    """21.0000 as 21 and 91.3125 as it is, for the form (never 1E+2)."""
    return None if value is None else Decimal(f"{value.normalize():f}")


def _policy_form(policy: Policy | None) -> PolicyForm:
    if request.method == "POST":
        form = PolicyForm()
    elif policy is not None:
        form = PolicyForm(data={
            "name": policy.name, "organisation_kind": policy.organisation_kind or "",
            "organisation": policy.organisation.code if policy.organisation else "",
            "category": policy.category or "", "item_list": policy.item_list or "",
            "item": policy.item.code if policy.item else "", "pool": policy.pool,
            "min_days": _plain(policy.min_days), "target_days": _plain(policy.target_days),
            "max_days": _plain(policy.max_days), "active": policy.active})
    else:
        form = PolicyForm()
    form.organisation.choices = pages.organisation_choices("—")
    form.item.choices = pages.item_choices("—")
    return form


def _save_policy(form: PolicyForm, policy: Policy | None) -> Policy:
    session = db.session
    org_code, item_code = (form.organisation.data or "").strip(), (form.item.data or "").strip()
    return coverage.save_policy(
        session, name=form.name.data or "", pool=form.pool.data, min_days=form.min_days.data,
        target_days=form.target_days.data, max_days=form.max_days.data,
        organisation_kind=form.organisation_kind.data or None,
        organisation=inventory.by_code(session, Organisation, org_code, field="organisation") if org_code else None,
        category=form.category.data or None, item_list=(form.item_list.data or "").strip() or None,
        item=inventory.by_code(session, Item, item_code, field="item") if item_code else None,
        active=bool(form.active.data), policy=policy)


def _policies() -> list[Policy]:
    return list(db.session.scalars(sa.select(Policy).options(so.joinedload(Policy.organisation),
                                                             so.joinedload(Policy.item))
                                   .order_by(Policy.active.desc(), Policy.name)))


@bp.route("/admin/policies", methods=["GET", "POST"])
def policies() -> Any:
    auth.require_admin(current_user)
    form = _policy_form(None)
    submitted = pages.submit(form, lambda: _save_policy(form, None))
    if submitted.done:
        flash(_("Policy “%(name)s” created.", name=submitted.result.name), "success")
        return redirect(url_for("coverage.policies"))
    return render_template("coverage/policies.html", policies=_policies(), form=form), submitted.status


@bp.route("/admin/policies/<int:policy_id>", methods=["GET", "POST"])
def policy(policy_id: int) -> Any:
    auth.require_admin(current_user)
    found = pages.get_or_404(Policy, policy_id, _("No policy %(id)s.", id=policy_id))
    form = _policy_form(found)
    submitted = pages.submit(form, lambda: _save_policy(form, found))
    if submitted.done:
        flash(_("Policy “%(name)s” saved.", name=found.name), "success")
        return redirect(url_for("coverage.policies"))
    return render_template("coverage/policy.html", policy=found, form=form), submitted.status


def _scenario_form(scenario: Scenario | None) -> ScenarioForm:
    if request.method == "POST" or scenario is None:
        return ScenarioForm()
    data: dict[str, Any] = {"name": scenario.name, "description": scenario.description}
    lines = []
    for factor in scenario.factors:
        if factor.category:
            data[factor.category] = _plain(factor.factor)
        elif factor.item is not None:
            lines.append(f"{factor.item.code} {format_decimal(factor.factor, format='0.###')}")
    data["item_factors"] = "\n".join(sorted(lines))
    return ScenarioForm(data=data)


def _save_scenario(form: ScenarioForm) -> Scenario:
    factors = {name: getattr(form, name).data for name in ScenarioForm.CATEGORY_FIELDS
               if getattr(form, name).data is not None}
    return coverage.save_scenario(db.session, name=form.name.data or "", description=form.description.data or "",
                                   factors=factors, item_factors=coverage.parse_item_factors(db.session, form.item_factors.data or ""))


def _scenario_page(form: ScenarioForm, scenario: Scenario | None) -> Any:
    submitted = pages.submit(form, lambda: _save_scenario(form))
    if submitted.done:
        flash(_("Scenario “%(name)s” saved: %(factors)s.", name=submitted.result.name,
                factors=scenario_summary(submitted.result)), "success")
        return redirect(url_for("coverage.scenarios"))
    scenarios = list(db.session.scalars(sa.select(Scenario).options(
        so.selectinload(Scenario.factors).joinedload(ScenarioFactor.item)).order_by(Scenario.name)))
    return render_template("coverage/scenarios.html", scenarios=scenarios, form=form, editing=scenario,
                           scenario_summary=scenario_summary), submitted.status


@bp.route("/admin/scenarios", methods=["GET", "POST"])
def scenarios() -> Any:
    auth.require_admin(current_user)
    return _scenario_page(_scenario_form(None), None)


@bp.route("/admin/scenarios/<int:scenario_id>", methods=["GET", "POST"])
def scenario(scenario_id: int) -> Any:
    auth.require_admin(current_user)
    found = pages.get_or_404(Scenario, scenario_id, _("No scenario %(id)s.", id=scenario_id))
    return _scenario_page(_scenario_form(found), found)
