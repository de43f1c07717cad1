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
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
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
from flask_babel import format_date, format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from stockpile.auth import services as auth
from stockpile.errors import DomainError, Forbidden, InvalidInput, NotFound
from stockpile.extensions import db
from stockpile.coverage import arithmetic
from stockpile.coverage import services as coverage
from stockpile.inventory import services as inventory
from stockpile.coverage.services import (BaselineInForce, CoverageRow, ExpiryAware, LotQuantity,
                                         Status)
from stockpile.coverage.forms import (ManualBaselineForm, POLICY_POOL_LABELS, PolicyForm,
                                      ScenarioForm)
from stockpile.forms import CATEGORY_LABELS, DomainForm, option
from stockpile.coverage.models import (Baseline, BaselineSource, ItemList, ItemListEntry, Policy,
                                       Scenario, ScenarioFactor)
from stockpile.inventory.models import Category, Item, Organisation, OrganisationKind
from stockpile.web import posting_context as _context
from stockpile.web import today as _today

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
# The chart shows at least half a year and at most two years ahead.
MIN_CHART_WEEKS, DEFAULT_CHART_WEEKS, MAX_CHART_WEEKS = 4, 26, 104
# Long lists on the region page are cut here (with the number left out said).
REGION_LIST_LIMIT = 25


@bp.before_request
@login_required
def _signed_in() -> None:
    """Every page here needs a signed-in user."""


# --- formatting for the templates ---------------------------------------------------------------

def _label(table: dict[Any, Any], value: Any) -> str:
    for key, text in table.items():
        if key == value or getattr(key, "value", key) == value:
            return str(text)
    return str(value or "")


def format_weeks(days: Fraction | None) -> str:
    """Days as weeks with one decimal (DESIGN.md §3), or a dash when unknown."""
    weeks = arithmetic.weeks(days)
    return "—" if weeks is None else format_decimal(weeks, format="#,##0.0")


def format_days(days: Fraction | Decimal | float | None, exact: bool = False) -> str:
    """Days with one decimal; ``exact`` keeps up to four (policy figures such as 91.3125)."""
    if days is None:
        return "—"
    return format_decimal(float(days), format="#,##0.####" if exact else "#,##0.0")


def format_use(value: Fraction | Decimal | float | None) -> str:
    """Use per week or day: whole units from 100 up, fewer decimals the larger the figure."""
    if value is None:
        return "—"
    number = float(value)
    pattern = "#,##0" if abs(number) >= 100 else "#,##0.#" if abs(number) >= 10 else "#,##0.##"
    return format_decimal(number, format=pattern)


@bp.record_once
def _register_template_helpers(state: Any) -> None:
    env = state.app.jinja_env
    env.filters.update(cov_weeks=format_weeks, cov_days=format_days, cov_use=format_use)
    env.globals.update(
        coverage_status_label=lambda v: _label(STATUS_LABELS, v),
        baseline_source_label=lambda v: _label(SOURCE_LABELS, v),
        stock_label=lambda v: _label(STOCK_LABELS, v),
        policy_pool_label=lambda v: _label(POLICY_POOL_LABELS, v))


# --- shared helpers ------------------------------------------------------------------------------

def evaluation_date() -> dt.date:
    """``?date=YYYY-MM-DD``, else today in the site's time zone (the duty pages use it too)."""
    raw = request.args.get("date", "").strip()
    if not raw:
        return _today()
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        message = _("“%(value)s” is not a date: write it as YYYY-MM-DD, e.g. %(example)s.",
                    value=raw[:40], example=_today().isoformat())
        raise InvalidInput(message, fields={"date": [message]}) from None


def _readable_organisations() -> list[Organisation]:
    ids = auth.readable_organisation_ids(db.session, current_user)
    stmt = sa.select(Organisation).order_by(Organisation.name)
    if ids is not None:
        if not ids:
            return []
        stmt = stmt.where(Organisation.id.in_(ids))
    return list(db.session.scalars(stmt))


def _readable_organisation(code: str, field_name: str = "organisation") -> Organisation:
    org = inventory.by_code(db.session, Organisation, code.strip(), field=field_name)
    auth.require_read(db.session, current_user, org)
    return org


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
        scope = _label(CATEGORY_LABELS, factor.category) if factor.category else (factor.item.code if factor.item else "")
        parts.append(f"{scope} ×{format_decimal(factor.factor, format='#,##0.###')}")
    return ", ".join(parts)


def _query_args(**changes: Any) -> dict[str, Any]:
    """The current page's filters (date, scenario, …) with ``changes``, for links."""
    kept = {k: v for k, v in request.args.items() if k in ("date", "scenario", "category", "list", "weeks")}
    kept.update(changes)
    return {k: v for k, v in kept.items() if v not in (None, "")}


def _refused(form: DomainForm, error: DomainError) -> None:
    if isinstance(error, Forbidden):
        raise error
    db.session.rollback()
    form.add_domain_error(error)


def _items_choices(blank: str) -> list[Any]:
    items = db.session.scalars(sa.select(Item).order_by(Item.name))
    return [option("", blank), *(option(i.code, f"{i.name} ({i.code})") for i in items)]


def _organisation_choices(blank: str) -> list[Any]:
    orgs = db.session.scalars(sa.select(Organisation).order_by(Organisation.name))
    return [option("", blank), *(option(o.code, f"{o.name} ({o.code})") for o in orgs)]


# --- landing -------------------------------------------------------------------------------------

# --- the organisation's coverage (supply centre first) --------------------------------------------

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
    orgs = _readable_organisations()
    code = request.args.get("organisation", "").strip()
    organisation = _readable_organisation(code) if code else _default_organisation(orgs)
    today = evaluation_date()
    scenarios = _scenario_choice()
    if organisation is None:
        return render_template("coverage/overview.html", organisation=None, orgs=orgs, today=today,
                               scenarios=scenarios, lines=[], pools=[], totals=[], lists=[],
                               category="", list_code="", categories=CATEGORY_LABELS,
                               scenario_summary=scenario_summary, args=_query_args())
    rows = coverage.evaluate(session, [organisation], today=today, scenario=scenarios.name)

    lists = list(session.scalars(sa.select(ItemList).where(ItemList.organisation_id == organisation.id)
                                 .options(so.selectinload(ItemList.entries)).order_by(ItemList.name)))
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


# --- one item at one organisation: numbers per policy, baseline, lots, projection ----------------

@dataclass(frozen=True)
class Figures:
    """The numbers of DESIGN.md §3 for one row at one daily rate."""

    rate: Fraction | None
    days: Fraction | None
    expiry: ExpiryAware | None
    status: Status
    shortfall: int | None


def figures(row: CoverageRow, rate: Fraction | None) -> Figures:
    days = arithmetic.coverage_days(row.usable, rate)
    return Figures(rate, days, arithmetic.expiry_aware(row.lots, rate, row.evaluated_on),
                   arithmetic.status(days, row.min_days, row.target_days, row.max_days),
                   arithmetic.shortfall(row.usable, rate, row.target_days))


@dataclass(frozen=True)
class Drop:
    """Stock lost at the start of ``day`` because lots expired at the end of the day before."""

    day: int
    expired_on: dt.date
    lost: Fraction
    before: Fraction
    after: Fraction


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    rate: Fraction | None
    starts: list[Fraction]  # usable stock at the start of each day, day 0 = the evaluation date
    vertices: list[tuple[Fraction, Fraction]]  # (day, units): use within a day, drops at its start
    drops: list[Drop]
    runs_out: dt.date | None
    below_min: dt.date | None

    @property
    def lost(self) -> int:
        return math.floor(sum((d.lost for d in self.drops), Fraction(0)) + Fraction(1, 2))


def projected_series(key: str, label: str, lots: Sequence[LotQuantity], rate: Fraction | None,
                     today: dt.date, days: int, min_units: Fraction | None) -> Series:
    """The projection of ``arithmetic.projection`` as a path: stock falls by ``rate`` through each
    day and drops straight down at the start of a day where lots expired the day before."""
    points = arithmetic.projection(lots, rate, today, days)
    starts = [stock for _day, stock in points]
    use = rate or Fraction(0)
    vertices: list[tuple[Fraction, Fraction]] = [(Fraction(0), starts[0])]
    drops: list[Drop] = []
    runs_out = below_min = None
    for k in range(1, len(starts)):
        end_of_previous = starts[k - 1] - min(use, starts[k - 1])
        vertices.append((Fraction(k), end_of_previous))
        if starts[k] < end_of_previous:
            drops.append(Drop(k, today + dt.timedelta(days=k - 1), end_of_previous - starts[k],
                              end_of_previous, starts[k]))
            vertices.append((Fraction(k), starts[k]))
    for k, stock in enumerate(starts):
        if below_min is None and min_units is not None and stock < min_units:
            below_min = today + dt.timedelta(days=k)
        if runs_out is None and stock == 0:
            runs_out = today + dt.timedelta(days=k)
    return Series(key, label, rate, starts, _without_collinear(vertices), drops, runs_out, below_min)


def _without_collinear(vertices: list[tuple[Fraction, Fraction]]) -> list[tuple[Fraction, Fraction]]:
    """Drop the points in the middle of straight stretches (exact arithmetic: no tolerance)."""
    kept: list[tuple[Fraction, Fraction]] = []
    for point in vertices:
        while len(kept) >= 2:
            (ax, ay), (bx, by) = kept[-2], kept[-1]
            if (bx - ax) * (point[1] - by) != (by - ay) * (point[0] - bx):
                break
            kept.pop()
        if not kept or kept[-1] != point:
            kept.append(point)
    return kept


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * magnitude:
            return multiple * magnitude
    return 10 * magnitude


@dataclass(frozen=True)
class Chart:
    """A line chart of projected usable stock, in SVG user units (the template draws it)."""

    days: int
    today: dt.date
    series: list[Series]
    lines: list[tuple[str, str, Fraction]]  # (key, label, units): minimum and target
    y_max: float
    y_step: float
    width: int = 960
    height: int = 330
    left: int = 70
    right: int = 16
    top: int = 14
    bottom: int = 34

    def x(self, day: float | Fraction) -> float:
        return round(self.left + float(day) / self.days * (self.width - self.left - self.right), 2)

    def y(self, units: float | Fraction) -> float:
        return round(self.top + (1 - float(units) / self.y_max) * (self.height - self.top - self.bottom), 2)

    def path(self, series: Series) -> str:
        return " ".join(f"{self.x(d)},{self.y(u)}" for d, u in series.vertices)

    @property
    def y_ticks(self) -> list[tuple[float, str]]:
        count = round(self.y_max / self.y_step)
        return [(self.y(i * self.y_step), format_decimal(i * self.y_step, format="#,##0.##"))
                for i in range(count + 1)]

    @property
    def x_ticks(self) -> list[tuple[float, str, bool]]:
        """Weekly grid lines; every few weeks labelled with the date: (x, label, labelled)."""
        weeks = self.days // 7
        every = 2 if weeks <= 16 else 4 if weeks <= 32 else 8 if weeks <= 64 else 13
        pattern = "d MMM" if weeks <= 32 else "MMM yyyy"
        return [(self.x(w * 7), format_date(self.today + dt.timedelta(weeks=w), pattern), w % every == 0)
                for w in range(weeks + 1)]

    @property
    def end(self) -> dt.date:
        return self.today + dt.timedelta(days=self.days)

    @property
    def weekly(self) -> list[tuple[int, dt.date, list[Fraction]]]:
        """Stock at the start of each week per series, for the table under the chart."""
        return [(w, self.today + dt.timedelta(weeks=w), [s.starts[w * 7] for s in self.series])
                for w in range(self.days // 7 + 1)]


def chart_weeks(row: CoverageRow, rate: Fraction | None) -> int:
    """26 weeks, or as long as the stock lasts at normal use (expiry counted), up to 104."""
    if rate is not None:
        lasts = arithmetic.expiry_aware(row.lots, rate, row.evaluated_on)
        end = float(lasts.days) if lasts else 0.0
    else:  # no use to measure by: show until the last lot with an expiry is gone
        end = max(((lot.expiry - row.evaluated_on).days + 1 for lot in row.lots if lot.expiry), default=0)
    return max(DEFAULT_CHART_WEEKS, min(MAX_CHART_WEEKS, math.ceil((end + 14) / 7)))


def build_chart(row: CoverageRow, normal_rate: Fraction | None, scenario_rate: Fraction | None,
                scenario_label: str | None, weeks: int) -> Chart:
    days = weeks * 7
    today = row.evaluated_on
    min_units = row.min_days * normal_rate if normal_rate is not None else None
    series = [projected_series("normal", _("Normal use"), row.lots, normal_rate, today, days, min_units)]
    if scenario_rate is not None and scenario_label:
        # Under a scenario the minimum counts days of the scenario's use, as its status does.
        series.append(projected_series("scenario", scenario_label, row.lots, scenario_rate, today, days,
                                       row.min_days * scenario_rate))
    lines: list[tuple[str, str, Fraction]] = []
    if normal_rate is not None:
        lines.append(("min", _("Minimum: %(days)s days of normal use", days=format_days(row.min_days, True)),
                      row.min_days * normal_rate))
        if row.target_days != row.min_days:
            lines.append(("target", _("Target: %(days)s days", days=format_days(row.target_days, True)),
                          row.target_days * normal_rate))
    highest = max([float(s.starts[0]) for s in series] + [float(units) for _k, _l, units in lines] + [1.0])
    step = _nice_step(highest * 1.08 / 5)
    return Chart(days, today, series, lines, y_max=math.ceil(highest * 1.08 / step) * step, y_step=step)


@dataclass(frozen=True)
class PolicyPanel:
    row: CoverageRow
    normal: Figures
    scenario: Figures | None
    chart: Chart


def _chart_weeks_asked() -> int | None:
    raw = request.args.get("weeks", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not MIN_CHART_WEEKS <= int(raw) <= MAX_CHART_WEEKS:
        message = _("weeks must be a whole number from %(low)s to %(high)s.", low=MIN_CHART_WEEKS,
                    high=MAX_CHART_WEEKS)
        raise InvalidInput(message, fields={"weeks": [message]})
    return int(raw)


def _item_and_organisation(org_code: str, item_code: str) -> tuple[Organisation, Item]:
    organisation = _readable_organisation(org_code)
    item = inventory.by_code(db.session, Item, item_code.strip(), field="item")
    return organisation, item


@bp.route("/coverage/<org_code>/<item_code>")
def item(org_code: str, item_code: str) -> Any:
    session = db.session
    organisation, the_item = _item_and_organisation(org_code, item_code)
    today = evaluation_date()
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
        weeks = asked_weeks or chart_weeks(row, normal_rate)
        panels.append(PolicyPanel(row, figures(row, normal_rate),
                                  figures(row, scenario_rate) if affected else None,
                                  build_chart(row, normal_rate, scenario_rate, label, weeks)))

    # The baseline of an item no policy reaches here is still worth showing (and setting).
    if rows:
        baseline, no_baseline_reason = rows[0].baseline, rows[0].no_baseline_reason
    else:
        found = coverage.item_coverage(session, organisation, [the_item], today=today)[the_item.id]
        baseline, no_baseline_reason = found.baseline, "" if found.baseline else _(
            "No baseline entered and not enough issue history to compute one.")
    balances = sorted(session.scalars(inventory.stock(session, organisation_ids=[organisation.id], item=the_item)),
                      key=lambda b: (b.lot.expiry or dt.date.max, b.lot.lot_number, b.depot.code, b.pool))
    entered = list(session.scalars(
        sa.select(Baseline).where(Baseline.organisation_id == organisation.id, Baseline.item_id == the_item.id)
        .options(so.joinedload(Baseline.recorded_by)).order_by(Baseline.valid_from.desc(), Baseline.id.desc())))
    lists = list(session.scalars(
        sa.select(ItemList).join(ItemList.entries)
        .where(ItemList.organisation_id == organisation.id, ItemListEntry.item_id == the_item.id)
        .order_by(ItemList.name)))
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
            else ManualBaselineForm(data={"valid_from": evaluation_date()}))
    status = 200
    if form.validate_on_submit():
        try:
            coverage.set_manual_baseline(db.session, _context(), organisation=organisation, item=the_item,
                                          weekly_use=form.weekly_use.data, valid_from=form.valid_from.data,
                                          note=form.note.data)
            db.session.commit()
        except DomainError as error:
            _refused(form, error)
            status = 422
        else:
            flash(_("Normal use of %(item)s at %(organisation)s is now %(weekly)s a week from %(date)s.",
                    item=the_item.name, organisation=organisation.name, weekly=format_use(form.weekly_use.data),
                    date=form.valid_from.data.isoformat()), "success")
            return redirect(url_for("coverage.item", org_code=organisation.code, item_code=the_item.code,
                                    **_query_args()))
    elif request.method == "POST":
        status = 422
    entered = list(db.session.scalars(
        sa.select(Baseline).where(Baseline.organisation_id == organisation.id, Baseline.item_id == the_item.id)
        .options(so.joinedload(Baseline.recorded_by)).order_by(Baseline.valid_from.desc(), Baseline.id.desc())))
    return render_template("coverage/baseline.html", organisation=organisation, item=the_item, form=form,
                           entered=entered, args=_query_args()), status


# --- the coordinator's region ----------------------------------------------------------------------

@dataclass(frozen=True)
class PolicyVerdict:
    """How many of the members a policy applies to meet it."""

    policy: Policy
    applicable: list[Organisation]
    meeting: int
    below_min: int
    at_risk: int

    @property
    def kinds(self) -> str:
        kinds = {o.kind for o in self.applicable}
        if len(kinds) == 1:
            return _label(KIND_PLURALS, kinds.pop())
        return _("organisations")


def _default_parent(readable: Sequence[Organisation], parents: set[int]) -> Organisation | None:
    coordinated = {m.organisation_id for m in current_user.memberships if m.role == "coordinator"}
    candidates = [o for o in readable if o.id in parents]
    return min(candidates, key=lambda o: (o.id not in coordinated, o.kind != OrganisationKind.REGION, o.name),
               default=None)


@bp.route("/coverage/region")
def region() -> Any:
    session = db.session
    readable = _readable_organisations()
    parents = set(session.scalars(sa.select(Organisation.parent_id).where(Organisation.parent_id.is_not(None))
                                  .distinct()))
    code = request.args.get("parent", "").strip()
    parent = _readable_organisation(code, "parent") if code else _default_parent(readable, parents)
    today = evaluation_date()
    scenarios = _scenario_choice()
    choices_ = [o for o in readable if o.id in parents]
    if parent is None:
        return render_template("coverage/region.html", parent=None, parent_choices=choices_, today=today,
                               scenarios=scenarios, verdicts=[], matrix=[], columns=[], below_min=[],
                               at_risk=[], below_min_total=0, at_risk_total=0, members=[],
                               scenario_summary=scenario_summary, args=_query_args())
    members = coverage.members_of(session, parent)
    rows = coverage.evaluate(session, members, today=today, scenario=scenarios.name)
    summaries = {(s.organisation.id, s.policy.id): s for s in coverage.summarise(rows)}
    policies = list(session.scalars(sa.select(Policy).where(Policy.active).order_by(Policy.name)))

    verdicts = []
    for policy in policies:
        applicable = [m for m in members if policy.applies_to(m)]
        if not applicable:
            continue
        found = [summaries.get((m.id, policy.id)) for m in applicable]
        verdicts.append(PolicyVerdict(policy, applicable, sum(1 for s in found if s and s.meets_target),
                                      sum(1 for s in found if s and s.below_min),
                                      sum(s.at_risk for s in found if s)))
    columns = [v.policy for v in verdicts]
    matrix = []
    for member in members:
        cells = [(policy, summaries.get((member.id, policy.id)), policy.applies_to(member)) for policy in columns]
        if any(applies for _p, _s, applies in cells):
            matrix.append((member, cells, sum(s.at_risk for _p, s, _a in cells if s)))
    worst = sorted((r for r in rows if r.status is Status.BELOW_MIN),
                   key=lambda r: (float(r.days / r.min_days) if r.days is not None and r.min_days else 0,
                                  r.organisation.name, r.item.name))
    risky = sorted((r for r in rows if r.expiry is not None and r.expiry.at_risk_units > 0),
                   key=lambda r: (-r.expiry.at_risk_units, r.organisation.name, r.item.name))
    return render_template("coverage/region.html", parent=parent, parent_choices=choices_, today=today,
                           scenarios=scenarios, verdicts=verdicts, matrix=matrix, columns=columns,
                           below_min=worst[:REGION_LIST_LIMIT], below_min_total=len(worst),
                           at_risk=risky[:REGION_LIST_LIMIT], at_risk_total=len(risky), members=members,
                           scenario_summary=scenario_summary, args=_query_args())


# --- administration: policies and scenarios --------------------------------------------------------

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
    form.organisation.choices = _organisation_choices("—")
    form.item.choices = _items_choices("—")
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
    status = 200
    if form.validate_on_submit():
        try:
            saved = _save_policy(form, None)
            db.session.commit()
        except DomainError as error:
            _refused(form, error)
            status = 422
        else:
            flash(_("Policy “%(name)s” created.", name=saved.name), "success")
            return redirect(url_for("coverage.policies"))
    elif request.method == "POST":
        status = 422
    return render_template("coverage/policies.html", policies=_policies(), form=form), status


@bp.route("/admin/policies/<int:policy_id>", methods=["GET", "POST"])
def policy(policy_id: int) -> Any:
    auth.require_admin(current_user)
    found = db.session.get(Policy, policy_id) if policy_id < 2**31 else None
    if found is None:
        raise NotFound(_("No policy %(id)s.", id=policy_id))
    form = _policy_form(found)
    status = 200
    if form.validate_on_submit():
        try:
            _save_policy(form, found)
            db.session.commit()
        except DomainError as error:
            _refused(form, error)
            status = 422
        else:
            flash(_("Policy “%(name)s” saved.", name=found.name), "success")
            return redirect(url_for("coverage.policies"))
    elif request.method == "POST":
        status = 422
    return render_template("coverage/policy.html", policy=found, form=form), status


def _parse_item_factors(text: str) -> dict[Item, Decimal]:
    """``CODE factor`` a line (``=`` or ``:`` between them allowed); errors name the line."""
    wanted: list[tuple[int, str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.replace("=", " ").replace(":", " ").strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            message = _("Line %(n)s: write an item code and a factor, e.g. PPE-FFP3 6.", n=number)
            raise InvalidInput(message, fields={"item_factors": [message]})
        wanted.append((number, parts[0], parts[1]))
    codes = {code for _n, code, _f in wanted}
    items = {i.code: i for i in db.session.scalars(sa.select(Item).where(Item.code.in_(codes)))} if codes else {}
    result: dict[Item, Decimal] = {}
    for number, code, factor in wanted:
        if code not in items:
            message = _("Line %(n)s: no item with code %(code)s.", n=number, code=code)
            raise InvalidInput(message, fields={"item_factors": [message]})
        try:
            value = Decimal(factor.replace(",", "."))
        except InvalidOperation:
            value = Decimal(-1)
        if not value.is_finite() or value <= 0:
            message = _("Line %(n)s: the factor for %(code)s must be a number above zero.", n=number, code=code)
            raise InvalidInput(message, fields={"item_factors": [message]})
        result[items[code]] = value
    return result


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
                                   factors=factors, item_factors=_parse_item_factors(form.item_factors.data or ""))


def _scenario_page(form: ScenarioForm, scenario: Scenario | None) -> Any:
    status = 200
    if form.validate_on_submit():
        try:
            saved = _save_scenario(form)
            db.session.commit()
        except DomainError as error:
            _refused(form, error)
            if "factors" in error.fields:
                form.ppe.errors = [*form.ppe.errors, *error.fields["factors"]]
            status = 422
        else:
            flash(_("Scenario “%(name)s” saved: %(factors)s.", name=saved.name,
                    factors=scenario_summary(saved)), "success")
            return redirect(url_for("coverage.scenarios"))
    elif request.method == "POST":
        status = 422
    scenarios = list(db.session.scalars(sa.select(Scenario).options(
        so.selectinload(Scenario.factors).joinedload(ScenarioFactor.item)).order_by(Scenario.name)))
    return render_template("coverage/scenarios.html", scenarios=scenarios, form=form, editing=scenario,
                           scenario_summary=scenario_summary), status


@bp.route("/admin/scenarios", methods=["GET", "POST"])
def scenarios() -> Any:
    auth.require_admin(current_user)
    return _scenario_page(_scenario_form(None), None)


@bp.route("/admin/scenarios/<int:scenario_id>", methods=["GET", "POST"])
def scenario(scenario_id: int) -> Any:
    auth.require_admin(current_user)
    found = db.session.get(Scenario, scenario_id) if scenario_id < 2**31 else None
    if found is None:
        raise NotFound(_("No scenario %(id)s.", id=scenario_id))
    return _scenario_page(_scenario_form(found), found)
