"""The numbers of DESIGN.md §3, as plain functions of stock, use and dates.

Coverage turns usable stock into days (and weeks) of normal use; expiry-aware coverage runs the
stock forward FEFO at the daily rate and counts what expires before it can be used. Arithmetic
is exact (``Fraction``) so a lot that is used up exactly on its expiry day is not called at risk
by a rounding error; results are converted to floats only when reported.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

Number = int | float | Decimal | Fraction


class Status(enum.StrEnum):
    BELOW_MIN = "below_min"
    BELOW_TARGET = "below_target"
    OK = "ok"
    OVERSTOCK = "overstock"
    NO_BASELINE = "no_baseline"


def exact(value: Number) -> Fraction:
    """A number as an exact fraction; floats via their shortest decimal form (400.1 → 4001/10)."""
    if isinstance(value, float):
        return Fraction(repr(value))
    return Fraction(value)


def daily_rate(weekly_use: Number | None, factor: Number = 1) -> Fraction | None:
    """``r = w / 7`` (times a scenario's demand factor); ``None`` when there is no use to measure by."""
    if weekly_use is None:
        return None
    rate = exact(weekly_use) * exact(factor) / 7
    return rate if rate > 0 else None


def coverage_days(usable: int, rate: Fraction | None) -> Fraction | None:
    """``U / r``; ``None`` (unknown, never infinite) without a positive rate."""
    return None if rate is None else Fraction(usable) / rate


def status(days: Fraction | None, min_days: Number, target_days: Number,
           max_days: Number | None = None) -> Status:
    if days is None:
        return Status.NO_BASELINE
    if days < exact(min_days):
        return Status.BELOW_MIN
    if days < exact(target_days):
        return Status.BELOW_TARGET
    if max_days is not None and days > exact(max_days):
        return Status.OVERSTOCK
    return Status.OK


def shortfall(usable: int, rate: Fraction | None, target_days: Number) -> int | None:
    """Units missing to reach the target: ``max(0, ceil(target_days · r − U))``."""
    if rate is None:
        return None
    return max(0, math.ceil(exact(target_days) * rate - usable))


@dataclass(frozen=True)
class LotQuantity:
    expiry: dt.date | None
    quantity: int


@dataclass(frozen=True)
class ExpiryAware:
    days: Fraction
    at_risk: Fraction

    @property
    def at_risk_units(self) -> int:
        """Quantity at risk of expiry, rounded to whole units (half up)."""
        return math.floor(self.at_risk + Fraction(1, 2))


def expiry_aware(lots: Iterable[LotQuantity], rate: Fraction | None, today: dt.date) -> ExpiryAware | None:
    """Days until usable stock runs out at rate ``r`` if nothing arrives, FEFO, lots lost at the
    end of their expiry day; and the quantity that expires before it can be used.

    ``lots`` are the usable lots (available, not expired on ``today``). Lots expiring on the
    same day are taken one after the other, so use is never counted twice.
    """
    if rate is None:
        return None
    ordered = sorted(lots, key=lambda lot: (lot.expiry is None, lot.expiry or dt.date.max))
    t = Fraction(0)
    at_risk = Fraction(0)
    for lot in ordered:
        if lot.quantity <= 0:
            continue
        q = Fraction(lot.quantity)
        if lot.expiry is None:
            t += q / rate
            continue
        d = (lot.expiry - today).days + 1  # usable through the end of its expiry day
        if t >= d:
            at_risk += q
        elif t + q / rate <= d:
            t += q / rate
        else:
            used = (d - t) * rate
            at_risk += q - used
            t = Fraction(d)
    return ExpiryAware(t, at_risk)


def weeks(days: Fraction | None) -> float | None:
    """Days as weeks with one decimal, as shown on the pages and in the API."""
    return None if days is None else round(float(days / 7), 1)
