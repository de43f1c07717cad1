"""FEFO allocation (DESIGN.md §5): which lots a withdrawal takes, and how much of each."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.errors import InsufficientStock
from stockpile.inventory.models import Balance, Lot, LotStatus

# Lots without expiry go last; this date sorts after every real one.
_NO_EXPIRY = dt.date.max


@dataclass(frozen=True)
class Pick:
    balance: Balance
    quantity: int

    @property
    def lot(self) -> Lot:
        return self.balance.lot


def fefo_key(balance: Balance) -> tuple[dt.date, dt.datetime, int]:
    """Expiry first (no expiry last), then the lot's receipt time, then lot id."""
    lot = balance.lot
    return (lot.expiry or _NO_EXPIRY, lot.received_at, lot.id)


def stock_lines(
    session: so.Session, *, depot_id: int, pool: str, item_id: int, lock: bool = False
) -> list[Balance]:
    """Balances above zero of one item in one depot and pool, in FEFO order.

    With ``lock`` the rows are locked (``SELECT … FOR UPDATE``) in id order, so two postings
    against the same stock queue behind each other instead of deadlocking.
    """
    stmt = (
        sa.select(Balance)
        .join(Balance.lot)
        .where(Balance.depot_id == depot_id, Balance.pool == pool,
               Lot.item_id == item_id, Balance.quantity > 0)
        .options(so.contains_eager(Balance.lot))
        .order_by(Balance.id)
    )
    if lock:
        stmt = stmt.with_for_update(of=Balance).execution_options(populate_existing=True)
    return sorted(session.scalars(stmt).unique(), key=fefo_key)


def usable(balances: Sequence[Balance], today: dt.date, min_remaining_days: int = 0) -> list[Balance]:
    """The balances FEFO may take from: available lots whose expiry is on or after the cut-off."""
    cutoff = today + dt.timedelta(days=min_remaining_days)
    return [b for b in balances
            if b.lot.status == LotStatus.AVAILABLE and (b.lot.expiry is None or b.lot.expiry >= cutoff)]


def describe_lots(balances: Sequence[Balance]) -> str:
    parts = [f"{b.lot.lot_number}: {b.quantity}"
             + (f" (expires {b.lot.expiry.isoformat()})" if b.lot.expiry else "")
             for b in balances]
    return ", ".join(parts) if parts else "no lots"


def allocate(
    balances: Sequence[Balance], quantity: int, today: dt.date, min_remaining_days: int = 0
) -> list[Pick]:
    """Split ``quantity`` across the usable lots of ``balances`` in FEFO order.

    Raises ``InsufficientStock`` (with the usable quantity and lots) when they cannot cover it.
    """
    candidates = sorted(usable(balances, today, min_remaining_days), key=fefo_key)
    available = sum(b.quantity for b in candidates)
    if available < quantity:
        held_back = sum(b.quantity for b in balances) - available
        message = (f"Only {available} usable, {quantity} requested. Usable lots: "
                   f"{describe_lots(candidates)}.")
        if held_back:
            message += (f" {held_back} more are held in lots that are expired, quarantined, "
                        "recalled or too close to expiry.")
        raise InsufficientStock(
            message,
            fields={"quantity": [f"At most {available} can be issued."]},
            details={"available": available, "requested": quantity,
                     "lots": [{"lot_number": b.lot.lot_number,
                               "expiry": b.lot.expiry.isoformat() if b.lot.expiry else None,
                               "quantity": b.quantity} for b in candidates]},
        )
    picks: list[Pick] = []
    remaining = quantity
    for balance in candidates:
        if remaining == 0:
            break
        take = min(balance.quantity, remaining)
        picks.append(Pick(balance, take))
        remaining -= take
    return picks


# --- rotation of emergency stock (DESIGN.md §5) ----------------------------------------------

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
        finish = Fraction((lot.expiry - dt.timedelta(days=margin_days) - today).days)
        if next_start is not None and next_start < finish:
            finish = next_start
        start = finish - Fraction(lot.quantity) / rate
        rotate_by = today + dt.timedelta(days=math.floor(start))
        finish_by = today + dt.timedelta(days=math.floor(finish))
        if start >= 0:
            plans.append(LotPlan(lot, rotate_by, finish_by, lot.quantity, 0,
                                 f"{lot.quantity} units take {float(lot.quantity / rate):.1f} days of daily use."))
            next_start = start
            continue
        absorbable = min(lot.quantity, max(0, math.floor(finish * rate)))
        reason = (f"Only {absorbable} of {lot.quantity} can be used before {finish_by.isoformat()} at "
                  f"{float(rate):.1f} a day; {lot.quantity - absorbable} will expire unless moved elsewhere."
                  if finish > 0 else
                  f"No time left to use it before {finish_by.isoformat()}: later lots need the days before.")
        plans.append(LotPlan(lot, rotate_by, finish_by, absorbable, lot.quantity - absorbable, reason))
        next_start = Fraction(0)
    plans.reverse()
    return plans
