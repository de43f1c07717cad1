"""The duties people are held to: a municipality's 3-month PPE duty and a hospital pharmacy's
critical drug list.

Both pages read coverage through one ``coverage.evaluate`` call for the organisation shown
and check access on every request: readers of the organisation see the page, writers (the
municipality's staff, the pharmacy's pharmacists) and administrators change what it is
measured by. A refused change re-renders the page with the reason; nothing is committed then.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_login import current_user, login_required

from stockpile.auth import services as auth
from stockpile.auth.models import Role
from stockpile.errors import DomainError, Forbidden, InvalidInput, NotFound
from stockpile.extensions import db
from stockpile.coverage import arithmetic
from stockpile.coverage import services as coverage
from stockpile.inventory import services as inventory
from stockpile.coverage.services import CoverageRow, Status
from stockpile.coverage.views import evaluation_date
from stockpile.duty.forms import (AnnualUseForm, CRITICALITY_LABELS, CriticalDrugForm,
                                  CriticalDrugRemoveForm)
from stockpile.forms import DomainForm, PPE_GROUP_LABELS, option
from stockpile.coverage.models import (Baseline, BaselineSource, ItemList, ItemListChange,
                                       ItemListEntry, Policy, PolicyPool)
from stockpile.inventory.models import Category, Item, Organisation, OrganisationKind, PPEGroup
from stockpile.web import posting_context as _context
from stockpile.web import today as _today

bp = Blueprint("duty", __name__)

CRITICAL_DRUG_LIST = "critical-drugs"
CRITICAL_DRUG_LIST_NAME = "Critical drug list"
PPE_GROUPS = [group.value for group in PPEGroup]


# --- the PPE duty, from coverage rows (no Flask, no database) -----------------------------

def requirement(row: CoverageRow) -> int | None:
    """Units the target asks for: ``target_days · r``, rounded up (so shortfall = this − usable)."""
    rate = row.rate
    return None if rate is None else math.ceil(row.target_days * rate)


@dataclass(frozen=True)
class GroupDuty:
    """One of the five PPE groups at one municipality: its items' rows and whether it is met."""

    group: str
    rows: tuple[CoverageRow, ...]

    @property
    def usable(self) -> int:
        return sum(row.usable for row in self.rows)

    @property
    def without_baseline(self) -> list[CoverageRow]:
        return [row for row in self.rows if row.rate is None]

    @property
    def requirement(self) -> int | None:
        """The group's 3-month requirement; unknown while an item has no baseline."""
        if not self.rows or self.without_baseline:
            return None
        return sum(requirement(row) or 0 for row in self.rows)

    @property
    def days(self) -> Fraction | None:
        if not self.rows or self.without_baseline:
            return None
        return arithmetic.coverage_days(self.usable, sum((row.rate for row in self.rows), Fraction(0)))

    @property
    def weeks(self) -> float | None:
        return arithmetic.weeks(self.days)

    @property
    def shortfall(self) -> int:
        """What to order: the items' shortfalls added up (a surplus of one item is not
        counted against another's shortfall, as each item's own target must be met)."""
        return sum(row.shortfall or 0 for row in self.rows)

    @property
    def met(self) -> bool:
        return (self.usable > 0 and not self.without_baseline
                and all(row.status in (Status.OK, Status.OVERSTOCK) for row in self.rows))


@dataclass(frozen=True)
class PpeDuty:
    """The verdict for one municipality on one day: met when each of the five groups is."""

    organisation: Organisation
    evaluated_on: dt.date
    groups: tuple[GroupDuty, ...]
    not_counted: tuple[CoverageRow, ...]  # PPE without a PPE group: outside the duty

    @property
    def met(self) -> bool:
        return all(group.met for group in self.groups)

    @property
    def failing(self) -> list[GroupDuty]:
        return [group for group in self.groups if not group.met]

    @property
    def order_lines(self) -> list[CoverageRow]:
        return [row for group in self.groups for row in group.rows if row.shortfall]


def assess_ppe_duty(organisation: Organisation, rows: Iterable[CoverageRow], evaluated_on: dt.date) -> PpeDuty:
    """Group the organisation's coverage rows (both pools) into the five PPE groups."""
    by_group: dict[str, list[CoverageRow]] = {group: [] for group in PPE_GROUPS}
    not_counted = []
    for row in rows:
        if row.organisation.id != organisation.id or row.pool != PolicyPool.ALL:
            continue
        if row.item.ppe_group in by_group:
            by_group[row.item.ppe_group].append(row)
        elif row.item.category == Category.PPE:
            not_counted.append(row)
    groups = tuple(GroupDuty(group, tuple(sorted(found, key=lambda r: (r.item.name, r.item.code))))
                   for group, found in by_group.items())
    return PpeDuty(organisation, evaluated_on, groups, tuple(not_counted))


def packs(shortfall: int, pack_size: int | None) -> int | None:
    """Whole packs that cover ``shortfall`` units; ``None`` when the pack size is not known."""
    return math.ceil(shortfall / pack_size) if pack_size else None


# --- request helpers ------------------------------------------------------------------------

@bp.before_request
@login_required
def _signed_in() -> None:
    """Every page here needs a signed-in user."""


def _organisation(kind: str, none_readable: str, wrong_kind: str) -> tuple[Organisation, list[Organisation]]:
    """The organisation asked for by ``?organisation=CODE`` (or the user's own of ``kind``),
    and every readable organisation of that kind for the picker. 403 without read access."""
    session = db.session
    readable = auth.readable_organisation_ids(session, current_user)
    stmt = sa.select(Organisation).where(Organisation.kind == kind).order_by(Organisation.name)
    if readable is not None:
        stmt = stmt.where(Organisation.id.in_(readable))
    candidates = list(session.scalars(stmt))
    code = request.args.get("organisation", "").strip()
    if code:
        organisation = inventory.by_code(session, Organisation, code, field="organisation")
        auth.require_read(session, current_user, organisation)
        if organisation.kind != kind:
            raise NotFound(wrong_kind % {"organisation": organisation.name})
        return organisation, candidates
    if not candidates:
        if current_user.is_admin:
            raise NotFound(none_readable)
        raise Forbidden(none_readable)
    own = {m.organisation_id for m in current_user.memberships}
    return next((o for o in candidates if o.id in own), candidates[0]), candidates


def _item_link(organisation: Organisation, item: Item) -> str:
    """The item's coverage page at the organisation (projection, lots, baselines), same day."""
    return url_for("coverage.item", org_code=organisation.code, item_code=item.code,
                   date=request.args.get("date") or None)


def _refused(form: DomainForm, error: DomainError) -> None:
    if isinstance(error, Forbidden):
        raise error
    db.session.rollback()
    if not form.add_domain_error(error):
        form.refusal = error.message


@bp.app_template_filter("duty_number")
def _format_number(value: Fraction | Decimal | float | None, places: int = 1) -> str:
    """A figure with ``places`` decimals and the locale's grouping; a dash when unknown."""
    if value is None:
        return "—"
    pattern = "#,##0" + ("." + "0" * places if places else "")
    return format_decimal(round(float(value), places), format=pattern)


@bp.app_template_filter("duty_days")
def _format_days(value: Fraction | Decimal | float | None) -> str:
    """Days as entered (14, 91.3125), without trailing zeros."""
    if value is None:
        return "—"
    return format_decimal(Decimal(str(round(float(value), 4))).normalize(), format="#,##0.####")


@bp.app_context_processor
def _navigation() -> dict[str, Any]:
    """Which duty pages the navigation offers: by the kinds of organisation the user belongs to
    (coordinators and administrators see both). Access itself is checked by each page."""
    if not current_user.is_authenticated:
        return {}
    memberships = current_user.memberships
    everywhere = current_user.is_admin or any(m.role == Role.COORDINATOR for m in memberships)
    kinds = {m.organisation.kind for m in memberships}
    return {"nav_ppe_duty": everywhere or OrganisationKind.MUNICIPALITY in kinds,
            "nav_critical_drugs": everywhere or OrganisationKind.HOSPITAL_PHARMACY in kinds}


# --- the PPE duty -------------------------------------------------------------------------

def _group_reasons(group: GroupDuty) -> list[str]:
    """Why a PPE group does not meet the duty, in words a municipality can act on."""
    if not group.rows:
        return [_("no stock and no annual use entered")]
    reasons = []
    if group.usable == 0:
        reasons.append(_("no stock"))
    if group.without_baseline:
        reasons.append(_("normal use unknown for %(items)s: enter the annual use",
                         items=", ".join(row.item.name for row in group.without_baseline)))
    if group.shortfall:
        reasons.append(_("%(units)s units short", units=format_decimal(group.shortfall)))
    return reasons


def _municipality() -> tuple[Organisation, list[Organisation]]:
    return _organisation(
        OrganisationKind.MUNICIPALITY,
        _("The PPE duty is kept by municipalities, and you have access to none."),
        _("%(organisation)s is not a municipality; the PPE duty page is for municipalities."))


def _ppe_items() -> list[Item]:
    return list(db.session.scalars(sa.select(Item).where(Item.ppe_group.is_not(None))
                                   .order_by(Item.name, Item.code)))


def _annual_form(organisation: Organisation, years: list[int]) -> AnnualUseForm:
    """The § 8a form, filled from the item's newest annual baseline when ``?item=`` names one."""
    data: dict[str, Any] = {}
    code = request.args.get("item", "").strip()
    if code:
        data["item"] = code
        stored = db.session.scalar(
            sa.select(Baseline).join(Baseline.item)
            .where(Baseline.organisation_id == organisation.id, Item.code == code,
                   Baseline.source == BaselineSource.ANNUAL_3Y.value)
            .order_by(Baseline.valid_from.desc(), Baseline.id.desc()).limit(1))
        if stored is not None:
            for n, year in enumerate(years, start=1):
                data[f"use_{n}"] = (stored.annual_use or {}).get(str(year))
                if n <= 3:
                    data[f"deviating_{n}"] = str(year) in (stored.years_replaced or {})
    return AnnualUseForm(formdata=None, data=data)


@bp.route("/duty/ppe", methods=["GET", "POST"])
def ppe_duty() -> Any:
    session = db.session
    organisation, municipalities = _municipality()
    can_edit = auth.can_write(current_user, organisation.id)
    years_from = _today().year
    status = 200
    if request.method == "POST":
        auth.require_write(current_user, organisation)
        form = AnnualUseForm()
        years = form.set_years(years_from)
        form.item.choices = [option(i.code, i.name) for i in _ppe_items()]
        if form.validate():
            try:
                item = inventory.by_code(session, Item, form.item.data or "", field="item")
                if item.ppe_group is None:
                    message = _("%(item)s is not in one of the five PPE groups.", item=item.name)
                    raise InvalidInput(message, fields={"item": [message]})
                baseline = coverage.set_annual_baseline(
                    session, _context(), organisation=organisation, item=item,
                    annual_use=form.annual_use(years), deviating_years=form.deviating_years(years))
                manual = coverage.stored_baselines(session, [organisation.id], baseline.valid_from,
                                                   [item.id]).get(
                    (organisation.id, item.id, BaselineSource.MANUAL.value))
                session.commit()
            except DomainError as error:
                _refused(form, error)
                status = 422
            else:
                flash(_("Annual use of %(item)s saved: a quarter of the mean of %(years)s.",
                        item=item.name, years=", ".join(str(y) for y in baseline.years_used or [])),
                      "success")
                if manual is not None:
                    flash(_("A weekly use entered by hand (valid from %(date)s) is in force for "
                            "%(item)s and counts instead of the annual use until it is replaced.",
                            date=manual.valid_from.isoformat(), item=item.name), "info")
                return redirect(url_for("duty.ppe_duty", organisation=organisation.code) + "#annual-use")
        else:
            status = 422
    else:
        form = None
    today = evaluation_date()
    duty = assess_ppe_duty(organisation, coverage.evaluate(session, [organisation], today=today,
                                                    pool=PolicyPool.ALL.value), today)
    if form is None and can_edit:
        form = _annual_form(organisation, [years_from - n for n in range(1, 6)])
        form.set_years(years_from)
    if form is not None:
        form.item.choices = [option(i.code, f"{i.name} ({i.code}) · {PPE_GROUP_LABELS[PPEGroup(i.ppe_group)]}")
                             for i in _ppe_items()]
    return render_template(
        "duty/ppe.html", organisation=organisation, municipalities=municipalities, duty=duty,
        today=today, date_given=bool(request.args.get("date")), form=form, can_edit=can_edit,
        requirement=requirement, packs=packs, item_link=_item_link, group_reasons=_group_reasons,
        group_label=lambda group: str(PPE_GROUP_LABELS[PPEGroup(group)])), status


@bp.route("/duty/ppe.csv")
def ppe_order_list() -> Response:
    """The order list: one line per item short of its 3-month requirement."""
    organisation, _candidates = _municipality()
    today = evaluation_date()
    duty = assess_ppe_duty(organisation, coverage.evaluate(db.session, [organisation], today=today,
                                                    pool=PolicyPool.ALL.value), today)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["item_code", "item_name", "ppe_group", "unit", "pack_size", "shortfall_units",
                     "packs_to_order", "evaluated_on"])
    for row in duty.order_lines:
        item = row.item
        to_order = packs(row.shortfall or 0, item.pack_size)
        writer.writerow([item.code, item.name, item.ppe_group, item.unit,
                         item.pack_size if item.pack_size else "", row.shortfall,
                         to_order if to_order is not None else "", today.isoformat()])
    filename = f"ppe-order-list-{organisation.code}-{today.isoformat()}.csv"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# --- the critical drug list ---------------------------------------------------------------

def _pharmacy() -> tuple[Organisation, list[Organisation]]:
    return _organisation(
        OrganisationKind.HOSPITAL_PHARMACY,
        _("The critical drug list is kept by hospital pharmacies, and you have access to none."),
        _("%(organisation)s is not a hospital pharmacy; the critical drug list is kept by "
          "hospital pharmacies."))


def _may_edit_list(organisation: Organisation) -> bool:
    """Administrators, and the pharmacists of this pharmacy."""
    return current_user.is_admin or any(
        m.role == Role.PHARMACIST and m.organisation_id == organisation.id
        for m in current_user.memberships)


def _require_list_editor(organisation: Organisation) -> None:
    if not _may_edit_list(organisation):
        raise Forbidden(_("Only the pharmacists of %(organisation)s may change its critical drug list.",
                          organisation=organisation.name))


def _drug_list(organisation: Organisation) -> ItemList | None:
    """The pharmacy's list with its entries, alternatives and history loaded (None before the
    first drug is added: reading the page creates nothing)."""
    return db.session.scalar(
        sa.select(ItemList).where(ItemList.organisation_id == organisation.id,
                                  ItemList.code == CRITICAL_DRUG_LIST)
        .options(so.selectinload(ItemList.entries).selectinload(ItemListEntry.alternatives),
                 so.selectinload(ItemList.entries).joinedload(ItemListEntry.item),
                 so.selectinload(ItemList.changes).joinedload(ItemListChange.item),
                 so.selectinload(ItemList.changes).joinedload(ItemListChange.recorded_by)))


def _drugs() -> list[Item]:
    return list(db.session.scalars(sa.select(Item).where(Item.category == Category.DRUG.value)
                                   .order_by(Item.name, Item.code)))


def _items_by_code(codes: Sequence[str], field: str) -> list[Item]:
    wanted = [c.strip() for c in codes if c and c.strip()]
    found = {i.code: i for i in db.session.scalars(sa.select(Item).where(Item.code.in_(wanted)))} if wanted else {}
    missing = [c for c in wanted if c not in found]
    if missing:
        message = _("No item with code %(codes)s.", codes=", ".join(missing))
        raise NotFound(message, fields={field: [message]})
    return [found[c] for c in wanted]


def _weekly_from_daily(daily: Decimal) -> Decimal:
    # Baselines hold weekly use to four decimals.
    return (daily * 7).quantize(Decimal("0.0001"))


@dataclass(frozen=True)
class DrugLine:
    entry: ItemListEntry
    row: CoverageRow | None   # None when no policy reaches the drug (e.g. a deactivated policy)
    falls_below_on: dt.date | None

    @property
    def daily_use(self) -> Fraction | None:
        return self.row.baseline.weekly_use / 7 if self.row is not None and self.row.baseline else None


@bp.route("/duty/critical-drugs", methods=["GET", "POST"])
def critical_drugs() -> Any:
    session = db.session
    organisation, pharmacies = _pharmacy()
    can_edit = _may_edit_list(organisation)
    today = evaluation_date()
    status = 200
    form: CriticalDrugForm | None = None
    if request.method == "POST":
        _require_list_editor(organisation)
        form = CriticalDrugForm()
        if form.validate():
            try:
                message = _save_drug(organisation, form)
                session.commit()
            except DomainError as error:
                _refused(form, error)
                status = 422
            else:
                flash(message, "success")
                return redirect(url_for("duty.critical_drugs", organisation=organisation.code))
        else:
            status = 422

    item_list = _drug_list(organisation)
    entries = sorted(item_list.entries if item_list else [], key=lambda e: (e.item.name, e.item.code))
    rows: dict[int, CoverageRow] = {}
    for row in coverage.evaluate(session, [organisation], today=today):
        on_list = row.policy.item_list == CRITICAL_DRUG_LIST
        if row.item.id not in rows or on_list:
            rows[row.item.id] = row
    lines = [DrugLine(e, rows.get(e.item_id),
                      coverage.falls_below_min_on(rows[e.item_id]) if e.item_id in rows else None)
             for e in entries]
    below = [line for line in lines if line.row is not None and line.row.status is Status.BELOW_MIN]
    alternatives = {a.id: a for line in below for a in line.entry.alternatives}
    alternative_coverage = coverage.item_coverage(session, organisation, alternatives.values(), today=today)

    drug_choices = [option(i.code, f"{i.name} ({i.code})" + (f" · {i.atc}" if i.atc else ""))
                    for i in _drugs()]
    if can_edit and form is None:
        form = _drug_form(lines)
    if form is not None:
        form.item.choices = [option("", _("— choose a drug —")), *drug_choices]
        form.alternatives.choices = drug_choices
    removal = CriticalDrugRemoveForm(formdata=None) if can_edit else None
    history = sorted(item_list.changes if item_list else [], key=lambda c: c.id, reverse=True)
    return render_template(
        "duty/critical_drugs.html", organisation=organisation, pharmacies=pharmacies,
        item_list=item_list, lines=lines, alternative_coverage=alternative_coverage,
        default_min_days=_list_default_min_days(organisation), today=today,
        date_given=bool(request.args.get("date")), form=form, removal=removal, can_edit=can_edit,
        history=history, editing=request.args.get("edit", "").strip(), item_link=_item_link,
        criticality_label=lambda v: str(CRITICALITY_LABELS.get(v, v or "")) if v else ""), status


def _list_default_min_days(organisation: Organisation) -> Fraction | None:
    """The minimum of the list's policy for this pharmacy (14 days as seeded): what a drug
    without its own minimum is held to. A policy for the pharmacy itself wins over its kind's."""
    policy = db.session.scalar(
        sa.select(Policy).where(Policy.item_list == CRITICAL_DRUG_LIST, Policy.active,
                                sa.or_(Policy.organisation_id == organisation.id,
                                       Policy.organisation_kind == organisation.kind))
        .order_by(Policy.organisation_id.is_(None), Policy.id).limit(1))
    return arithmetic.exact(policy.min_days) if policy is not None else None


def _plain(value: Decimal) -> Decimal:
    """Without trailing zeros and never in exponent form (10, not 1E+1), as a form shows it."""
    return Decimal(format(value.normalize(), "f"))


def _drug_form(lines: list[DrugLine]) -> CriticalDrugForm:
    """An empty form to add a drug, or the drug's settings when ``?edit=CODE`` names one."""
    code = request.args.get("edit", "").strip()
    line = next((x for x in lines if x.entry.item.code == code), None)
    if line is None:
        return CriticalDrugForm(formdata=None)
    entry = line.entry
    daily = line.daily_use
    return CriticalDrugForm(formdata=None, data={
        "item": entry.item.code,
        "daily_use": _plain(Decimal(str(round(float(daily), 4)))) if daily is not None else None,
        "min_days": _plain(entry.min_days) if entry.min_days is not None else None,
        "criticality": entry.criticality or "", "note": entry.note or "",
        "alternatives": [a.code for a in entry.alternatives]})


def _save_drug(organisation: Organisation, form: CriticalDrugForm) -> str:
    """Add or change the drug's entry and, when given, its daily use; the flash message."""
    session = db.session
    ctx = _context()
    item = inventory.by_code(session, Item, form.item.data or "", field="item")
    if item.category != Category.DRUG:
        message = _("%(item)s is not a drug; the critical drug list holds drugs.", item=item.name)
        raise InvalidInput(message, fields={"item": [message]})
    alternatives = _items_by_code(form.alternatives.data or [], "alternatives")
    not_drugs = [a.name for a in alternatives if a.category != Category.DRUG]
    if not_drugs:
        message = _("Only drugs can substitute: %(items)s is not one.", items=", ".join(not_drugs))
        raise InvalidInput(message, fields={"alternatives": [message]})
    item_list = coverage.item_list_for(session, organisation, CRITICAL_DRUG_LIST,
                                        name=CRITICAL_DRUG_LIST_NAME)
    was_on_list = any(e.item_id == item.id for e in item_list.entries)
    version = item_list.version
    coverage.save_list_entry(session, ctx, item_list=item_list, item=item, min_days=form.min_days.data,
                              criticality=form.criticality.data or None, alternatives=alternatives,
                              note=form.note.data)
    parts = []
    if not was_on_list:
        parts.append(_("%(item)s is on the critical drug list (version %(version)s).",
                       item=item.name, version=item_list.version))
    elif item_list.version != version:
        parts.append(_("%(item)s changed (list version %(version)s).", item=item.name,
                       version=item_list.version))
    if form.daily_use.data is not None:
        weekly = _weekly_from_daily(form.daily_use.data)
        manual = coverage.stored_baselines(session, [organisation.id], ctx.today, [item.id]).get(
            (organisation.id, item.id, BaselineSource.MANUAL.value))
        if manual is None or manual.weekly_use != weekly:
            coverage.set_manual_baseline(session, ctx, organisation=organisation, item=item,
                                          weekly_use=weekly, note=_("Daily use from the critical drug list"))
            parts.append(_("Daily use of %(item)s is %(daily)s from today (%(weekly)s a week).",
                           item=item.name, daily=format_decimal(form.daily_use.data),
                           weekly=format_decimal(_plain(weekly))))
    return " ".join(parts) or _("Nothing changed for %(item)s.", item=item.name)


@bp.route("/duty/critical-drugs/remove", methods=["POST"])
def remove_critical_drug() -> Any:
    session = db.session
    organisation, _candidates = _pharmacy()
    _require_list_editor(organisation)
    form = CriticalDrugRemoveForm()
    if not form.validate():
        raise InvalidInput(_("Say which drug to remove."), fields={"item": [_("Missing.")]})
    item = inventory.by_code(session, Item, form.item.data or "", field="item")
    item_list = _drug_list(organisation)
    if item_list is None:
        raise NotFound(_("%(organisation)s has no critical drug list yet.", organisation=organisation.name))
    try:
        coverage.remove_list_entry(session, _context(), item_list=item_list, item=item)
        session.commit()
    except DomainError:
        session.rollback()
        raise
    flash(_("%(item)s is no longer on the critical drug list (version %(version)s).",
            item=item.name, version=item_list.version), "success")
    return redirect(url_for("duty.critical_drugs", organisation=organisation.code))
