"""Pages for rotating emergency stock (DESIGN.md §5): an organisation's rotation list, carrying a
task out in two clicks, and a timeline per item.

Everyone who may read an organisation sees its rotation; those who record its stock (and
administrators) carry tasks out and get the suggested actions as links to the movement forms,
which check access again when they post.

The pages only read. What they show is the plan as of today, computed on each visit; a lot's
"Move to daily use" button is its open rotation task, which the scheduler's hourly ``rotation``
job keeps in step with the plan (``rotation.sync_tasks``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_login import current_user

from stockpile import pages
from stockpile.auth import services as auth
from stockpile.db import get
from stockpile.errors import Conflict, DomainError, InvalidInput, NotFound
from stockpile.extensions import db
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Item, Organisation, OrganisationKind, Pool
from stockpile.rotation import display
from stockpile.rotation import services as rotation
from stockpile.rotation.forms import CompleteTaskForm, MoveLotForm
from stockpile.rotation.models import OPEN_STATES, RotationTask, TaskState
from stockpile.web import posting_context as _context
from stockpile.web import today as _today

bp = Blueprint("rotation", __name__)
pages.require_sign_in(bp)

DONE_SHOWN = 25     # the Done group lists this many of the most recently completed tasks
DONE_DAYS = 90      # … completed within this many days
PLANNED_SHOWN = 10  # the soonest planned tasks shown; the rest behind "Show the other …"


def _default(orgs: Sequence[Organisation]) -> Organisation | None:
    """The user's own organisation they record stock for first, a supply centre before others."""
    writable = auth.writable_organisation_ids(current_user)
    own = {m.organisation_id for m in current_user.memberships}
    return min(orgs, key=lambda o: (writable is not None and o.id not in writable, o.id not in own,
                                    o.kind != OrganisationKind.SUPPLY_CENTRE, o.name), default=None)


@dataclass(frozen=True)
class Action:
    """A suggested action as the page shows it: what, how much, and the form that does it."""

    suggestion: rotation.Suggestion
    url: str | None      # None when the user may not carry it out
    form: str            # which form the link opens: transfer, issue, extend, disposal


def _action(suggestion: rotation.Suggestion, planned: rotation.PlannedLot, item: Item,
            can_write: bool) -> Action:
    lot, depot = planned.lot, planned.depot
    if suggestion.action == "transfer" and suggestion.organisation is not None:
        target = suggestion.organisation
        to_depot = rotation.receiving_depot(db.session, target) if auth.can_write(current_user, target.id) else None
        if to_depot is not None:
            url = url_for("inventory.transfer", from_depot=depot.code, from_pool=Pool.EMERGENCY.value,
                          to_depot=to_depot.code, to_pool=Pool.OPERATIONAL.value, item=item.code,
                          lot=lot.lot_number, quantity=suggestion.quantity)
            return Action(suggestion, url if can_write else None, "transfer")
        # Stock handed to an organisation one does not record for leaves one's books: an issue
        # to it, from the emergency pool (first expired first, which is this lot: at-risk lots
        # are always the earliest to expire).
        url = url_for("inventory.issue", depot=depot.code, pool=Pool.EMERGENCY.value, item=item.code,
                      quantity=suggestion.quantity, recipient=target.code)
        return Action(suggestion, url if can_write else None, "issue")
    if suggestion.action == "extend_shelf_life":
        url = url_for("inventory.lot_extend", code=item.code, lot_number=lot.lot_number)
        return Action(suggestion, url if can_write else None, "extend")
    url = url_for("inventory.disposal", depot=depot.code, pool=Pool.EMERGENCY.value, item=item.code,
                  lot=lot.lot_number, quantity=suggestion.quantity, reason="expired")
    return Action(suggestion, url if can_write else None, "disposal")


@dataclass(frozen=True)
class AtRisk:
    item_plan: rotation.ItemRotation
    planned: rotation.PlannedLot
    actions: list[Action]


@bp.route("/rotation")
def overview() -> Any:
    orgs = rotation.organisations_with_rotation(db.session, auth.readable_organisation_ids(db.session, current_user))
    code = request.args.get("organisation", "").strip()
    organisation = pages.readable_organisation(code[:40]) if code else _default(orgs)
    today = _today()
    if organisation is None:
        return render_template("rotation/overview.html", organisation=None, orgs=orgs, today=today)
    if organisation not in orgs:
        orgs = sorted([*orgs, organisation], key=lambda o: o.name)
    can_write = auth.can_write(current_user, organisation.id)
    plans = rotation.rotation_plan(db.session, [organisation], today=today)
    groups = rotation.lots_by_state(plans, rotation.open_tasks(db.session, organisation), today)
    at_risk = [AtRisk(item_plan, p, [_action(s, p, item_plan.item, can_write) for s in p.suggestions])
               for item_plan in plans for p in item_plan.lots if p.plan.at_risk]
    done = rotation.done_tasks(db.session, organisation, since=today - dt.timedelta(days=DONE_DAYS), limit=DONE_SHOWN)
    return render_template(
        "rotation/overview.html", organisation=organisation, orgs=orgs, today=today,
        can_write=can_write, overdue=groups[TaskState.OVERDUE.value], due=groups[TaskState.DUE.value],
        planned=groups[TaskState.PLANNED.value], at_risk=at_risk, done=done,
        at_risk_total=sum(a.planned.plan.at_risk for a in at_risk), due_within=rotation.DUE_WITHIN_DAYS,
        done_days=DONE_DAYS, margin_days=rotation.DEFAULT_MARGIN_DAYS, planned_shown=PLANNED_SHOWN)


def _task(task_id: int) -> RotationTask:
    """The task if the user may read its organisation (404 otherwise, as if it did not exist),
    and may record its stock (403)."""
    task = get(db.session, RotationTask, task_id)
    if task is None or not auth.can_read(db.session, current_user, task.organisation_id):
        raise NotFound(_("No rotation task %(id)s.", id=task_id))
    auth.require_write(current_user, task.organisation)
    return task


@bp.route("/rotation/<org_code>/lots/<int:lot_id>/<int:depot_id>/move", methods=["POST"])
def move_lot(org_code: str, lot_id: int, depot_id: int) -> Any:
    """The first click on a lot without a task yet: make its task from today's plan, then show
    what will be posted (the second click confirms)."""
    organisation = pages.readable_organisation(org_code.strip()[:40])
    auth.require_write(current_user, organisation)
    form = MoveLotForm()
    try:
        if not form.validate():
            raise InvalidInput(_("The form has expired; open the rotation page again."))
        task = rotation.open_task_for(db.session, today=_today(), organisation=organisation,
                                      lot_id=lot_id, depot_id=depot_id)
        db.session.commit()
    except Conflict as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for("rotation.overview", organisation=organisation.code))
    return redirect(url_for("rotation.complete", task_id=task.id))


@bp.route("/rotation/tasks/<int:task_id>/complete", methods=["GET", "POST"])
def complete(task_id: int) -> Any:
    """GET shows exactly what will be posted; POST (the Confirm button) posts that and no other
    quantity. A refusal shows the facts and the stock as it is now, to confirm again."""
    task = _task(task_id)
    back = url_for("rotation.overview", organisation=task.organisation.code)
    form = CompleteTaskForm()
    status = 200
    if task.state not in {s.value for s in OPEN_STATES}:
        form.add_domain_error(Conflict(_("This rotation task is %(state)s: there is nothing left to do.",
                                         state=_state_label(task.state))))
        status = 409
    elif request.method == "POST":
        if not form.validate_on_submit():
            status = 422
        else:
            quantity = int(form.quantity.data)
            try:
                rotation.complete_task(db.session, _context(), task=task, quantity=quantity)
                db.session.commit()
            except DomainError as error:
                pages.refused(form, error)
                status = 422 if error.status == 400 else error.status
            else:
                flash(_("Moved %(quantity)s × %(item)s, lot %(lot)s, in %(depot)s from emergency stock into "
                        "daily use (rotation task %(id)s).", quantity=format_decimal(quantity),
                        item=task.item.name, lot=task.lot.lot_number, depot=task.depot.code, id=task.id),
                      "success")
                return redirect(back)
    on_hand = rotation.emergency_on_hand(db.session, task)
    form.quantity.data = str(on_hand)
    if status == 200 and on_hand == 0:
        form.add_domain_error(Conflict(_("No emergency stock of lot %(lot)s is left in %(depot)s: nothing to "
                                         "move.", lot=task.lot.lot_number, depot=task.depot.code)))
        status = 409
    can_confirm = task.state in {s.value for s in OPEN_STATES} and on_hand > 0
    return render_template("rotation/confirm.html", task=task, form=form, on_hand=on_hand, back=back,
                           today=_today(), can_confirm=can_confirm), status


@bp.route("/rotation/<org_code>/<item_code>")
def timeline(org_code: str, item_code: str) -> Any:
    organisation = pages.readable_organisation(org_code.strip()[:40])
    item = inventory.by_code(db.session, Item, item_code.strip()[:40], field="item")
    today = _today()
    plans = rotation.rotation_plan(db.session, [organisation], today=today, item=item)
    item_plan = plans[0] if plans else None
    tasks = rotation.open_tasks(db.session, organisation, item=item)
    can_write = auth.can_write(current_user, organisation.id)
    depots = sorted({p.depot.code for p in item_plan.lots}) if item_plan else []
    return render_template("rotation/timeline.html", organisation=organisation, item=item, today=today,
                           item_plan=item_plan, chart=display.build_timeline(item_plan, today), tasks=tasks,
                           can_write=can_write, depots=depots,
                           margin_days=rotation.DEFAULT_MARGIN_DAYS)


def _state_label(state: str) -> str:
    labels = {"planned": _("planned"), "due": _("due"), "overdue": _("overdue"), "done": _("done"),
              "cancelled": _("cancelled")}
    return labels.get(state, state)


def _relative_days(day: dt.date | None, today: dt.date) -> str:
    if day is None:
        return ""
    days = (day - today).days
    if days == 0:
        return _("today")
    if days < 0:
        return _("%(n)s days ago", n=format_decimal(-days)) if days != -1 else _("yesterday")
    return _("in %(n)s days", n=format_decimal(days)) if days != 1 else _("tomorrow")


def _per_day(rate: Fraction | None) -> str:
    if rate is None:
        return "—"
    return format_decimal(round(float(rate), 1 if rate < 100 else 0), format="#,##0.#")


def _coverage(days: Fraction | None) -> str:
    if days is None:
        return _("coverage unknown")
    return _("%(days)s days of coverage", days=format_decimal(math.floor(days)))


@bp.record_once
def _register_helpers(state: Any) -> None:
    state.app.jinja_env.globals.update(rotation_state_label=_state_label, relative_days=_relative_days,
                                       per_day=_per_day, coverage_days_label=_coverage)
