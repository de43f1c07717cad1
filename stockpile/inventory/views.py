"""Pages for items, lots, stock cards, the movement forms and master-data administration.

Every page reads through the access rules of ``stockpile.auth.services``: lists are limited to
the organisations the user may read, and every form post checks that the user may write for
each depot it names before anything else happens (403 otherwise, whatever the form offered).
A refusal of the domain re-renders the form with the facts; nothing is committed then.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import format_datetime, format_decimal
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from stockpile.auth import services as auth
from stockpile.errors import DomainError, NotFound
from stockpile.db import get
from stockpile.extensions import db
from stockpile.inventory import gs1
from stockpile.inventory import services as inventory
from stockpile import pages
from stockpile.forms import (CATEGORY_LABELS, label, DISPOSAL_LABELS, DomainForm, FLAG_LABELS,
                             KIND_LABELS, MOVEMENT_LABELS, POOL_LABELS, PPE_GROUP_LABELS,
                             STATUS_LABELS)
from stockpile.inventory.forms import (CountForm, DepotForm, DisposalForm, ExtendForm, IssueForm,
                                       ItemForm, LotStatusForm, OrganisationForm, ReceiptForm,
                                       ReverseForm, TransferForm)
from stockpile.inventory.models import (Category, Depot, Item, Lot, LotEvent, Movement,
                                        Organisation, Pool)
from stockpile.web import posting_context as _context
from stockpile.web import today as _today

bp = Blueprint("inventory", __name__)

# The stock card shows this many of the newest rows unless all are asked for.
CARD_ROWS = 100


pages.require_sign_in(bp)


def _readable() -> set[int] | None:
    return auth.readable_organisation_ids(db.session, current_user)


def _item(code: str | None, field: str = "item") -> Item:
    return inventory.by_code(db.session, Item, (code or "").strip(), field=field)


def _text(value: str | None) -> str | None:
    return (value or "").strip() or None


def _back_to_item(item: Item, depot: Depot | None = None) -> Response:
    return redirect(url_for("inventory.item", code=item.code, depot=depot.code if depot else None))


def _lot_options(item_code: str | None) -> list[Lot]:
    """Lots of the item held in depots the user may write to, for the lot field's suggestions."""
    if not item_code:
        return []
    item = db.session.scalar(sa.select(Item).where(Item.code == item_code))
    if item is None:
        return []
    stmt = inventory.stock(db.session, organisation_ids=auth.writable_organisation_ids(current_user),
                           item=item)
    seen: dict[int, Lot] = {}
    for balance in db.session.scalars(stmt):
        seen.setdefault(balance.lot.id, balance.lot)
    return sorted(seen.values(), key=lambda lot: (lot.expiry or dt.date.max, lot.lot_number))


def _render_form(form: DomainForm, *, title: str, submit: str, status: int = 200,
                 template: str = "inventory/form.html", **extra: Any) -> tuple[str, int]:
    item_code = form.data.get("item") if "item" in form else None
    return render_template(template, form=form, title=title, submit=submit,
                           lot_options=_lot_options(item_code), **extra), status


def _lot_label(lot: Lot) -> str:
    expiry = lot.expiry.isoformat() if lot.expiry else _("no expiry")
    return _("lot %(lot)s (expires %(expiry)s)", lot=lot.lot_number, expiry=expiry)


def _where(depot: Depot, pool: str) -> str:
    return f"{depot.code} ({POOL_LABELS.get(pool, pool)})"


@bp.app_template_filter("when")
def _format_when(value: dt.datetime | None) -> str:
    """A timestamp in the site's time zone, to the minute."""
    return format_datetime(value, "yyyy-MM-dd HH:mm") if value else ""


@bp.app_template_filter("day")
def _format_day(value: dt.date | None) -> str:
    return value.isoformat() if value else "—"


@bp.app_template_filter("qty")
def _format_quantity(value: int) -> str:
    """A whole quantity with the locale's digit grouping (3,305,200 in English)."""
    return format_decimal(value)


@bp.app_template_filter("signed")
def _format_signed(value: int) -> str:
    return f"+{format_decimal(value)}" if value > 0 else f"−{format_decimal(-value)}" if value < 0 else "0"


@bp.record_once
def _register_labels(state: Any) -> None:
    # Globals rather than a context processor: imported macros see globals, not the context.
    state.app.jinja_env.globals.update(
        pool_label=lambda v: label(POOL_LABELS, v),
        kind_label=lambda v: label(KIND_LABELS, v),
        category_label=lambda v: label(CATEGORY_LABELS, v),
        status_label=lambda v: label(STATUS_LABELS, v),
        flag_label=lambda v: label(FLAG_LABELS, v),
        movement_label=lambda v: str(MOVEMENT_LABELS.get(v, v)),
        disposal_label=lambda v: label(DISPOSAL_LABELS, v),
        ppe_group_label=lambda v: label(PPE_GROUP_LABELS, v))


@bp.route("/")
def index() -> Response:
    """Each user starts on the coverage page of their role."""
    return redirect(pages.landing_url(current_user))


@bp.route("/items")
def items() -> str:
    category = request.args.get("category", "")
    if category not in {c.value for c in Category}:
        category = ""
    query = request.args.get("q", "").strip()
    stocked_only = request.args.get("stocked") == "1"
    stmt = sa.select(Item).order_by(Item.name, Item.code)
    if category:
        stmt = stmt.where(Item.category == category)
    if query:
        pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(sa.or_(sa.func.lower(Item.name).like(pattern, escape="\\"),
                                 sa.func.lower(Item.code).like(pattern, escape="\\")))
    all_items = list(db.session.scalars(stmt))
    lines: dict[int, list[inventory.ItemStock]] = defaultdict(list)
    for line in inventory.usable_by_item(db.session, organisation_ids=_readable(), today=_today(),
                                         category=category or None):
        lines[line.item.id].append(line)
    if stocked_only:
        all_items = [i for i in all_items if lines.get(i.id)]
    rows = [{"item": i, "lines": lines.get(i.id, []),
             "on_hand": sum(x.on_hand for x in lines.get(i.id, [])),
             "usable": sum(x.usable for x in lines.get(i.id, []))} for i in all_items]
    return render_template("inventory/items.html", rows=rows, category=category, query=query,
                           stocked_only=stocked_only, categories=CATEGORY_LABELS)


@bp.route("/items/<code>")
def item(code: str) -> str:
    session = db.session
    item = _item(code)
    readable = _readable()
    depot = None
    if request.args.get("depot"):
        depot = inventory.by_code(session, Depot, request.args["depot"], field="depot")
        auth.require_read(session, current_user, depot.organisation)
    today = _today()
    balances = sorted(session.scalars(inventory.stock(session, organisation_ids=readable,
                                                      item=item, depot=depot)),
                      key=lambda b: (b.lot.expiry or dt.date.max, b.lot.lot_number,
                                     b.depot.code, b.pool))
    card = inventory.stock_card(session, item=item, organisation_ids=readable, depot=depot)
    show_all = request.args.get("all") == "1"
    shown = list(reversed(card if show_all else card[-CARD_ROWS:]))
    ids = [m.id for m, _balance in shown]
    reversed_ids = set(session.scalars(sa.select(Movement.reversal_of_id)
                                       .where(Movement.reversal_of_id.in_(ids)))) if ids else set()
    writable = auth.writable_organisation_ids(current_user)
    lot_ids = {b.lot.id for b in balances}
    events = list(session.scalars(
        sa.select(LotEvent).where(LotEvent.lot_id.in_(lot_ids))
        .options(so.joinedload(LotEvent.lot), so.joinedload(LotEvent.recorded_by))
        .order_by(LotEvent.recorded_at.desc(), LotEvent.id.desc()))) if lot_ids else []
    # The depot filter offers the readable depots this item has ever moved through.
    moved_through = (sa.select(Movement.depot_id).join(Movement.lot)
                     .where(Lot.item_id == item.id).distinct())
    depot_stmt = sa.select(Depot).where(Depot.id.in_(moved_through)).order_by(Depot.code)
    if readable is not None:
        depot_stmt = depot_stmt.where(Depot.organisation_id.in_(readable))
    card_depots = list(session.scalars(depot_stmt))
    return render_template(
        "inventory/item.html", item=item, balances=balances, card=shown, card_total=len(card),
        show_all=show_all, card_rows=CARD_ROWS, reversed_ids=reversed_ids, events=events,
        depot=depot, card_depots=card_depots, today=today,
        can_write=lambda org_id: writable is None or org_id in writable,
        any_writable=writable is None or bool(writable),
        holders_writable={b.lot.id for b in balances
                          if writable is None or b.depot.organisation_id in writable})


@bp.route("/receipts/new", methods=["GET", "POST"])
def receipt() -> Any:
    form, depots = pages.movement_form(ReceiptForm, prefilled=("pool", "item"),
                                       data={"swap": request.args.get("swap") == "1"})

    def page(status: int = 200, scanned: bool = False) -> tuple[str, int]:
        depot_code = form.depot.data or (depots[0].code if len(depots) == 1 else None)
        show_swap = bool(form.swap.data) or inventory.holds_emergency_stock(db.session, depot_code, form.item.data)
        return _render_form(form, title=_("Record a receipt"), submit=_("Record receipt"),
                            template="inventory/receipt.html", status=status, scanned=scanned,
                            show_swap=show_swap)

    if request.method == "GET":
        return page()
    scan = (form.scan.data or "").strip()
    if request.form.get("action") == "scan":
        # Read the barcode into the fields so the person sees what it says before recording.
        try:
            item, lot_number, expiry = gs1.for_receipt(db.session, scan)
        except DomainError as error:
            pages.refused(form, error)
            return page(422)
        form.item.data, form.lot_number.data, form.expiry.data = item.code, lot_number, expiry
        # Fields render what was posted (raw_data) before their data; show the scan instead.
        for field in (form.item, form.lot_number, form.expiry, form.scan):
            field.raw_data = None
        form.scan.data = ""
        return page(scanned=True)
    if not form.validate():
        return page(422)
    try:
        depot = pages.writable_depot(form.depot.data, "depot")
        if scan:
            item, lot_number, expiry = gs1.for_receipt(db.session, scan)
            _check_scan_agrees(form, item, lot_number, expiry)
        else:
            item, lot_number, expiry = _item(form.item.data), form.lot_number.data or "", form.expiry.data
        if form.swap.data:
            if form.pool.data != Pool.EMERGENCY.value:
                message = _("The swap puts the fresh lot into the emergency pool: choose Emergency, or "
                            "untick the swap.")
                raise DomainError(message, code="swap_needs_emergency_pool", fields={"pool": [message]})
            movements = inventory.receive_with_swap(db.session, _context(), depot=depot, item=item,
                                                   lot_number=lot_number, expiry=expiry,
                                                   quantity=form.quantity.data,
                                                   reference=_text(form.reference.data))
        else:
            movements = inventory.receive(db.session, _context(), depot=depot, item=item,
                                          lot_number=lot_number, expiry=expiry,
                                          quantity=form.quantity.data, pool=form.pool.data,
                                          reference=_text(form.reference.data))
        db.session.commit()
    except DomainError as error:
        pages.refused(form, error)
        return page(422)
    lot = movements[0].lot
    if form.swap.data:
        swapped = ", ".join(_("lot %(lot)s %(quantity)s", lot=m.lot.lot_number, quantity=m.quantity)
                            for m in movements[1:] if m.quantity > 0)
        flash(_("Received %(quantity)s × %(item)s, %(lot)s, into %(where)s, and moved the oldest emergency "
                "stock into daily use: %(lots)s.", quantity=format_decimal(form.quantity.data), item=item.name,
                lot=_lot_label(lot), where=_where(depot, Pool.EMERGENCY.value), lots=swapped), "success")
        return _back_to_item(item)
    flash(_("Received %(quantity)s × %(item)s, %(lot)s, into %(where)s.",
            quantity=format_decimal(form.quantity.data), item=item.name, lot=_lot_label(lot),
            where=_where(depot, form.pool.data)), "success")
    return _back_to_item(item)


def _check_scan_agrees(form: ReceiptForm, item: Item, lot_number: str, expiry: dt.date | None) -> None:
    """Refuse a scan that contradicts what was typed: one of them is the wrong pack."""
    typed = [("item", form.item.data, item.code), ("lot_number", _text(form.lot_number.data), lot_number),
             ("expiry", form.expiry.data, expiry)]
    for field, value, scanned in typed:
        if value and value != scanned:
            shown = scanned.isoformat() if isinstance(scanned, dt.date) else scanned
            message = _("The scan says %(value)s here; clear the field or the scan.", value=shown)
            raise DomainError(message, code="scan_mismatch", fields={field: [message]})


def _pick_signature(pairs: Iterable[tuple[int, int]]) -> str:
    return ",".join(f"{lot_id}:{quantity}" for lot_id, quantity in pairs)


def _issue_kwargs(form: IssueForm) -> dict[str, Any]:
    return {"quantity": form.quantity.data, "pool": form.pool.data,
            "recipient": _text(form.recipient.data), "flag": form.flag.data,
            "min_remaining_days": form.min_remaining_days.data,
            "lot_number": _text(form.lot_number.data),
            "override_reason": _text(form.override_reason.data),
            "reference": _text(form.reference.data)}


def _issue_preview(form: IssueForm, depot: Depot, item: Item) -> list[dict[str, Any]]:
    """The lots the issue would take now, with what each holds, as plain values: the caller
    ends the transaction before the page is rendered."""
    taken = inventory.preview_issue(db.session, _context(), depot=depot, item=item, **_issue_kwargs(form))
    on_hand = {b.lot.id: b.quantity for b in db.session.scalars(
        inventory.stock(db.session, organisation_ids=None, depot=depot, item=item, pool=form.pool.data))}
    today = _today()
    return [{"lot_id": lot.id, "lot_number": lot.lot_number, "expiry": lot.expiry,
             "original_expiry": lot.original_expiry, "status": lot.status, "quantity": quantity,
             "on_hand": on_hand.get(lot.id, 0),
             "days_left": (lot.expiry - today).days if lot.expiry else None}
            for lot, quantity in taken]


@bp.route("/issues/new", methods=["GET", "POST"])
def issue() -> Any:
    form, _depots = pages.movement_form(IssueForm, prefilled=("pool", "item", "quantity", "recipient"))

    def page(status: int = 200) -> tuple[str, int]:
        return _render_form(form, title=_("Issue stock"), submit=_("Show the FEFO pick"),
                            template="inventory/issue.html", status=status)

    action = request.form.get("action")
    if request.method == "GET" or action == "edit":
        return page()
    if not form.validate():
        return page(422)
    try:
        depot = pages.writable_depot(form.depot.data, "depot")
        item = _item(form.item.data)
        if action == "confirm":
            movements = inventory.issue(db.session, _context(), depot=depot, item=item,
                                        **_issue_kwargs(form))
            if _pick_signature((m.lot_id, -m.quantity) for m in movements) != form.pick.data:
                # Stock changed since the preview: post nothing, show the new pick instead.
                db.session.rollback()
                return _confirm_page(form, depot, item, changed=True)
            db.session.commit()
        else:
            return _confirm_page(form, depot, item)
    except DomainError as error:
        pages.refused(form, error)
        return page(422)
    taken = ", ".join(_("lot %(lot)s %(quantity)s", lot=m.lot.lot_number, quantity=-m.quantity)
                      for m in movements)
    flash(_("Issued %(quantity)s × %(item)s from %(where)s: %(lots)s.",
            quantity=format_decimal(form.quantity.data), item=item.name,
            where=_where(depot, form.pool.data), lots=taken), "success")
    return _back_to_item(item)


def _confirm_page(form: IssueForm, depot: Depot, item: Item, changed: bool = False) -> tuple[str, int]:
    picks = _issue_preview(form, depot, item)
    db.session.rollback()  # the preview reads only; end the transaction before rendering
    form.pick.data = _pick_signature((p["lot_id"], p["quantity"]) for p in picks)
    return render_template("inventory/issue_confirm.html", form=form, depot=depot, item=item,
                           picks=picks, changed=changed), 409 if changed else 200


@bp.route("/transfers/new", methods=["GET", "POST"])
def transfer() -> Any:
    form, _depots = pages.movement_form(TransferForm, depot_fields=("from_depot", "to_depot"),
                                        prefilled=("from_pool", "to_pool", "item", "quantity"))

    def page(status: int = 200) -> tuple[str, int]:
        return _render_form(form, title=_("Transfer stock"), submit=_("Record transfer"),
                            status=status, intro=_(
                                "Moves stock between depots or between the operational and the "
                                "emergency pool. Both legs are recorded together."))

    def record() -> tuple[Depot, Depot, Item, list[Movement]]:
        from_depot = pages.writable_depot(form.from_depot.data, "from_depot")
        to_depot = pages.writable_depot(form.to_depot.data, "to_depot")
        item = _item(form.item.data)
        return from_depot, to_depot, item, inventory.transfer(
            db.session, _context(), from_depot=from_depot, from_pool=form.from_pool.data, to_depot=to_depot,
            to_pool=form.to_pool.data, item=item, quantity=form.quantity.data,
            lot_number=_text(form.lot_number.data), reference=_text(form.reference.data),
            reason=_text(form.reason.data))

    submitted = pages.submit(form, record)
    if not submitted.done:
        return page(submitted.status)
    from_depot, to_depot, item, movements = submitted.result
    lots = ", ".join(_("lot %(lot)s %(quantity)s", lot=m.lot.lot_number, quantity=m.quantity)
                     for m in movements if m.quantity > 0)
    flash(_("Moved %(quantity)s × %(item)s from %(source)s to %(target)s: %(lots)s.",
            quantity=format_decimal(form.quantity.data), item=item.name,
            source=_where(from_depot, form.from_pool.data), target=_where(to_depot, form.to_pool.data),
            lots=lots), "success")
    return _back_to_item(item)


@bp.route("/counts/new", methods=["GET", "POST"])
def count() -> Any:
    form, _depots = pages.movement_form(CountForm, prefilled=("pool", "item"))

    def page(status: int = 200) -> tuple[str, int]:
        return _render_form(form, title=_("Record a stock count"), submit=_("Record count"),
                            status=status, intro=_(
                                "Enter what is physically on the shelf for one lot. The difference "
                                "to the books is recorded as a correction."))

    def record() -> tuple[Depot, Item, list[Movement]]:
        depot = pages.writable_depot(form.depot.data, "depot")
        item = _item(form.item.data)
        return depot, item, inventory.adjust_to_count(
            db.session, _context(), depot=depot, pool=form.pool.data, item=item,
            lot_number=(form.lot_number.data or "").strip(), counted_quantity=form.counted_quantity.data,
            reason=form.reason.data or "", reference=_text(form.reference.data))

    submitted = pages.submit(form, record)
    if not submitted.done:
        return page(submitted.status)
    depot, item, movements = submitted.result
    lot_number = (form.lot_number.data or "").strip()
    if movements:
        flash(_("Count recorded: lot %(lot)s in %(where)s corrected by %(delta)s to %(counted)s.",
                lot=lot_number, where=_where(depot, form.pool.data),
                delta=_format_signed(movements[0].quantity),
                counted=format_decimal(form.counted_quantity.data)), "success")
    else:
        flash(_("Count matches the books: lot %(lot)s in %(where)s holds %(counted)s. "
                "Nothing to correct.", lot=lot_number, where=_where(depot, form.pool.data),
                counted=format_decimal(form.counted_quantity.data)), "success")
    return _back_to_item(item)


@bp.route("/disposals/new", methods=["GET", "POST"])
def disposal() -> Any:
    form, _depots = pages.movement_form(DisposalForm, prefilled=("pool", "item", "reason", "quantity"))

    def page(status: int = 200) -> tuple[str, int]:
        return _render_form(form, title=_("Dispose of stock"), submit=_("Record disposal"),
                            status=status, intro=_("Writes stock off: expired, damaged or recalled."))

    def record() -> tuple[Depot, Item]:
        depot = pages.writable_depot(form.depot.data, "depot")
        item = _item(form.item.data)
        inventory.dispose(db.session, _context(), depot=depot, pool=form.pool.data, item=item,
                          lot_number=(form.lot_number.data or "").strip(), quantity=form.quantity.data,
                          reason=form.reason.data, reference=_text(form.reference.data))
        return depot, item

    submitted = pages.submit(form, record)
    if not submitted.done:
        return page(submitted.status)
    depot, item = submitted.result
    flash(_("Disposed of %(quantity)s × %(item)s, lot %(lot)s, from %(where)s (%(reason)s).",
            quantity=format_decimal(form.quantity.data), item=item.name,
            lot=(form.lot_number.data or "").strip(), where=_where(depot, form.pool.data),
            reason=str(DISPOSAL_LABELS.get(form.reason.data, form.reason.data)).lower()), "success")
    return _back_to_item(item)


def _movement_to_reverse(movement_id: int) -> tuple[Movement, list[Movement]]:
    """The movement and every leg a reversal would touch; 404 if unreadable, 403 if not writable."""
    session = db.session
    movement = get(session, Movement, movement_id)
    if movement is None or not auth.can_read(session, current_user, movement.depot.organisation_id):
        raise NotFound(_("No movement %(id)s.", id=movement_id))
    legs = inventory.posting_legs(session, movement)
    for leg in legs:
        auth.require_write(current_user, leg.depot.organisation)
    return movement, legs


@bp.route("/movements/<int:movement_id>/reverse", methods=["GET", "POST"])
def reverse(movement_id: int) -> Any:
    movement, legs = _movement_to_reverse(movement_id)
    form = ReverseForm()
    submitted = pages.submit(form, lambda: inventory.reverse(db.session, _context(), movement=movement,
                                                              reason=form.reason.data or ""))
    if submitted.done:
        flash(_("Movement %(id)s (%(kind)s of %(quantity)s, lot %(lot)s) is reversed.",
                id=movement.id, kind=str(MOVEMENT_LABELS.get(movement.kind, movement.kind)).lower(),
                quantity=_format_signed(movement.quantity), lot=movement.lot.lot_number), "success")
        return _back_to_item(movement.lot.item)
    return render_template("inventory/reverse.html", form=form, movement=movement, legs=legs), submitted.status


def _lot_to_change(code: str, lot_number: str) -> Lot:
    """The lot, if the user may change it: admins always, others while an organisation they
    record stock for holds some of it (the same rule as the API)."""
    session = db.session
    item = _item(code)
    if len(lot_number) > 40:
        raise NotFound(_("Item %(item)s has no lot %(lot)s.", item=item.code, lot=lot_number[:40]))
    lot = inventory.find_lot(session, item, lot_number)
    auth.require_lot_change(session, current_user, lot)
    return lot


@bp.route("/items/<code>/lots/<path:lot_number>/status", methods=["GET", "POST"])
def lot_status(code: str, lot_number: str) -> Any:
    lot = _lot_to_change(code, lot_number)
    form = LotStatusForm(data={"status": lot.status} if request.method == "GET" else None)
    submitted = pages.submit(form, lambda: inventory.set_lot_status(
        db.session, _context(), lot=lot, status=form.status.data, reason=form.reason.data or ""))
    if submitted.done:
        flash(_("Lot %(lot)s of %(item)s is now %(status)s.", lot=lot.lot_number,
                item=lot.item.name, status=str(STATUS_LABELS.get(form.status.data, "")).lower()),
              "success")
        return _back_to_item(lot.item)
    return render_template("inventory/lot_form.html", form=form, lot=lot,
                           title=_("Change the status of lot %(lot)s", lot=lot.lot_number),
                           submit=_("Change status"), intro=_(
                               "Quarantined and recalled lots are never issued; releasing a lot "
                               "makes it available again.")), submitted.status


@bp.route("/items/<code>/lots/<path:lot_number>/extend", methods=["GET", "POST"])
def lot_extend(code: str, lot_number: str) -> Any:
    lot = _lot_to_change(code, lot_number)
    form = ExtendForm()
    submitted = pages.submit(form, lambda: inventory.extend_shelf_life(
        db.session, _context(), lot=lot, new_expiry=form.new_expiry.data, reason=form.reason.data or ""))
    if submitted.done:
        flash(_("Lot %(lot)s of %(item)s now expires %(expiry)s (printed expiry %(printed)s).",
                lot=lot.lot_number, item=lot.item.name, expiry=_format_day(lot.expiry),
                printed=_format_day(lot.original_expiry)), "success")
        return _back_to_item(lot.item)
    return render_template("inventory/lot_form.html", form=form, lot=lot,
                           title=_("Extend the shelf life of lot %(lot)s", lot=lot.lot_number),
                           submit=_("Extend shelf life"), intro=_(
                               "The printed expiry is kept; the new date decides what is usable "
                               "from now on.")), submitted.status


def _organisation_tree() -> list[tuple[Organisation, int]]:
    """Every organisation with its depth, parents before their members, names in order."""
    orgs = list(db.session.scalars(sa.select(Organisation).options(so.selectinload(Organisation.depots))
                                   .order_by(Organisation.name)))
    children: dict[int | None, list[Organisation]] = defaultdict(list)
    known = {o.id for o in orgs}
    for org in orgs:
        children[org.parent_id if org.parent_id in known else None].append(org)
    tree: list[tuple[Organisation, int]] = []

    def walk(parent: int | None, depth: int) -> None:
        for org in children.get(parent, []):
            tree.append((org, depth))
            walk(org.id, depth + 1)

    walk(None, 0)
    return tree


@bp.route("/admin/organisations", methods=["GET", "POST"])
def organisations() -> Any:
    auth.require_admin(current_user)
    form = OrganisationForm()
    form.parent.choices = pages.organisation_choices(blank=_("— none (top level) —"))
    submitted = pages.submit(form, lambda: inventory.create_organisation(
        db.session, code=(form.code.data or "").strip(), name=form.name.data or "", kind=form.kind.data,
        parent=_text(form.parent.data), population=form.population.data))
    if submitted.done:
        org = submitted.result
        flash(_("Organisation %(name)s (%(code)s) created.", name=org.name, code=org.code), "success")
        return redirect(url_for("inventory.organisations"))
    return render_template("admin/organisations.html", form=form, tree=_organisation_tree()), submitted.status


@bp.route("/admin/depots", methods=["GET", "POST"])
def depots() -> Any:
    auth.require_admin(current_user)
    form = DepotForm()
    form.organisation.choices = pages.organisation_choices(blank=_("— choose —"))
    submitted = pages.submit(form, lambda: inventory.create_depot(
        db.session, code=(form.code.data or "").strip(), name=form.name.data or "",
        organisation=inventory.by_code(db.session, Organisation, form.organisation.data or "", field="organisation")))
    if submitted.done:
        depot = submitted.result
        flash(_("Depot %(name)s (%(code)s) created for %(organisation)s.", name=depot.name,
                code=depot.code, organisation=depot.organisation.name), "success")
        return redirect(url_for("inventory.depots"))
    return render_template("admin/depots.html", form=form,
                           depots=inventory.depots(db.session, None)), submitted.status


@bp.route("/admin/items", methods=["GET", "POST"])
def item_admin() -> Any:
    auth.require_item_manager(current_user)
    form = ItemForm()
    submitted = pages.submit(form, lambda: inventory.create_item(
        db.session, code=(form.code.data or "").strip(), name=form.name.data or "", category=form.category.data,
        unit=form.unit.data or "", pack_size=form.pack_size.data, gtin=_text(form.gtin.data),
        atc=_text(form.atc.data), ppe_group=_text(form.ppe_group.data), has_expiry=bool(form.has_expiry.data)))
    if submitted.done:
        new = submitted.result
        flash(_("Item %(name)s (%(code)s) created.", name=new.name, code=new.code), "success")
        return redirect(url_for("inventory.item_admin"))
    all_items = db.session.scalars(sa.select(Item).order_by(Item.category, Item.name)).all()
    return render_template("admin/items.html", form=form, items=all_items), submitted.status

