"""FEFO allocation (DESIGN.md §5): which lots a withdrawal takes, and how much of each."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.errors import InsufficientStock
from stockpile.inventory.models import Balance, Lot

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
            if b.lot.usable_on(cutoff)]


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
