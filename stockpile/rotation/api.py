"""REST endpoints for rotation (API.md, *Rotation and alerts*): the plan of an organisation's
emergency lots, its rotation tasks, and carrying a task out.

The plan and the tasks are read by those who may read the organisation; a task is carried out
by those who record its stock (and administrators). Reading never writes: tasks are kept in step
with the plan by the scheduler's ``rotation`` job (``rotation.sync_tasks``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from stockpile.api import PREFIX, current_user, load, load_args, paginate, writes
from stockpile.auth import services as auth
from stockpile.db import get
from stockpile.errors import NotFound
from stockpile.extensions import csrf, db
from stockpile.inventory.api import find, readable_organisation
from stockpile.inventory.models import Item
from stockpile.inventory.schemas import MovementOutputSchema
from stockpile.rotation import schemas
from stockpile.rotation import services as rotation
from stockpile.rotation.models import RotationTask
from stockpile.web import posting_context
from stockpile.web import today as local_today

bp = Blueprint("rotation_api", __name__, url_prefix=PREFIX)
# The API is authenticated by bearer tokens, not cookies, so there is no session to forge.
csrf.exempt(bp)

PLAN_LOT = schemas.PlanLotOutputSchema()
TASK = schemas.TaskOutputSchema()
MOVEMENT = MovementOutputSchema()


def plan_rows(plans: list[rotation.ItemRotation], tasks: dict[tuple[int, int], RotationTask],
              today: Any, margin_days: int) -> list[dict[str, Any]]:
    """One row per emergency lot and depot, in the plan's order (worst items first, lots FEFO)."""
    rows = []
    for item_plan in plans:
        for planned in item_plan.lots:
            plan = planned.plan
            task = tasks.get((planned.lot.id, planned.depot.id))
            rows.append({
                "organisation": item_plan.organisation.code, "item": item_plan.item.code,
                "depot": planned.depot.code, "lot_number": planned.lot.lot_number,
                "expiry": planned.lot.expiry, "quantity": planned.quantity,
                "rotate_by": plan.rotate_by, "finish_by": plan.finish_by,
                "state": planned.state(today), "absorbable": plan.absorbable, "at_risk": plan.at_risk,
                "reason": plan.reason, "daily_use": item_plan.daily_use,
                "baseline": item_plan.baseline_note, "margin_days": margin_days,
                "suggestions": list(planned.suggestions), "task": task.id if task else None})
    return rows


@bp.get("/rotation/plan")
def rotation_plan() -> Response:
    args = load_args(schemas.PlanQueryInputSchema())
    session = db.session
    organisation = readable_organisation(args["organisation"])
    item = find(Item, args["item"], "item") if args["item"] else None
    today = local_today()
    plans = rotation.rotation_plan(session, [organisation], today=today, item=item,
                                   margin_days=args["margin_days"])
    rows = plan_rows(plans, rotation.open_tasks(session, organisation), today, args["margin_days"])
    page, per_page = args["page"], args["per_page"]
    shown = rows[(page - 1) * per_page:page * per_page]
    return jsonify({"items": PLAN_LOT.dump(shown, many=True), "page": page, "per_page": per_page,
                    "total": len(rows), "evaluated_on": today.isoformat()})


@bp.get("/rotation/tasks")
def list_tasks() -> Response:
    args = load_args(schemas.TaskQueryInputSchema())
    organisation = readable_organisation(args["organisation"]) if args["organisation"] else None
    readable = auth.readable_organisation_ids(db.session, current_user())
    item = find(Item, args["item"], "item") if args["item"] else None
    return paginate(rotation.visible_tasks(readable, organisation=organisation, item=item,
                                           state=args["state"] or None), TASK)


def _task(task_id: int) -> RotationTask:
    """The task if the user may read its organisation; 404 as if it did not exist otherwise."""
    task = get(db.session, RotationTask, task_id)
    if task is None or not auth.can_read(db.session, current_user(), task.organisation_id):
        raise NotFound(f"No rotation task {task_id}.")
    return task


@bp.get("/rotation/tasks/<int:task_id>")
def get_task(task_id: int) -> Response:
    return jsonify(TASK.dump(_task(task_id)))


@bp.post("/rotation/tasks/<int:task_id>/complete")
@writes
def complete_task(task_id: int) -> tuple[dict[str, Any], int]:
    # The body is optional: an empty one moves all of the lot's emergency stock in the depot.
    data = load(schemas.TaskCompleteInputSchema(), {} if not request.get_data().strip() else None)
    task = _task(task_id)
    auth.require_write(current_user(), task.organisation)
    ctx = posting_context()
    movements = rotation.complete_task(db.session, ctx, task=task, quantity=data["quantity"])
    db.session.expire(task, ["completed_by"])  # set by id in the service; load the user anew
    return {"task": TASK.dump(task), "movements": MOVEMENT.dump(movements, many=True)}, 200
