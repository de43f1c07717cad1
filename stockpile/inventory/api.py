"""REST endpoints for master data and stock movements (API.md).

Each endpoint parses its input with a schema, looks up what it names by code, checks access
for the organisations involved (reads included) and calls the inventory services. Recording
endpoints run under ``writes``: one transaction, ``Idempotency-Key`` honoured.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Blueprint, Response, current_app, jsonify

from stockpile.api import PREFIX, current_user, load, load_args, paginate, writes
from stockpile.auth import services as auth
from stockpile.db import M, get
from stockpile.errors import NotFound
from stockpile.extensions import csrf, db
from stockpile.inventory import gs1, schemas
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Depot, Item, Lot, Movement, MovementKind, Organisation
from stockpile.web import posting_context as _context

bp = Blueprint("inventory_api", __name__, url_prefix=PREFIX)
# The API is authenticated by bearer tokens, not cookies, so there is no session to forge.
csrf.exempt(bp)

ORGANISATION = schemas.OrganisationOutputSchema()
DEPOT = schemas.DepotOutputSchema()
ITEM = schemas.ItemOutputSchema()
MOVEMENT = schemas.MovementOutputSchema()
BALANCE = schemas.BalanceOutputSchema()
LOT = schemas.LotOutputSchema()
LOT_EVENT = schemas.LotEventOutputSchema()


def find(model: type[M], code: str, field: str) -> M:
    """The row of ``model`` with ``code``; 404 naming ``field`` when there is none.

    Codes from the URL are not validated by a schema, so a value no column could hold is
    answered as unknown here instead of reaching the database.
    """
    if len(code) > 40 or "\x00" in code:
        label = model.__name__.lower()
        raise NotFound(f"No {label} with code {code[:40]!r}.", fields={field: [f"Unknown {label}."]})
    return inventory.by_code(db.session, model, code, field=field)


def readable_organisation(code: str, field: str = "organisation") -> Organisation:
    organisation = find(Organisation, code, field)
    auth.require_read(db.session, current_user(), organisation)
    return organisation


def _readable_depot(code: str, field: str = "depot") -> Depot:
    depot = find(Depot, code, field)
    auth.require_read(db.session, current_user(), depot.organisation)
    return depot


def _writable_depot(code: str, field: str = "depot") -> Depot:
    depot = find(Depot, code, field)
    auth.require_write(current_user(), depot.organisation)
    return depot


def _recorded(movements: list[Movement], status: int = 201) -> tuple[dict[str, Any], int]:
    return {"movements": MOVEMENT.dump(movements, many=True)}, status


@bp.post("/organisations")
@writes
def create_organisation() -> tuple[dict[str, Any], int]:
    auth.require_admin(current_user())
    data = load(schemas.OrganisationInputSchema())
    organisation = inventory.create_organisation(db.session, **data)
    return ORGANISATION.dump(organisation), 201


@bp.get("/organisations")
def list_organisations() -> Response:
    load_args(schemas.ListInputSchema())
    readable = auth.readable_organisation_ids(db.session, current_user())
    stmt = (sa.select(Organisation).options(so.selectinload(Organisation.parent))
            .order_by(Organisation.code))
    if readable is not None:
        stmt = stmt.where(Organisation.id.in_(readable))
    return paginate(stmt, ORGANISATION)


@bp.get("/organisations/<code>")
def get_organisation(code: str) -> Response:
    return jsonify(ORGANISATION.dump(readable_organisation(code, "code")))


@bp.post("/depots")
@writes
def create_depot() -> tuple[dict[str, Any], int]:
    auth.require_admin(current_user())
    data = load(schemas.DepotInputSchema())
    organisation = find(Organisation, data["organisation"], "organisation")
    depot = inventory.create_depot(db.session, code=data["code"], name=data["name"],
                                   organisation=organisation)
    return DEPOT.dump(depot), 201


@bp.get("/depots")
def list_depots() -> Response:
    args = load_args(schemas.DepotQueryInputSchema())
    stmt = sa.select(Depot).options(so.joinedload(Depot.organisation)).order_by(Depot.code)
    if args["organisation"] is not None:
        stmt = stmt.where(Depot.organisation_id == readable_organisation(args["organisation"]).id)
    readable = auth.readable_organisation_ids(db.session, current_user())
    if readable is not None:
        stmt = stmt.where(Depot.organisation_id.in_(readable))
    return paginate(stmt, DEPOT)


@bp.get("/depots/<code>")
def get_depot(code: str) -> Response:
    return jsonify(DEPOT.dump(_readable_depot(code, "code")))


@bp.post("/items")
@writes
def create_item() -> tuple[dict[str, Any], int]:
    auth.require_item_manager(current_user())
    data = load(schemas.ItemInputSchema())
    item = inventory.create_item(db.session, **data)
    return ITEM.dump(item), 201


@bp.get("/items")
def list_items() -> Response:
    load_args(schemas.ListInputSchema())
    return paginate(sa.select(Item).order_by(Item.code), ITEM)


@bp.get("/items/<code>")
def get_item(code: str) -> Response:
    return jsonify(ITEM.dump(find(Item, code, "code")))


@bp.post("/receipts")
@writes
def record_receipt() -> tuple[dict[str, Any], int]:
    data = load(schemas.ReceiptInputSchema())
    depot = _writable_depot(data["depot"])
    ctx = _context(data["occurred_at"])
    if "gs1" in data:
        item, lot_number, expiry = gs1.for_receipt(db.session, data["gs1"])
    else:
        item = find(Item, data["item"], "item")
        lot_number, expiry = data["lot_number"], data.get("expiry")
    if data["swap"]:
        movements = inventory.receive_with_swap(db.session, ctx, depot=depot, item=item, lot_number=lot_number,
                                               expiry=expiry, quantity=data["quantity"],
                                               reference=data["reference"])
    else:
        movements = inventory.receive(db.session, ctx, depot=depot, item=item, lot_number=lot_number,
                                      expiry=expiry, quantity=data["quantity"], pool=data["pool"],
                                      reference=data["reference"])
    return _recorded(movements)


@bp.post("/issues")
@writes
def record_issue() -> tuple[dict[str, Any], int]:
    data = load(schemas.IssueInputSchema())
    depot = _writable_depot(data["depot"])
    item = find(Item, data["item"], "item")
    movements = inventory.issue(
        db.session, _context(data["occurred_at"]), depot=depot, item=item,
        quantity=data["quantity"], pool=data["pool"], recipient=data["recipient"],
        flag=data["flag"], min_remaining_days=data["min_remaining_days"],
        lot_number=data["lot_number"], override_reason=data["override_reason"],
        reference=data["reference"])
    return _recorded(movements)


@bp.post("/transfers")
@writes
def record_transfer() -> tuple[dict[str, Any], int]:
    data = load(schemas.TransferInputSchema())
    # Stock leaves one organisation and arrives in the other: both must be the user's to change.
    from_depot = _writable_depot(data["from_depot"], "from_depot")
    to_depot = _writable_depot(data["to_depot"], "to_depot")
    item = find(Item, data["item"], "item")
    movements = inventory.transfer(
        db.session, _context(data["occurred_at"]), from_depot=from_depot,
        from_pool=data["from_pool"], to_depot=to_depot, to_pool=data["to_pool"], item=item,
        quantity=data["quantity"], lot_number=data["lot_number"], reference=data["reference"],
        reason=data["reason"])
    return _recorded(movements)


@bp.post("/adjustments")
@writes
def record_adjustment() -> tuple[dict[str, Any], int]:
    data = load(schemas.AdjustmentInputSchema())
    depot = _writable_depot(data["depot"])
    item = find(Item, data["item"], "item")
    movements = inventory.adjust_to_count(
        db.session, _context(data["occurred_at"]), depot=depot, pool=data["pool"], item=item,
        lot_number=data["lot_number"], counted_quantity=data["counted_quantity"],
        reason=data["reason"], reference=data["reference"])
    # A count that matches the books is an answer, not a new record.
    return _recorded(movements, 201 if movements else 200)


@bp.post("/disposals")
@writes
def record_disposal() -> tuple[dict[str, Any], int]:
    data = load(schemas.DisposalInputSchema())
    depot = _writable_depot(data["depot"])
    item = find(Item, data["item"], "item")
    movements = inventory.dispose(
        db.session, _context(data["occurred_at"]), depot=depot, pool=data["pool"], item=item,
        lot_number=data["lot_number"], quantity=data["quantity"], reason=data["reason"],
        reference=data["reference"])
    return _recorded(movements)


@bp.post("/movements/<int:movement_id>/reverse")
@writes
def reverse_movement(movement_id: int) -> tuple[dict[str, Any], int]:
    data = load(schemas.ReversalInputSchema())
    session = db.session
    user = current_user()
    movement = get(session, Movement, movement_id)
    legs = [movement] if movement is not None else []
    if movement is not None and movement.kind == MovementKind.TRANSFER:
        legs = list(session.scalars(sa.select(Movement).where(
            Movement.posting_id == movement.posting_id)))
    # Movements of organisations the user cannot read are answered as if they did not exist.
    if not any(auth.can_read(session, user, leg.depot.organisation_id) for leg in legs):
        raise NotFound(f"No movement {movement_id}.")
    for leg in legs:
        auth.require_write(user, leg.depot.organisation)
    movements = inventory.reverse(session, _context(), movement=movement, reason=data["reason"])
    return _recorded(movements)


def _utc_bound(value: dt.date | dt.datetime | None, *, end: bool) -> dt.datetime | None:
    """``since``/``until`` as a UTC instant; a date means the whole local day (``until``
    included). Bounds beyond the calendar mean "no bound"."""
    if value is None:
        return None
    try:
        if isinstance(value, dt.datetime):
            moment = value
        else:
            day = value + dt.timedelta(days=1) if end else value
            moment = dt.datetime.combine(day, dt.time(), ZoneInfo(current_app.config["TIMEZONE"]))
        return moment.astimezone(dt.timezone.utc)
    except OverflowError:
        return None


@bp.get("/movements")
def list_movements() -> Response:
    args = load_args(schemas.MovementQueryInputSchema())
    session = db.session
    stmt = inventory.movements(
        session, organisation_ids=auth.readable_organisation_ids(session, current_user()),
        item=find(Item, args["item"], "item") if args["item"] else None,
        depot=_readable_depot(args["depot"]) if args["depot"] else None,
        organisation=readable_organisation(args["organisation"]) if args["organisation"] else None,
        kind=args["kind"], since=_utc_bound(args["since"], end=False),
        until=_utc_bound(args["until"], end=True))
    return paginate(stmt, MOVEMENT)


@bp.get("/stock")
def list_stock() -> Response:
    args = load_args(schemas.StockQueryInputSchema())
    session = db.session
    stmt = inventory.stock(
        session, organisation_ids=auth.readable_organisation_ids(session, current_user()),
        organisation=readable_organisation(args["organisation"]) if args["organisation"] else None,
        depot=_readable_depot(args["depot"]) if args["depot"] else None,
        item=find(Item, args["item"], "item") if args["item"] else None,
        pool=args["pool"])
    return paginate(stmt, BALANCE)


def _lot_to_change(item_code: str, lot_number: str) -> Lot:
    """The lot, if the user may change it: admins always, others where they hold its stock."""
    session = db.session
    item = find(Item, item_code, "item")
    if len(lot_number) > 40 or "\x00" in lot_number:
        raise NotFound(f"Item {item.code} has no lot {lot_number[:40]!r}.",
                       fields={"lot_number": ["Unknown lot."]})
    lot = inventory.find_lot(session, item, lot_number)
    auth.require_lot_change(session, current_user(), lot)
    return lot


def _lot_changed(lot: Lot, event: Any) -> tuple[dict[str, Any], int]:
    return {**LOT.dump(lot), "event": LOT_EVENT.dump(event)}, 200


@bp.post("/lots/<item>/<path:lot_number>/status")
@writes
def set_lot_status(item: str, lot_number: str) -> tuple[dict[str, Any], int]:
    data = load(schemas.LotStatusInputSchema())
    lot = _lot_to_change(item, lot_number)
    event = inventory.set_lot_status(db.session, _context(), lot=lot, status=data["status"],
                                     reason=data["reason"])
    return _lot_changed(lot, event)


@bp.post("/lots/<item>/<path:lot_number>/extend")
@writes
def extend_lot(item: str, lot_number: str) -> tuple[dict[str, Any], int]:
    data = load(schemas.ShelfLifeExtensionInputSchema())
    lot = _lot_to_change(item, lot_number)
    event = inventory.extend_shelf_life(db.session, _context(), lot=lot,
                                        new_expiry=data["new_expiry"], reason=data["reason"])
    return _lot_changed(lot, event)
