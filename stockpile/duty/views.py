"""The pages of the duties: a municipality's 3-month PPE duty and a hospital pharmacy's critical
drug list (the numbers are ``stockpile.duty.services``).

Access is checked on every request: readers of the organisation see the page, writers (the
municipality's staff, the pharmacy's pharmacists) and administrators change what it is
measured by. A refused change re-renders the page with the reason; nothing is committed then.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_login import current_user

from stockpile import pages
from stockpile.auth import services as auth
from stockpile.auth.models import Role
from stockpile.duty import services as duty
from stockpile.duty.forms import CRITICALITY_LABELS, AnnualUseForm, CriticalDrugForm, CriticalDrugRemoveForm
from stockpile.errors import DomainError, Forbidden, InvalidInput, NotFound
from stockpile.extensions import db
from stockpile.forms import PPE_GROUP_LABELS, option
from stockpile.inventory.models import Item, Organisation, OrganisationKind, PPEGroup
from stockpile.web import posting_context as _context
from stockpile.web import today as _today

bp = Blueprint("duty", __name__)
pages.require_sign_in(bp)


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
        organisation = pages.readable_organisation(code)
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


def _group_reasons(group: duty.GroupDuty) -> list[str]:
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


def _annual_form(organisation: Organisation, years: list[int]) -> AnnualUseForm:
    """The § 8a form, filled from the item's newest annual baseline when ``?item=`` names one."""
    data: dict[str, Any] = {}
    code = request.args.get("item", "").strip()
    if code:
        data["item"] = code
        stored = duty.newest_annual_baseline(db.session, organisation, code)
        if stored is not None:
            for n, year in enumerate(years, start=1):
                data[f"use_{n}"] = (stored.annual_use or {}).get(str(year))
                if n <= 3:
                    data[f"deviating_{n}"] = str(year) in (stored.years_replaced or {})
    return AnnualUseForm(formdata=None, data=data)


@bp.route("/duty/ppe", methods=["GET", "POST"])
def ppe_duty() -> Any:
    organisation, municipalities = _municipality()
    can_edit = auth.can_write(current_user, organisation.id)
    years_from = _today().year
    form: AnnualUseForm | None = None
    status = 200
    if request.method == "POST":
        auth.require_write(current_user, organisation)
        form = AnnualUseForm()
        years = form.set_years(years_from)
        form.item.choices = [option(i.code, i.name) for i in duty.ppe_items(db.session)]
        submitted = pages.submit(form, lambda: duty.save_annual_use(
            db.session, _context(), organisation=organisation, item_code=form.item.data or "",
            annual_use=form.annual_use(years), deviating_years=form.deviating_years(years)))
        if submitted.done:
            saved = submitted.result
            flash(_("Annual use of %(item)s saved: a quarter of the mean of %(years)s.", item=saved.item.name,
                    years=", ".join(str(y) for y in saved.baseline.years_used or [])), "success")
            if saved.manual_in_force is not None:
                flash(_("A weekly use entered by hand (valid from %(date)s) is in force for "
                        "%(item)s and counts instead of the annual use until it is replaced.",
                        date=saved.manual_in_force.valid_from.isoformat(), item=saved.item.name), "info")
            return redirect(url_for("duty.ppe_duty", organisation=organisation.code) + "#annual-use")
        status = submitted.status
    today = pages.evaluation_date()
    verdict = duty.ppe_duty(db.session, organisation, today)
    if form is None and can_edit:
        form = _annual_form(organisation, [years_from - n for n in range(1, 6)])
        form.set_years(years_from)
    if form is not None:
        form.item.choices = [option(i.code, f"{i.name} ({i.code}) · {PPE_GROUP_LABELS[PPEGroup(i.ppe_group)]}")
                             for i in duty.ppe_items(db.session)]
    return render_template(
        "duty/ppe.html", organisation=organisation, municipalities=municipalities, duty=verdict,
        today=today, date_given=bool(request.args.get("date")), form=form, can_edit=can_edit,
        requirement=duty.requirement, packs=duty.packs, item_link=_item_link, group_reasons=_group_reasons,
        group_label=lambda group: str(PPE_GROUP_LABELS[PPEGroup(group)])), status


@bp.route("/duty/ppe.csv")
def ppe_order_list() -> Response:
    """The order list: one line per item short of its 3-month requirement."""
    organisation, _candidates = _municipality()
    today = pages.evaluation_date()
    verdict = duty.ppe_duty(db.session, organisation, today)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["item_code", "item_name", "ppe_group", "unit", "pack_size", "shortfall_units",
                     "packs_to_order", "evaluated_on"])
    for row in verdict.order_lines:
        item = row.item
        to_order = duty.packs(row.shortfall or 0, item.pack_size)
        writer.writerow([item.code, item.name, item.ppe_group, item.unit,
                         item.pack_size if item.pack_size else "", row.shortfall,
                         to_order if to_order is not None else "", today.isoformat()])
    filename = f"ppe-order-list-{organisation.code}-{today.isoformat()}.csv"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


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


def _plain(value: Decimal) -> Decimal:
    """Without trailing zeros and never in exponent form (10, not 1E+1), as a form shows it."""
    return Decimal(format(value.normalize(), "f"))


def _drug_form(lines: list[duty.DrugLine]) -> CriticalDrugForm:
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


def _saved_message(saved: duty.DrugSaved, daily_use: Decimal | None) -> str:
    parts = []
    if saved.added:
        parts.append(_("%(item)s is on the critical drug list (version %(version)s).",
                       item=saved.item.name, version=saved.version))
    elif saved.list_changed:
        parts.append(_("%(item)s changed (list version %(version)s).", item=saved.item.name,
                       version=saved.version))
    if saved.weekly_use is not None and daily_use is not None:
        parts.append(_("Daily use of %(item)s is %(daily)s from today (%(weekly)s a week).",
                       item=saved.item.name, daily=format_decimal(daily_use),
                       weekly=format_decimal(_plain(saved.weekly_use))))
    return " ".join(parts) or _("Nothing changed for %(item)s.", item=saved.item.name)


@bp.route("/duty/critical-drugs", methods=["GET", "POST"])
def critical_drugs() -> Any:
    organisation, pharmacies = _pharmacy()
    can_edit = _may_edit_list(organisation)
    today = pages.evaluation_date()
    form: CriticalDrugForm | None = None
    status = 200
    if request.method == "POST":
        _require_list_editor(organisation)
        form = CriticalDrugForm()
        submitted = pages.submit(form, lambda: duty.save_drug(
            db.session, _context(), organisation=organisation, item_code=form.item.data or "",
            daily_use=form.daily_use.data, min_days=form.min_days.data, criticality=form.criticality.data,
            alternative_codes=form.alternatives.data or [], note=form.note.data))
        if submitted.done:
            flash(_saved_message(submitted.result, form.daily_use.data), "success")
            return redirect(url_for("duty.critical_drugs", organisation=organisation.code))
        status = submitted.status
    the_list = duty.critical_drugs(db.session, organisation, today)
    drug_choices = [option(i.code, f"{i.name} ({i.code})" + (f" · {i.atc}" if i.atc else ""))
                    for i in duty.drugs(db.session)]
    if can_edit and form is None:
        form = _drug_form(the_list.lines)
    if form is not None:
        form.item.choices = [option("", _("— choose a drug —")), *drug_choices]
        form.alternatives.choices = drug_choices
    return render_template(
        "duty/critical_drugs.html", organisation=organisation, pharmacies=pharmacies,
        item_list=the_list.item_list, lines=the_list.lines, alternative_coverage=the_list.alternative_coverage,
        default_min_days=the_list.default_min_days, today=today, date_given=bool(request.args.get("date")),
        form=form, removal=CriticalDrugRemoveForm(formdata=None) if can_edit else None, can_edit=can_edit,
        history=the_list.history, editing=request.args.get("edit", "").strip(), item_link=_item_link,
        criticality_label=lambda v: str(CRITICALITY_LABELS.get(v, v or "")) if v else ""), status


@bp.route("/duty/critical-drugs/remove", methods=["POST"])
def remove_critical_drug() -> Any:
    organisation, _candidates = _pharmacy()
    _require_list_editor(organisation)
    form = CriticalDrugRemoveForm()
    if not form.validate():
        raise InvalidInput(_("Say which drug to remove."), fields={"item": [_("Missing.")]})
    try:
        item, version = duty.remove_drug(db.session, _context(), organisation=organisation,
                                         item_code=form.item.data or "")
        db.session.commit()
    except DomainError:
        db.session.rollback()
        raise
    flash(_("%(item)s is no longer on the critical drug list (version %(version)s).",
            item=item.name, version=version), "success")
    return redirect(url_for("duty.critical_drugs", organisation=organisation.code))
