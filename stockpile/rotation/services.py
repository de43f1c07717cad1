"""Rotation of emergency stock into daily use before it expires (DESIGN.md §5): the plan per
lot, the suggested recipients, and the rotation tasks kept from it."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.coverage import arithmetic
from stockpile.coverage import services as coverage
from stockpile.coverage.models import Baseline
from stockpile.errors import Conflict, LotExpired, LotNotUsable
from stockpile.inventory import services as inventory
from stockpile.inventory.models import (Balance, Depot, IssueFlag, Item, Lot, LotStatus, Movement,
                                        MovementKind, Organisation, Pool)
from stockpile.rotation.models import OPEN_STATES, RotationTask, TaskState

DEFAULT_MARGIN_DAYS = 28


@dataclass(frozen=True)
class EmergencyLot:
    lot_id: int
    lot_number: str
    expiry: dt.date | None
    quantity: int


@dataclass(frozen=True)
class LotPlan:
    """When one emergency lot must start moving into daily use, and what cannot make it."""

    lot: EmergencyLot
    rotate_by: dt.date | None       # start of its use; in the past = overdue
    finish_by: dt.date | None       # used up by then: expiry − margin, or the next lot's start
    absorbable: int                 # units daily use can take in time
    at_risk: int                    # units that will expire unless moved elsewhere
    reason: str


def _day(today: dt.date, offset: Fraction) -> dt.date:
    """``today`` plus ``offset`` days (rounded down), held within the calendar: a tiny daily use
    can put a start millions of days back, which no date can hold."""
    days = math.floor(offset)
    if days < (dt.date.min - today).days:
        return dt.date.min
    if days > (dt.date.max - today).days:
        return dt.date.max
    return today + dt.timedelta(days=days)


def plan_rotation(lots: Sequence[EmergencyLot], rate: Fraction | None, today: dt.date,
                  margin_days: int = DEFAULT_MARGIN_DAYS) -> list[LotPlan]:
    """Backward scheduling: from the latest-expiring lot back, each lot needs ``q / r`` days of
    operational use, finishing no later than ``expiry − margin`` and no later than the start of
    the lot scheduled after it; its start is its rotate-by date. What does not fit between today
    and its finish is at risk. Lots without expiry need no rotation. Returns plans in FEFO order.

    Without operational use (``rate`` None) nothing can be absorbed: every dated lot is at risk.
    """
    plans: list[LotPlan] = []
    next_start: Fraction | None = None
    dated = sorted((lot for lot in lots if lot.expiry is not None and lot.quantity > 0),
                   key=lambda lot: (lot.expiry, lot.lot_id), reverse=True)
    for lot in dated:
        assert lot.expiry is not None
        if rate is None:
            plans.append(LotPlan(lot, None, None, 0, lot.quantity,
                                 "No operational use of this item to rotate into: all of it expires "
                                 "unless it is transferred, its shelf life extended, or its disposal planned."))
            continue
        margin_finish = Fraction((lot.expiry - dt.timedelta(days=margin_days) - today).days)
        finish = margin_finish
        if next_start is not None and next_start < finish:
            finish = next_start
        start = finish - Fraction(lot.quantity) / rate
        rotate_by = _day(today, start)
        finish_by = _day(today, finish)
        if start >= 0:
            plans.append(LotPlan(lot, rotate_by, finish_by, lot.quantity, 0,
                                 f"{lot.quantity} units take {float(lot.quantity / rate):.1f} days of daily use."))
            next_start = start
            continue
        absorbable = min(lot.quantity, max(0, math.floor(finish * rate)))
        reason = (f"Only {absorbable} of {lot.quantity} can be used before {finish_by.isoformat()} at "
                  f"{float(rate):.1f} a day; {lot.quantity - absorbable} will expire unless moved elsewhere."
                  if finish > 0 else
                  f"No time left to use it before {finish_by.isoformat()}: later lots need the days before."
                  if finish < margin_finish else
                  f"Its expiry less the {margin_days}-day margin ({finish_by.isoformat()}) has passed: daily "
                  "use cannot take it in time.")
        plans.append(LotPlan(lot, rotate_by, finish_by, absorbable, lot.quantity - absorbable, reason))
        next_start = Fraction(0)
    plans.reverse()
    return plans


DUE_WITHIN_DAYS = 7  # a task is due when its rotate-by date falls within the coming week
_OPEN = [s.value for s in OPEN_STATES]


@dataclass(frozen=True)
class Suggestion:
    action: str                  # transfer | extend_shelf_life | plan_disposal
    quantity: int
    organisation: Organisation | None = None
    coverage_days: Fraction | None = None
    note: str = ""


@dataclass(frozen=True)
class PlannedLot:
    plan: LotPlan
    depot: Depot
    lot: Lot
    quantity: int                # the lot's emergency stock in this depot
    suggestions: tuple[Suggestion, ...] = ()

    def state(self, today: dt.date) -> str:
        return task_state(self.plan.rotate_by, today)


@dataclass(frozen=True)
class ItemRotation:
    organisation: Organisation
    item: Item
    daily_use: Fraction | None
    baseline_note: str
    lots: tuple[PlannedLot, ...]

    @property
    def at_risk(self) -> int:
        return sum(p.plan.at_risk for p in self.lots)


def task_state(rotate_by: dt.date | None, today: dt.date) -> str:
    if rotate_by is None or rotate_by < today:
        return TaskState.OVERDUE.value
    if rotate_by <= today + dt.timedelta(days=DUE_WITHIN_DAYS):
        return TaskState.DUE.value
    return TaskState.PLANNED.value


def _emergency_stock(session: so.Session, organisation_ids: Sequence[int],
                     item_id: int | None, today: dt.date) -> list[Balance]:
    """Usable emergency stock: expired lots are past rotating (they are disposed of instead)."""
    stmt = (sa.select(Balance).join(Balance.lot).join(Balance.depot)
            .where(Depot.organisation_id.in_(organisation_ids), Balance.pool == Pool.EMERGENCY.value,
                   Balance.quantity > 0, Lot.usable_on(today))
            .options(so.contains_eager(Balance.lot).joinedload(Lot.item), so.contains_eager(Balance.depot)
                     .joinedload(Depot.organisation)))
    if item_id is not None:
        stmt = stmt.where(Lot.item_id == item_id)
    return list(session.scalars(stmt).unique())


def rotation_plan(session: so.Session, organisations: Sequence[Organisation], *, today: dt.date,
                  item: Item | None = None, margin_days: int = DEFAULT_MARGIN_DAYS,
                  with_suggestions: bool = True) -> list[ItemRotation]:
    """The rotation plan of every item held in the emergency pool of ``organisations``: each lot
    scheduled backwards against the holder's operational daily use (its baseline in force), with
    suggestions for the quantity at risk. Worst (most at risk, soonest) first."""
    org_ids = [o.id for o in organisations]
    if not org_ids:
        return []
    balances = _emergency_stock(session, org_ids, item.id if item else None, today)
    groups: dict[tuple[int, int], list[Balance]] = {}
    for balance in balances:
        groups.setdefault((balance.depot.organisation_id, balance.lot.item_id), []).append(balance)
    if not groups:
        return []
    item_ids = list({i for _, i in groups})
    stored = coverage.stored_baselines(session, org_ids, today, item_ids)
    computed = coverage.computed_use(session, org_ids, today,
                                     pairs=coverage.without_stored_baseline(stored, groups))
    result = []
    for (org_id, item_id), lines in groups.items():
        baseline, reason = coverage.baseline_in_force(stored, computed, org_id, item_id)
        rate = arithmetic.daily_rate(baseline.weekly_use) if baseline else None
        # One plan per lot: a lot held in several depots is planned as one quantity, the task
        # per depot carries its own share.
        by_lot: dict[int, list[Balance]] = {}
        for balance in lines:
            by_lot.setdefault(balance.lot_id, []).append(balance)
        emergency = [EmergencyLot(lot_id, bs[0].lot.lot_number, bs[0].lot.expiry, sum(b.quantity for b in bs))
                     for lot_id, bs in by_lot.items()]
        planned = []
        for plan in plan_rotation(emergency, rate, today, margin_days):
            for balance in by_lot[plan.lot.lot_id]:
                at_risk = min(balance.quantity, math.ceil(plan.at_risk * Fraction(balance.quantity, plan.lot.quantity)))
                depot_plan = LotPlan(plan.lot, plan.rotate_by, plan.finish_by,
                                     balance.quantity - at_risk, at_risk, plan.reason)
                planned.append(PlannedLot(depot_plan, balance.depot, balance.lot, balance.quantity))
        if not planned:  # only lots without expiry: nothing to rotate
            continue
        holder = lines[0].depot.organisation
        the_item = lines[0].lot.item
        if with_suggestions and any(p.plan.at_risk for p in planned):
            planned = _with_suggestions(session, holder, the_item, planned, today, margin_days)
        note = baseline.explanation if baseline else reason
        result.append(ItemRotation(holder, the_item, rate, note, tuple(planned)))
    result.sort(key=lambda r: (-r.at_risk, min((p.plan.rotate_by or dt.date.min) for p in r.lots),
                               r.organisation.name, r.item.name))
    return result


def _with_suggestions(session: so.Session, holder: Organisation, item: Item, planned: list[PlannedLot],
                      today: dt.date, margin_days: int) -> list[PlannedLot]:
    """For each lot's quantity at risk: transfers to organisations that use the item (lowest
    coverage first, each what it can use before the lot expires), then a
    shelf-life extension and, for what is left, planned disposal."""
    users = _organisations_using(session, item, holder, today)
    taken: dict[int, Fraction] = {}
    out = []
    for planned_lot in planned:
        remaining = planned_lot.plan.at_risk
        if not remaining:
            out.append(planned_lot)
            continue
        suggestions: list[Suggestion] = []
        expiry = planned_lot.lot.expiry
        # The receiving organisation uses it directly: until the end of its expiry day.
        window = max(0, (expiry - today).days + 1) if expiry else 0
        for org, rate, days in users:
            if remaining <= 0:
                break
            quantity = min(remaining, math.floor(rate * window - taken.get(org.id, 0)))
            if quantity <= 0:
                continue
            taken[org.id] = taken.get(org.id, 0) + quantity
            remaining -= quantity
            suggestions.append(Suggestion("transfer", quantity, org, days,
                                          f"uses about {float(rate * 7):.0f} a week"))
        if remaining > 0:
            suggestions.append(Suggestion("extend_shelf_life", remaining, note=(
                "ask the manufacturer whether stability data allow a later expiry")))
            suggestions.append(Suggestion("plan_disposal", remaining, note=(
                f"if not moved or extended, it expires on {expiry.isoformat() if expiry else '—'}")))
        out.append(PlannedLot(planned_lot.plan, planned_lot.depot, planned_lot.lot, planned_lot.quantity,
                              tuple(suggestions)))
    return out


def _organisations_using(session: so.Session, item: Item, holder: Organisation,
                         today: dt.date) -> list[tuple[Organisation, Fraction, Fraction | None]]:
    """Other organisations that use ``item``, as (organisation, daily use, days of coverage),
    lowest coverage first (unknown coverage first of all).

    They are those with a baseline of their own for it, and those the holder issued it to in
    the last 13 weeks (their use then is what they received).
    """

    window_start = today - dt.timedelta(weeks=coverage.DEFAULT_WINDOW_WEEKS)
    received = dict(session.execute(
        sa.select(Movement.recipient_organisation_id, -sa.func.sum(Movement.quantity))
        .join(Movement.depot).join(Movement.lot)
        .where(Depot.organisation_id == holder.id, Lot.item_id == item.id,
               Movement.kind == MovementKind.ISSUE.value, Movement.flag == IssueFlag.NORMAL.value,
               Movement.recipient_organisation_id.is_not(None),
               Movement.occurred_at >= dt.datetime.combine(window_start, dt.time(), tzinfo=dt.timezone.utc))
        .group_by(Movement.recipient_organisation_id)).all())
    candidate_ids = set(session.scalars(sa.select(Baseline.organisation_id).where(Baseline.item_id == item.id)))
    candidate_ids |= set(received)
    candidate_ids.discard(holder.id)
    users = []
    for org in session.scalars(sa.select(Organisation).where(Organisation.id.in_(candidate_ids))):
        found = coverage.item_coverage(session, org, [item], today=today)[item.id]
        if found.baseline is not None and found.baseline.weekly_use > 0:
            rate = found.baseline.weekly_use / 7
        elif received.get(org.id, 0) > 0:
            rate = Fraction(int(received[org.id]), coverage.DEFAULT_WINDOW_WEEKS * 7)
        else:
            continue
        users.append((org, rate, found.days))
    users.sort(key=lambda u: (u[2] is not None, u[2] or 0, u[0].name))
    return users


def sync_tasks(session: so.Session, *, today: dt.date, organisations: Sequence[Organisation] | None = None,
               margin_days: int = DEFAULT_MARGIN_DAYS) -> dict[str, int]:
    """Create and update rotation tasks from the plan; one open task per emergency lot and depot.

    An open task gets the plan's quantity, dates and state (``due`` within the week, ``overdue``
    once its rotate-by date has passed); a task whose lot has left the emergency pool (used,
    moved, expired or no longer available) is cancelled. Done and cancelled tasks stay as they
    are. Returns counts of what changed. Idempotent: running it twice changes nothing more.
    """
    if organisations is None:
        # Holders of emergency stock, and those with open tasks (their last lot may have gone).
        holders = sa.select(Depot.organisation_id).join(Balance, Balance.depot_id == Depot.id).where(
            Balance.pool == Pool.EMERGENCY.value, Balance.quantity > 0)
        with_open_tasks = sa.select(RotationTask.organisation_id).where(
            RotationTask.state.in_(_OPEN))
        organisations = list(session.scalars(
            sa.select(Organisation).where(sa.or_(Organisation.id.in_(holders), Organisation.id.in_(with_open_tasks)))
            .order_by(Organisation.id)))
    org_ids = [o.id for o in organisations]
    # One sync of an organisation at a time (the scheduler and a page may sync together): the
    # second waits here, then reads the tasks the first created instead of adding them again.
    # SQLite has one writer at a time anyway.
    session.execute(sa.select(Organisation.id).where(Organisation.id.in_(org_ids))
                    .order_by(Organisation.id).with_for_update())
    plans = rotation_plan(session, organisations, today=today, margin_days=margin_days, with_suggestions=False)
    wanted = {(p.lot.id, p.depot.id): (rotation, p) for rotation in plans for p in rotation.lots}
    open_tasks = {(t.lot_id, t.depot_id): t for t in session.scalars(
        sa.select(RotationTask).where(RotationTask.organisation_id.in_(org_ids),
                                      RotationTask.state.in_(_OPEN)))}
    counts = {"created": 0, "updated": 0, "cancelled": 0}
    for key, task in open_tasks.items():
        if key not in wanted:
            task.state = TaskState.CANCELLED.value
            task.reason = "The lot is no longer in the emergency pool (used, moved, expired or held)."
            counts["cancelled"] += 1
    for key, (rotation, planned) in wanted.items():
        plan = planned.plan
        values = {"quantity": planned.quantity, "at_risk": plan.at_risk, "rotate_by": plan.rotate_by,
                  "finish_by": plan.finish_by, "state": task_state(plan.rotate_by, today), "reason": plan.reason}
        task = open_tasks.get(key)
        if task is None:
            session.add(RotationTask(organisation_id=rotation.organisation.id, depot_id=planned.depot.id,
                                     item_id=rotation.item.id, lot_id=planned.lot.id, **values))
            counts["created"] += 1
        elif any(getattr(task, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(task, name, value)
            counts["updated"] += 1
    session.flush()
    return counts


def emergency_on_hand(session: so.Session, task: RotationTask) -> int:
    """What is left of the task's lot in the emergency pool of its depot."""
    return session.scalar(sa.select(Balance.quantity).where(
        Balance.lot_id == task.lot_id, Balance.depot_id == task.depot_id,
        Balance.pool == Pool.EMERGENCY.value)) or 0


def complete_task(session: so.Session, ctx: inventory.Context, *, task: RotationTask,
                  quantity: int | None = None) -> list[Movement]:
    """Carry out a rotation task: move the lot from the emergency to the operational pool of the
    same depot through the ledger (all of what is left in the emergency pool, or ``quantity``),
    and record who did it. Refuses a task that is done or cancelled (``Conflict``), a lot that has
    expired or is held (``LotExpired``, ``LotNotUsable``) and a task with nothing left to move."""
    if task.state not in _OPEN:
        raise Conflict(f"Rotation task {task.id} is {task.state}; only open tasks can be carried out.",
                       code="task_closed")
    lot = task.lot
    # Daily use cannot take what may not be used: such stock is disposed of or released first.
    if lot.status != LotStatus.AVAILABLE:
        raise LotNotUsable(f"Lot {lot.lot_number} is {lot.status}: it cannot go into daily use. Release it "
                           "first, or dispose of it.", fields={"lot_number": [f"Lot is {lot.status}."]})
    if lot.expiry is not None and lot.expiry < ctx.today:
        raise LotExpired(f"Lot {lot.lot_number} expired on {lot.expiry.isoformat()}: dispose of it instead "
                         "of moving it into daily use.", fields={"lot_number": [f"Expired {lot.expiry.isoformat()}."]})
    on_hand = emergency_on_hand(session, task)
    if quantity is None and on_hand == 0:
        raise Conflict(f"No emergency stock of lot {lot.lot_number} is left in {task.depot.code}: nothing to "
                       "move. The task is cancelled when the rotation list is next refreshed.",
                       code="nothing_to_rotate")
    moving = quantity if quantity is not None else on_hand
    movements = inventory.transfer(
        session, ctx, from_depot=task.depot, from_pool=Pool.EMERGENCY.value, to_depot=task.depot,
        to_pool=Pool.OPERATIONAL.value, item=task.item, quantity=moving, lot_number=task.lot.lot_number,
        reference=f"Rotation task {task.id}", reason="Rotation of emergency stock into daily use")
    task.state = TaskState.DONE.value
    task.completed_at = ctx.occurred_at
    task.completed_by_id = ctx.user_id
    task.posting_id = movements[0].posting_id
    session.flush()
    return movements


def organisations_with_rotation(session: so.Session, readable: Iterable[int] | None) -> list[Organisation]:
    """The organisations among ``readable`` (None = all) that hold emergency stock or have
    rotation tasks, by name."""
    holders = (sa.select(Depot.organisation_id).join(Balance, Balance.depot_id == Depot.id)
               .where(Balance.pool == Pool.EMERGENCY.value, Balance.quantity > 0))
    with_tasks = sa.select(RotationTask.organisation_id)
    stmt = (sa.select(Organisation)
            .where(sa.or_(Organisation.id.in_(holders), Organisation.id.in_(with_tasks)))
            .order_by(Organisation.name))
    if readable is not None:
        stmt = stmt.where(Organisation.id.in_(list(readable)))
    return list(session.scalars(stmt))


def open_tasks(session: so.Session, organisation: Organisation, *,
               item: Item | None = None) -> dict[tuple[int, int], RotationTask]:
    """The open rotation tasks of ``organisation`` (of ``item``) by (lot id, depot id), with
    their lot, depot and item."""
    stmt = (sa.select(RotationTask)
            .where(RotationTask.organisation_id == organisation.id, RotationTask.state.in_(_OPEN))
            .options(so.joinedload(RotationTask.lot), so.joinedload(RotationTask.depot),
                     so.joinedload(RotationTask.item)))
    if item is not None:
        stmt = stmt.where(RotationTask.item_id == item.id)
    return {(t.lot_id, t.depot_id): t for t in session.scalars(stmt)}


@dataclass(frozen=True)
class ListedLot:
    """One emergency lot in one depot as the rotation list shows it: its plan as of today, and
    the open task that carries it out once the plan has been kept as one (``sync_tasks``)."""

    item: Item
    planned: PlannedLot
    state: str                   # planned, due or overdue today
    task: RotationTask | None

    @property
    def lot(self) -> Lot:
        return self.planned.lot

    @property
    def depot(self) -> Depot:
        return self.planned.depot

    @property
    def quantity(self) -> int:
        return self.planned.quantity

    @property
    def rotate_by(self) -> dt.date | None:
        return self.planned.plan.rotate_by

    @property
    def finish_by(self) -> dt.date | None:
        return self.planned.plan.finish_by

    @property
    def at_risk(self) -> int:
        return self.planned.plan.at_risk

    @property
    def reason(self) -> str:
        return self.planned.plan.reason


def lots_by_state(plans: Sequence[ItemRotation], tasks: dict[tuple[int, int], RotationTask],
                  today: dt.date) -> dict[str, list[ListedLot]]:
    """Every lot of ``plans`` under its state today (planned, due, overdue) with its task from
    ``tasks`` (by lot id and depot id, see ``open_tasks``); soonest rotate-by date first (none
    at all before any). Reads nothing: what is shown is the plan now, whenever tasks were kept."""
    groups: dict[str, list[ListedLot]] = {s: [] for s in _OPEN}
    listed = [ListedLot(item_plan.item, p, p.state(today), tasks.get((p.lot.id, p.depot.id)))
              for item_plan in plans for p in item_plan.lots]
    listed.sort(key=lambda r: (r.rotate_by is not None, r.rotate_by or dt.date.min, r.lot.expiry or dt.date.max,
                               r.item.name, r.lot.lot_number, r.depot.code))
    for row in listed:
        groups[row.state].append(row)
    return groups


def done_tasks(session: so.Session, organisation: Organisation, *, since: dt.date,
               limit: int) -> list[tuple[RotationTask, int]]:
    """The ``limit`` tasks of ``organisation`` most recently carried out on or after ``since``,
    newest first, each with the quantity its posting moved."""
    start = dt.datetime.combine(since, dt.time(), tzinfo=dt.timezone.utc)
    tasks = list(session.scalars(
        sa.select(RotationTask)
        .where(RotationTask.organisation_id == organisation.id, RotationTask.state == TaskState.DONE.value,
               RotationTask.completed_at >= start)
        .options(so.joinedload(RotationTask.lot), so.joinedload(RotationTask.depot),
                 so.joinedload(RotationTask.item), so.joinedload(RotationTask.completed_by))
        .order_by(RotationTask.completed_at.desc(), RotationTask.id.desc()).limit(limit)))
    postings = [t.posting_id for t in tasks if t.posting_id]
    moved = dict(session.execute(
        sa.select(Movement.posting_id, sa.func.sum(Movement.quantity))
        .where(Movement.posting_id.in_(postings), Movement.quantity > 0)
        .group_by(Movement.posting_id)).all()) if postings else {}
    return [(t, int(moved.get(t.posting_id, 0) or 0)) for t in tasks]


def visible_tasks(readable: Iterable[int] | None, *, organisation: Organisation | None = None,
                  item: Item | None = None, state: str | None = None) -> sa.Select[tuple[RotationTask]]:
    """Rotation tasks of the organisations a user may read (None = all), narrowed to
    ``organisation``, ``item`` and ``state``; soonest rotate-by date first (none at all before
    any), then the lot's expiry."""
    stmt = (sa.select(RotationTask).join(RotationTask.lot)
            .options(so.contains_eager(RotationTask.lot), so.joinedload(RotationTask.organisation),
                     so.joinedload(RotationTask.depot), so.joinedload(RotationTask.item),
                     so.joinedload(RotationTask.completed_by))
            .order_by(RotationTask.rotate_by.is_(None).desc(), RotationTask.rotate_by, Lot.expiry,
                      RotationTask.id))
    if organisation is not None:
        stmt = stmt.where(RotationTask.organisation_id == organisation.id)
    if readable is not None:
        stmt = stmt.where(RotationTask.organisation_id.in_(list(readable)))
    if item is not None:
        stmt = stmt.where(RotationTask.item_id == item.id)
    if state is not None:
        stmt = stmt.where(RotationTask.state == state)
    return stmt


def receiving_depot(session: so.Session, organisation: Organisation) -> Depot | None:
    """Where stock transferred to ``organisation`` goes unless someone chooses: its first depot
    by code (None if it has none)."""
    return session.scalar(sa.select(Depot).where(Depot.organisation_id == organisation.id)
                          .order_by(Depot.code).limit(1))


def open_task_for(session: so.Session, *, today: dt.date, organisation: Organisation, lot_id: int,
                  depot_id: int) -> RotationTask:
    """The open rotation task of an emergency lot in a depot, after bringing the organisation's
    tasks in step with today's plan (the hourly run may not have been since the lot arrived).
    ``Conflict`` when the plan has nothing to rotate there (the lot was used, moved or held)."""
    sync_tasks(session, today=today, organisations=[organisation])
    task = session.scalar(sa.select(RotationTask).where(
        RotationTask.organisation_id == organisation.id, RotationTask.lot_id == lot_id,
        RotationTask.depot_id == depot_id, RotationTask.state.in_([s.value for s in OPEN_STATES])))
    if task is None:
        raise Conflict("This lot has nothing to rotate any more: it is no longer in the emergency pool "
                       "there, or it is held.", code="nothing_to_rotate")
    return task
