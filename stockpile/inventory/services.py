"""The stock ledger: master data, the one posting path, and reading stock back.

Every change of stock — receipt, issue, transfer, count adjustment, disposal, reversal — goes
through ``_post``, which locks the balance rows it touches, refuses anything that would take a
balance below zero, writes the immutable movements and updates the balances, all in the
caller's transaction. Lot status changes and shelf-life extensions live here too, recorded as
lot events. Services never commit: the caller (a view, the CLI) owns the transaction and rolls
back when a ``DomainError`` is raised, so a refusal leaves nothing half-written.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.dialects import postgresql, sqlite

from stockpile import db
from stockpile.db import Base, M, begin_write, utcnow
from stockpile.errors import (Conflict, InsufficientStock, LotExpired, LotNotUsable,
                              NotFound, check_choice, check_positive, field_error, required_text)
from stockpile.inventory import fefo
from stockpile.inventory.models import (Balance, Category, Depot, DisposalReason, IssueFlag, Item,
                                        Lot, LotEvent, LotEventKind, LotStatus, Movement,
                                        MovementKind, Organisation, OrganisationKind, Pool, PPEGroup)

DEFAULT_TIMEZONE = "Europe/Oslo"
# session.info key: the (organisation id, item id) pairs whose stock changed in the transaction,
# for whoever evaluates alerts before it commits.
STOCK_CHANGED = "stockpile.stock_changed"
# Clocks drift; a movement stamped a few minutes ahead is not "in the future".
FUTURE_TOLERANCE = dt.timedelta(minutes=5)


def local_today(timezone: str = DEFAULT_TIMEZONE) -> dt.date:
    """Today's date where the stock is (expiry is a calendar date, not a UTC instant)."""
    return dt.datetime.now(ZoneInfo(timezone)).date()


def by_code(session: so.Session, model: type[M], code: str, *, field: str | None = None) -> M:
    """The row of ``model`` with this ``code``; ``NotFound`` naming the field otherwise."""
    row = session.scalar(sa.select(model).where(model.code == code))  # type: ignore[attr-defined]
    if row is None:
        label = model.__name__.lower()
        raise NotFound(f"No {label} with code {code!r}.", fields={field or label: [f"Unknown {label} {code!r}."]})
    return row


def find_lot(session: so.Session, item: Item, lot_number: str, *, lock: bool = False) -> Lot:
    stmt = sa.select(Lot).where(Lot.item_id == item.id, Lot.lot_number == lot_number)
    if lock:
        stmt = stmt.with_for_update()
    lot = session.scalar(stmt)
    if lot is None:
        raise NotFound(f"Item {item.code} has no lot {lot_number!r}.",
                       fields={"lot_number": [f"Unknown lot {lot_number!r} of {item.code}."]})
    return lot


def _ensure_unique_code(session: so.Session, model: type[Base], code: str) -> None:
    if session.scalar(sa.select(model.id).where(model.code == code)) is not None:  # type: ignore[attr-defined]
        label = model.__name__.lower()
        article = "An" if label[0] in "aeiou" else "A"
        raise Conflict(f"{article} {label} with code {code!r} already exists.",
                       code="duplicate_code", fields={"code": [f"{code!r} is already taken."]})


def create_organisation(session: so.Session, *, code: str, name: str, kind: str,
                        parent: str | None = None, population: int | None = None) -> Organisation:
    check_choice("kind", kind, OrganisationKind)
    _ensure_unique_code(session, Organisation, code)
    parent_org = by_code(session, Organisation, parent, field="parent") if parent else None
    if population is not None and population < 0:
        raise field_error("population", "population cannot be negative.")
    org = Organisation(code=code, name=required_text("name", name), kind=kind,
                       parent=parent_org, population=population)
    session.add(org)
    session.flush()
    return org


def create_depot(session: so.Session, *, code: str, name: str, organisation: Organisation) -> Depot:
    _ensure_unique_code(session, Depot, code)
    depot = Depot(code=code, name=required_text("name", name), organisation=organisation)
    session.add(depot)
    session.flush()
    return depot


def create_item(session: so.Session, *, code: str, name: str, category: str, unit: str,
                pack_size: int | None = None, gtin: str | None = None, atc: str | None = None,
                ppe_group: str | None = None, has_expiry: bool = True) -> Item:
    check_choice("category", category, Category)
    if ppe_group is not None:
        check_choice("ppe_group", ppe_group, PPEGroup)
        if category != Category.PPE:
            raise field_error("ppe_group", "Only items of category ppe have a PPE group.")
    if pack_size is not None:
        check_positive("pack_size", pack_size)
    if gtin:
        gtin = normalise_gtin(gtin)
        if session.scalar(sa.select(Item.id).where(Item.gtin == gtin)) is not None:
            raise Conflict(f"Another item already has GTIN {gtin}.", code="duplicate_gtin",
                           fields={"gtin": [f"GTIN {gtin} is already registered."]})
    _ensure_unique_code(session, Item, code)
    item = Item(code=code, name=required_text("name", name), category=category,
                unit=required_text("unit", unit), pack_size=pack_size, gtin=gtin or None,
                atc=atc or None, ppe_group=ppe_group, has_expiry=has_expiry)
    session.add(item)
    session.flush()
    return item


def normalise_gtin(gtin: str) -> str:
    """A GTIN-8/12/13/14 as 14 digits with a valid check digit, or ``InvalidInput``."""
    from biip.gtin import Gtin  # local: only needed when GTINs are handled
    from biip import ParseError

    try:
        parsed = Gtin.parse(gtin.strip())
    except ParseError as exc:
        raise field_error("gtin", f"Not a valid GTIN: {exc}") from exc
    return parsed.as_gtin_14()


@dataclass(frozen=True)
class Leg:
    """One signed change to one lot in one depot and pool."""

    lot: Lot
    depot: Depot
    pool: str
    quantity: int
    reversal_of: Movement | None = None
    # The leg's balance row when the caller has already locked it (the FEFO pick did).
    locked: Balance | None = None


@dataclass(frozen=True)
class Context:
    """Who records the posting and when it happened; ``today`` decides what has expired."""

    user_id: int | None
    occurred_at: dt.datetime
    today: dt.date

    @classmethod
    def now(cls, user_id: int | None, *, occurred_at: dt.datetime | None = None,
            timezone: str = DEFAULT_TIMEZONE) -> Context:
        now = utcnow()
        if occurred_at is None:
            occurred_at = now
        elif occurred_at.tzinfo is None:
            raise field_error("occurred_at", "occurred_at needs a time zone offset.")
        elif occurred_at > now + FUTURE_TOLERANCE:
            raise field_error("occurred_at", "occurred_at cannot be in the future.")
        return cls(user_id, occurred_at, occurred_at.astimezone(ZoneInfo(timezone)).date())


def _insert_ignoring_conflict(session: so.Session, table: sa.Table, values: dict[str, Any]) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(table).values(**values).on_conflict_do_nothing())


def _locked_balance(session: so.Session, lot: Lot, depot: Depot, pool: str) -> Balance:
    """The balance row of (lot, depot, pool), created at zero if missing, locked for update."""
    stmt = (sa.select(Balance)
            .where(Balance.lot_id == lot.id, Balance.depot_id == depot.id, Balance.pool == pool)
            .with_for_update().execution_options(populate_existing=True))
    balance = session.scalar(stmt)
    if balance is None:
        _insert_ignoring_conflict(session, Balance.__table__,
                                  {"lot_id": lot.id, "depot_id": depot.id, "pool": pool, "quantity": 0})
        balance = session.scalar(stmt)
        assert balance is not None
    return balance


def _post(session: so.Session, ctx: Context, kind: MovementKind, legs: Sequence[Leg], *,
          reference: str | None = None, reason: str | None = None, flag: str | None = None,
          recipient: str | None = None, recipient_organisation: Organisation | None = None,
          fefo_override: bool = False) -> list[Movement]:
    """Write ``legs`` as movements of one posting and apply them to the balances.

    Locks every touched balance row (in a fixed order), refuses with ``InsufficientStock``
    before writing anything if a balance would go below zero, then writes.
    """
    begin_write(session)
    ordered = sorted(legs, key=lambda leg: (leg.lot.id, leg.depot.id, leg.pool))
    balances: dict[tuple[int, int, str], Balance] = {}
    for leg in ordered:
        key = (leg.lot.id, leg.depot.id, leg.pool)
        if key not in balances:
            balances[key] = leg.locked or _locked_balance(session, leg.lot, leg.depot, leg.pool)
    after: dict[tuple[int, int, str], int] = {key: b.quantity for key, b in balances.items()}
    for leg in legs:
        key = (leg.lot.id, leg.depot.id, leg.pool)
        after[key] += leg.quantity
        if after[key] < 0:
            have = balances[key].quantity
            raise InsufficientStock(
                f"Lot {leg.lot.lot_number} has {have} in {leg.depot.code} ({leg.pool}); "
                f"{-leg.quantity} cannot be taken.",
                fields={"quantity": [f"At most {have} is on hand in lot {leg.lot.lot_number}."]},
                details={"available": have, "lot_number": leg.lot.lot_number})
    posting_id = str(uuid.uuid4())
    recorded_at = utcnow()
    movements = []
    for leg in legs:
        movement = Movement(
            posting_id=posting_id, kind=kind.value, lot=leg.lot, depot=leg.depot, pool=leg.pool,
            quantity=leg.quantity, occurred_at=ctx.occurred_at, recorded_at=recorded_at,
            recorded_by_id=ctx.user_id, reference=reference, reason=reason, flag=flag,
            recipient=recipient, recipient_organisation=recipient_organisation,
            fefo_override=fefo_override, reversal_of=leg.reversal_of)
        session.add(movement)
        movements.append(movement)
    for key, balance in balances.items():
        balance.quantity = after[key]
    touched = {(leg.depot.organisation_id, leg.lot.item_id) for leg in legs}
    session.info.setdefault(STOCK_CHANGED, set()).update(touched)
    db.run_hooks(session, "stock_changed", touched)
    session.flush()
    return movements


def _check_pool(pool: str, field: str = "pool") -> str:
    return check_choice(field, pool, Pool)


def receive(session: so.Session, ctx: Context, *, depot: Depot, item: Item, lot_number: str,
            expiry: dt.date | None, quantity: int, pool: str = Pool.OPERATIONAL,
            reference: str | None = None) -> list[Movement]:
    """Goods in: create the lot if new, add ``quantity`` to it. Refuses expired lots."""
    _check_pool(pool)
    check_positive("quantity", quantity)
    lot_number = required_text("lot_number", lot_number)
    if len(lot_number) > 40:
        raise field_error("lot_number", "lot_number is at most 40 characters.")
    if expiry is None and item.has_expiry:
        raise field_error("expiry", f"{item.code} has a shelf life: the lot's expiry date is required.")
    if expiry is not None and expiry < ctx.today:
        raise LotExpired(f"Lot {lot_number} expired on {expiry.isoformat()}; expired stock cannot be received.",
                         fields={"expiry": [f"{expiry.isoformat()} is before today ({ctx.today.isoformat()})."]})
    begin_write(session)
    _insert_ignoring_conflict(session, Lot.__table__, {
        "item_id": item.id, "lot_number": lot_number, "expiry": expiry,
        "status": LotStatus.AVAILABLE.value, "received_at": ctx.occurred_at})
    lot = find_lot(session, item, lot_number)
    session.refresh(lot)
    if expiry not in (lot.expiry, lot.original_expiry):
        printed = lot.original_expiry or lot.expiry
        raise Conflict(
            f"Lot {lot_number} of {item.code} is already recorded with expiry "
            f"{printed.isoformat() if printed else 'none'}, not {expiry.isoformat() if expiry else 'none'}.",
            code="lot_expiry_mismatch",
            fields={"expiry": [f"Lot {lot_number} expires {printed.isoformat() if printed else 'never'}."]})
    if lot.status == LotStatus.RECALLED:
        raise LotNotUsable(f"Lot {lot_number} of {item.code} is recalled; it cannot be received.",
                           fields={"lot_number": ["This lot is recalled."]})
    return _post(session, ctx, MovementKind.RECEIPT, [Leg(lot, depot, pool, quantity)],
                 reference=reference)


def _named_lot_balance(session: so.Session, depot: Depot, pool: str, item: Item,
                       lot_number: str) -> Balance:
    lot = find_lot(session, item, lot_number)
    return _locked_balance(session, lot, depot, pool)


def _check_named_lot_usable(lot: Lot, ctx: Context, min_remaining_days: int) -> None:
    if lot.status != LotStatus.AVAILABLE:
        raise LotNotUsable(f"Lot {lot.lot_number} is {lot.status} and cannot be issued.",
                           fields={"lot_number": [f"Lot is {lot.status}."]})
    if lot.expiry is not None and lot.expiry < ctx.today:
        raise LotExpired(f"Lot {lot.lot_number} expired on {lot.expiry.isoformat()} and cannot be issued.",
                         fields={"lot_number": [f"Expired {lot.expiry.isoformat()}."]})
    cutoff = ctx.today + dt.timedelta(days=min_remaining_days)
    if lot.expiry is not None and lot.expiry < cutoff:
        raise LotNotUsable(
            f"Lot {lot.lot_number} expires {lot.expiry.isoformat()}, before the {min_remaining_days} "
            f"days of remaining shelf life the recipient requires ({cutoff.isoformat()}).",
            fields={"lot_number": ["Too little remaining shelf life."]})


def fefo_preview(session: so.Session, *, depot: Depot, pool: str, item: Item, quantity: int,
                 today: dt.date, min_remaining_days: int = 0) -> list[fefo.Pick]:
    """The lots an issue would take right now, without locking or posting anything."""
    balances = fefo.stock_lines(session, depot_id=depot.id, pool=pool, item_id=item.id)
    return fefo.allocate(balances, check_positive("quantity", quantity), today, min_remaining_days)


def issue(session: so.Session, ctx: Context, *, depot: Depot, item: Item, quantity: int,
          pool: str = Pool.OPERATIONAL, recipient: str | None = None, flag: str = IssueFlag.NORMAL,
          min_remaining_days: int | None = None, lot_number: str | None = None,
          override_reason: str | None = None, reference: str | None = None) -> list[Movement]:
    """Withdraw ``quantity`` FEFO (or from a named lot, with a reason): one movement per lot."""
    _check_pool(pool)
    check_positive("quantity", quantity)
    check_choice("flag", flag, IssueFlag)
    min_days = min_remaining_days or 0
    if min_days < 0:
        raise field_error("min_remaining_days", "min_remaining_days cannot be negative.")
    recipient = (recipient or "").strip() or None
    recipient_org = None
    if recipient:
        recipient_org = session.scalar(sa.select(Organisation).where(Organisation.code == recipient))
    begin_write(session)
    if lot_number:
        reason = required_text("override_reason", override_reason)
        balance = _named_lot_balance(session, depot, pool, item, lot_number)
        _check_named_lot_usable(balance.lot, ctx, min_days)
        legs = [Leg(balance.lot, depot, pool, -quantity, locked=balance)]
        return _post(session, ctx, MovementKind.ISSUE, legs, reference=reference, reason=reason,
                     flag=flag, recipient=recipient, recipient_organisation=recipient_org,
                     fefo_override=True)
    balances = fefo.stock_lines(session, depot_id=depot.id, pool=pool, item_id=item.id, lock=True)
    picks = fefo.allocate(balances, quantity, ctx.today, min_days)
    legs = [Leg(p.lot, depot, pool, -p.quantity, locked=p.balance) for p in picks]
    return _post(session, ctx, MovementKind.ISSUE, legs, reference=reference, flag=flag,
                 recipient=recipient, recipient_organisation=recipient_org)


def transfer(session: so.Session, ctx: Context, *, from_depot: Depot, from_pool: str,
             to_depot: Depot, to_pool: str, item: Item, quantity: int,
             lot_number: str | None = None, reference: str | None = None,
             reason: str | None = None) -> list[Movement]:
    """Move stock between depots and/or pools: both legs in one posting.

    Without ``lot_number`` the usable lots are taken FEFO; a named lot moves whatever its status
    (quarantined stock may need to move to a quarantine store).
    """
    _check_pool(from_pool, "from_pool")
    _check_pool(to_pool, "to_pool")
    check_positive("quantity", quantity)
    if from_depot.id == to_depot.id and from_pool == to_pool:
        raise field_error("to_pool", "A transfer needs a different depot or pool to move to.")
    begin_write(session)
    if lot_number:
        balance = _named_lot_balance(session, from_depot, from_pool, item, lot_number)
        picks = [fefo.Pick(balance, quantity)]
    else:
        balances = fefo.stock_lines(session, depot_id=from_depot.id, pool=from_pool,
                                    item_id=item.id, lock=True)
        picks = fefo.allocate(balances, quantity, ctx.today)
    legs = []
    for pick in picks:
        legs.append(Leg(pick.lot, from_depot, from_pool, -pick.quantity, locked=pick.balance))
        legs.append(Leg(pick.lot, to_depot, to_pool, pick.quantity))
    return _post(session, ctx, MovementKind.TRANSFER, legs, reference=reference, reason=reason)


def adjust_to_count(session: so.Session, ctx: Context, *, depot: Depot, pool: str, item: Item,
                    lot_number: str, counted_quantity: int, reason: str,
                    reference: str | None = None) -> list[Movement]:
    """Record a stock count: a signed correction to the counted quantity, or nothing if it matches."""
    _check_pool(pool)
    if isinstance(counted_quantity, bool) or not isinstance(counted_quantity, int) or counted_quantity < 0:
        raise field_error("counted_quantity", "counted_quantity must be a whole number, zero or more.")
    reason = required_text("reason", reason)
    begin_write(session)
    balance = _named_lot_balance(session, depot, pool, item, lot_number)
    delta = counted_quantity - balance.quantity
    if delta == 0:
        return []
    return _post(session, ctx, MovementKind.ADJUSTMENT, [Leg(balance.lot, depot, pool, delta, locked=balance)],
                 reason=reason, reference=reference)


def dispose(session: so.Session, ctx: Context, *, depot: Depot, pool: str, item: Item,
            lot_number: str, quantity: int, reason: str, reference: str | None = None) -> list[Movement]:
    """Write off ``quantity`` of a lot (expired, damaged, recalled, other)."""
    _check_pool(pool)
    check_positive("quantity", quantity)
    check_choice("reason", reason, DisposalReason)
    begin_write(session)
    balance = _named_lot_balance(session, depot, pool, item, lot_number)
    return _post(session, ctx, MovementKind.DISPOSAL, [Leg(balance.lot, depot, pool, -quantity, locked=balance)],
                 reason=reason, reference=reference)


def reverse(session: so.Session, ctx: Context, *, movement: Movement, reason: str) -> list[Movement]:
    """Undo a movement by posting its opposite (both legs for a transfer).

    Refuses a reversal of a reversal, a second reversal, and one that would take stock that
    has since left (``InsufficientStock``).
    """
    reason = required_text("reason", reason)
    if movement.reversal_of_id is not None:
        raise Conflict(f"Movement {movement.id} is itself a reversal; record a new movement instead.",
                       code="is_reversal")
    originals = [movement]
    if movement.kind == MovementKind.TRANSFER:
        originals = list(session.scalars(
            sa.select(Movement).where(Movement.posting_id == movement.posting_id,
                                      Movement.kind == MovementKind.TRANSFER.value,
                                      Movement.reversal_of_id.is_(None)).order_by(Movement.id)))
    begin_write(session)
    already = session.scalar(sa.select(Movement.reversal_of_id).where(
        Movement.reversal_of_id.in_([m.id for m in originals])))
    if already is not None:
        raise Conflict(f"Movement {already} has already been reversed.", code="already_reversed")
    legs = [Leg(m.lot, m.depot, m.pool, -m.quantity, reversal_of=m) for m in originals]
    return _post(session, ctx, MovementKind(movement.kind), legs, reason=reason,
                 reference=movement.reference, flag=movement.flag, recipient=movement.recipient,
                 recipient_organisation=movement.recipient_organisation)


def receive_with_swap(session: so.Session, ctx: Context, *, depot: Depot, item: Item, lot_number: str,
                      expiry: dt.date | None, quantity: int, reference: str | None = None) -> list[Movement]:
    """Receive fresh stock into the emergency pool and, in the same transaction, move the same
    quantity of the oldest emergency stock (FEFO) to the operational pool for daily use.

    Either both happen or neither: a refusal of either part raises before anything is committed.
    """
    received = receive(session, ctx, depot=depot, item=item, lot_number=lot_number, expiry=expiry,
                       quantity=quantity, pool=Pool.EMERGENCY.value, reference=reference)
    fresh_lot_id = received[0].lot_id
    older = [b for b in fefo.stock_lines(session, depot_id=depot.id, pool=Pool.EMERGENCY.value,
                                         item_id=item.id, lock=True)
             if b.lot_id != fresh_lot_id]
    swappable = sum(b.quantity for b in fefo.usable(older, ctx.today))
    if swappable == 0:
        raise Conflict(f"There is no older usable emergency stock of {item.code} in {depot.code} to swap "
                       "out; receive into the emergency pool without the swap.", code="nothing_to_swap",
                       fields={"swap": ["No older emergency stock."]})
    picks = fefo.allocate(older, min(quantity, swappable), ctx.today)
    moved: list[Movement] = []
    for pick in picks:
        moved += transfer(session, ctx, from_depot=depot, from_pool=Pool.EMERGENCY.value, to_depot=depot,
                          to_pool=Pool.OPERATIONAL.value, item=item, quantity=pick.quantity,
                          lot_number=pick.lot.lot_number, reference=reference,
                          reason=f"Swap: replaced in emergency stock by lot {lot_number}")
    return received + moved


def set_lot_status(session: so.Session, ctx: Context, *, lot: Lot, status: str, reason: str) -> LotEvent:
    """Quarantine, recall or release a lot; recorded with who, when and why."""
    check_choice("status", status, LotStatus)
    reason = required_text("reason", reason)
    begin_write(session)
    session.refresh(lot, with_for_update=True)
    if lot.status == status:
        raise Conflict(f"Lot {lot.lot_number} is already {status}.", code="no_change",
                       fields={"status": [f"Already {status}."]})
    event = LotEvent(lot=lot, kind=LotEventKind.STATUS.value, old_value=lot.status,
                     new_value=status, reason=reason, recorded_by_id=ctx.user_id)
    lot.status = status
    session.add(event)
    db.run_hooks(session, "lot_changed", lot.item_id)  # usable days follow status
    session.flush()
    return event


def extend_shelf_life(session: so.Session, ctx: Context, *, lot: Lot, new_expiry: dt.date,
                      reason: str) -> LotEvent:
    """Move a lot's expiry later (e.g. after a stability test); the printed expiry is kept."""
    reason = required_text("reason", reason)
    begin_write(session)
    session.refresh(lot, with_for_update=True)
    if lot.expiry is None:
        raise field_error("new_expiry", f"Lot {lot.lot_number} has no expiry to extend.")
    if new_expiry <= lot.expiry:
        raise field_error("new_expiry", f"An extension must move the expiry later than "
                                         f"{lot.expiry.isoformat()}.")
    event = LotEvent(lot=lot, kind=LotEventKind.EXTENSION.value, old_value=lot.expiry.isoformat(),
                     new_value=new_expiry.isoformat(), reason=reason, recorded_by_id=ctx.user_id)
    if lot.original_expiry is None:
        lot.original_expiry = lot.expiry
    lot.expiry = new_expiry
    session.add(event)
    db.run_hooks(session, "lot_changed", lot.item_id)  # usable days follow expiry
    session.flush()
    return event


@dataclass(frozen=True)
class Discrepancy:
    lot_id: int
    depot_id: int
    pool: str
    balance: int
    ledger: int


def verify(session: so.Session) -> list[Discrepancy]:
    """Every (lot, depot, pool) whose balance differs from the sum of its movements."""
    ledger = (sa.select(Movement.lot_id, Movement.depot_id, Movement.pool,
                        sa.func.sum(Movement.quantity).label("total"))
              .group_by(Movement.lot_id, Movement.depot_id, Movement.pool).subquery())
    on = sa.and_(Balance.lot_id == ledger.c.lot_id, Balance.depot_id == ledger.c.depot_id,
                 Balance.pool == ledger.c.pool)
    left = (sa.select(Balance.lot_id, Balance.depot_id, Balance.pool, Balance.quantity,
                      sa.func.coalesce(ledger.c.total, 0))
            .outerjoin(ledger, on)
            .where(sa.or_(ledger.c.total.is_(None), Balance.quantity != ledger.c.total,
                          Balance.quantity < 0)))
    orphans = (sa.select(ledger.c.lot_id, ledger.c.depot_id, ledger.c.pool, sa.literal(0),
                         ledger.c.total)
               .outerjoin(Balance, on).where(Balance.id.is_(None), ledger.c.total != 0))
    rows = list(session.execute(left)) + list(session.execute(orphans))
    return [Discrepancy(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows
            if int(r[3]) != int(r[4]) or int(r[3]) < 0]


def depots(session: so.Session, organisation_ids: Iterable[int] | None) -> list[Depot]:
    """The depots of the organisations (every depot for ``None``), by organisation and name."""
    stmt = (sa.select(Depot).join(Depot.organisation).options(so.contains_eager(Depot.organisation))
            .order_by(Organisation.name, Depot.name))
    if organisation_ids is not None:
        stmt = stmt.where(Depot.organisation_id.in_(organisation_ids))
    return list(session.scalars(stmt))


def holds_emergency_stock(session: so.Session, depot_code: str | None, item_code: str | None) -> bool:
    """Whether the depot holds emergency stock of the item: then a receipt may swap it out."""
    if not depot_code or not item_code:
        return False
    return session.scalar(
        sa.select(sa.func.count()).select_from(Balance).join(Balance.lot).join(Lot.item).join(Balance.depot)
        .where(Depot.code == depot_code, Item.code == item_code, Balance.pool == Pool.EMERGENCY.value,
               Balance.quantity > 0)) > 0


def preview_issue(session: so.Session, ctx: Context, *, depot: Depot, item: Item, quantity: int, pool: str,
                  lot_number: str | None = None, min_remaining_days: int | None = None,
                  **issue_kwargs: Any) -> list[tuple[Lot, int]]:
    """The lots an issue would take now, and how much of each: FEFO via ``fefo_preview``; a
    named lot is tried through the posting path inside a savepoint that is always rolled back,
    so every rule (status, expiry, remaining shelf life, quantity) is checked and nothing is
    written."""
    if lot_number:
        savepoint = session.begin_nested()
        try:
            movements = issue(session, ctx, depot=depot, item=item, quantity=quantity, pool=pool,
                              lot_number=lot_number, min_remaining_days=min_remaining_days, **issue_kwargs)
            return [(m.lot, -m.quantity) for m in movements]
        finally:
            savepoint.rollback()
    picks = fefo_preview(session, depot=depot, pool=pool, item=item, quantity=quantity, today=ctx.today,
                         min_remaining_days=min_remaining_days or 0)
    return [(p.lot, p.quantity) for p in picks]


def posting_legs(session: so.Session, movement: Movement) -> list[Movement]:
    """The movement and the other legs of its posting that a reversal touches (a transfer's two)."""
    if movement.kind != MovementKind.TRANSFER:
        return [movement]
    return list(session.scalars(sa.select(Movement).where(Movement.posting_id == movement.posting_id)
                                .order_by(Movement.id)))


def stock(session: so.Session, *, organisation_ids: Iterable[int] | None, depot: Depot | None = None,
          item: Item | None = None, pool: str | None = None,
          organisation: Organisation | None = None) -> sa.Select[tuple[Balance]]:
    """Balances above zero by lot, limited to ``organisation_ids`` (None = all)."""
    stmt = (sa.select(Balance).join(Balance.lot).join(Lot.item).join(Balance.depot)
            .where(Balance.quantity > 0)
            .options(so.contains_eager(Balance.lot).contains_eager(Lot.item),
                     so.contains_eager(Balance.depot))
            .order_by(Item.code, Depot.code, Balance.pool, Lot.expiry, Lot.lot_number))
    if organisation_ids is not None:
        stmt = stmt.where(Depot.organisation_id.in_(list(organisation_ids)))
    if organisation is not None:
        stmt = stmt.where(Depot.organisation_id == organisation.id)
    if depot is not None:
        stmt = stmt.where(Balance.depot_id == depot.id)
    if item is not None:
        stmt = stmt.where(Lot.item_id == item.id)
    if pool is not None:
        stmt = stmt.where(Balance.pool == _check_pool(pool))
    return stmt


@dataclass(frozen=True)
class ItemStock:
    item: Item
    depot: Depot
    pool: str
    on_hand: int
    usable: int


def usable_by_item(session: so.Session, *, organisation_ids: Iterable[int] | None,
                   today: dt.date, category: str | None = None) -> list[ItemStock]:
    """Per item, depot and pool: all stock on hand and the part that is usable ``today``."""
    usable_qty = sa.case((Lot.usable_on(today),
                          Balance.quantity), else_=0)
    stmt = (sa.select(Item, Depot, Balance.pool, sa.func.sum(Balance.quantity), sa.func.sum(usable_qty))
            .select_from(Balance).join(Balance.lot).join(Lot.item).join(Balance.depot)
            .where(Balance.quantity > 0)
            .group_by(Item.id, Depot.id, Balance.pool)
            .order_by(Item.name, Depot.code, Balance.pool))
    if organisation_ids is not None:
        stmt = stmt.where(Depot.organisation_id.in_(list(organisation_ids)))
    if category:
        stmt = stmt.where(Item.category == category)
    return [ItemStock(i, d, p, int(q), int(u)) for i, d, p, q, u in session.execute(stmt)]


def movements(session: so.Session, *, organisation_ids: Iterable[int] | None, item: Item | None = None,
              depot: Depot | None = None, organisation: Organisation | None = None,
              kind: str | None = None, since: dt.datetime | None = None,
              until: dt.datetime | None = None, newest_first: bool = True) -> sa.Select[tuple[Movement]]:
    """Ledger rows matching the filters, limited to ``organisation_ids`` (None = all)."""
    stmt = (sa.select(Movement).join(Movement.depot).join(Movement.lot)
            .options(so.contains_eager(Movement.depot), so.contains_eager(Movement.lot).joinedload(Lot.item),
                     so.joinedload(Movement.recorded_by)))
    if organisation_ids is not None:
        stmt = stmt.where(Depot.organisation_id.in_(list(organisation_ids)))
    if item is not None:
        stmt = stmt.where(Lot.item_id == item.id)
    if depot is not None:
        stmt = stmt.where(Movement.depot_id == depot.id)
    if organisation is not None:
        stmt = stmt.where(Depot.organisation_id == organisation.id)
    if kind is not None:
        stmt = stmt.where(Movement.kind == check_choice("kind", kind, MovementKind))
    if since is not None:
        stmt = stmt.where(Movement.occurred_at >= since)
    if until is not None:
        stmt = stmt.where(Movement.occurred_at < until)
    order = (Movement.occurred_at.desc(), Movement.id.desc()) if newest_first else (Movement.occurred_at, Movement.id)
    return stmt.order_by(*order)


def stock_card(session: so.Session, *, item: Item, organisation_ids: Iterable[int] | None,
               depot: Depot | None = None) -> list[tuple[Movement, int]]:
    """An item's ledger rows, oldest first, each with the running balance after it."""
    rows = session.scalars(movements(session, organisation_ids=organisation_ids, item=item,
                                     depot=depot, newest_first=False))
    running = 0
    card = []
    for movement in rows:
        running += movement.quantity
        card.append((movement, running))
    return card
