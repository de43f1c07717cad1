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
from collections.abc import Callable, Iterable
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
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        return Fraction(repr(value))
    return Fraction(value)


def daily_rate(weekly_use: Number | None, factor: Number = 1) -> Fraction | None:
    """``r = w / 7`` (times a scenario's demand factor); ``None`` when there is no use to measure by."""
    if weekly_use is None:
        return None
    # One Fraction built from whole numbers: this runs once per coverage row, thousands a page.
    weekly, times = exact(weekly_use), exact(factor)
    rate = Fraction(weekly.numerator * times.numerator, weekly.denominator * times.denominator * 7)
    return rate if rate > 0 else None


def coverage_days(usable: int, rate: Fraction | None) -> Fraction | None:
    """``U / r``; ``None`` (unknown, never infinite) without a positive rate."""
    return None if rate is None else Fraction(usable * rate.denominator, rate.numerator)


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
    target = exact(target_days)
    # ceil((p/q)·(a/b) − U) in whole numbers: −((U·q·b − p·a) // (q·b))
    denominator = target.denominator * rate.denominator
    return max(0, -((usable * denominator - target.numerator * rate.numerator) // denominator))


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
    # The steps above in whole numbers, exactly: with r = a/b, time is counted in 1/a days
    # (q/r days = q·b of them) and quantities in 1/b units ((d − t)·r units = d − t of them).
    a, b = rate.numerator, rate.denominator
    t = 0
    at_risk = 0
    for lot in ordered:
        if lot.quantity <= 0:
            continue
        q = lot.quantity * b
        if lot.expiry is None:
            t += q
            continue
        d = ((lot.expiry - today).days + 1) * a  # usable through the end of its expiry day
        if t >= d:
            at_risk += q
        elif t + q <= d:
            t += q
        else:
            at_risk += q - (d - t)
            t = d
    return ExpiryAware(Fraction(t, a), Fraction(at_risk, b))


def weeks(days: Fraction | None) -> float | None:
    """Days as weeks with one decimal, as shown on the pages and in the API."""
    return None if days is None else round(float(days / 7), 1)


# A year of 365.25 days, in weeks.
WEEKS_PER_YEAR = Fraction(36525, 700)


def weekly_from_annual(annual: Iterable[int]) -> Fraction:
    """The weekly use of the mean of these years' use, exactly."""
    years = list(annual)
    return Fraction(sum(years), len(years)) / WEEKS_PER_YEAR


def annual_3y(annual_use: dict[int, int], year: int, deviating: Iterable[int] = ()) -> tuple[Fraction, list[int], dict[str, int]]:
    """§ 8a: weekly use from the three calendar years before ``year``.

    Each deviating year is replaced by the nearest earlier year that is not deviating itself.
    Returns (weekly use, years used, {replaced year: replacement}). ``ValueError`` names a
    missing year.
    """
    deviating = set(deviating)
    used: list[int] = []
    replaced: dict[str, int] = {}
    for wanted in (year - 3, year - 2, year - 1):
        chosen = wanted
        while chosen in deviating or chosen in used:
            chosen -= 1
        if chosen != wanted:
            replaced[str(wanted)] = chosen
        if chosen not in annual_use:
            raise ValueError(f"annual use for {chosen} is needed"
                             + (f" (in place of {wanted})" if chosen != wanted else ""))
        used.append(chosen)
    return weekly_from_annual([annual_use[y] for y in used]), sorted(used), replaced


def projection(lots: Iterable[LotQuantity], rate: Fraction | None, today: dt.date,
               days: int) -> list[tuple[dt.date, Fraction]]:
    """Usable stock at the start of each of the next ``days`` days if nothing arrives: used FEFO
    at ``rate`` a day, each lot lost at the end of its expiry day. Day 0 is ``today``."""
    remaining = {i: Fraction(lot.quantity) for i, lot in enumerate(lots) if lot.quantity > 0}
    expiry = {i: lot.expiry for i, lot in enumerate(lots)}
    order = sorted(remaining, key=lambda i: (expiry[i] is None, expiry[i] or dt.date.max))
    points = []
    for offset in range(days + 1):
        day = today + dt.timedelta(days=offset)
        for i in order:  # lost at the end of their expiry day: gone at the start of the next
            if expiry[i] is not None and expiry[i] < day:
                remaining[i] = Fraction(0)
        points.append((day, sum(remaining.values(), Fraction(0))))
        need = rate or Fraction(0)
        for i in order:
            if need <= 0:
                break
            take = min(need, remaining[i])
            remaining[i] -= take
            need -= take
    return points


def stock_on_day(lots: Iterable[LotQuantity], rate: Fraction, today: dt.date) -> Callable[[int], Fraction]:
    """``k → usable stock at the start of day k`` (day 0 is ``today``) when the lots are used
    FEFO at ``rate`` a day and each is lost at the end of its expiry day, as ``projection`` has it.

    As in ``expiry_aware``, each lot is used from the time ``start`` the lots before it are used
    up or lost until the time ``stop`` it is used up or lost itself; at the start of day ``k`` a
    lot not yet lost (``k < d``, ``d`` = days to its expiry + 1) holds
    ``q − rate · (min(max(k, start), stop) − start)``.
    """
    schedule: list[tuple[Fraction, Fraction, Fraction, int | None]] = []  # q, start, stop, d
    t = Fraction(0)
    for lot in sorted((lot for lot in lots if lot.quantity > 0),
                      key=lambda lot: (lot.expiry is None, lot.expiry or dt.date.max)):
        q = Fraction(lot.quantity)
        d = (lot.expiry - today).days + 1 if lot.expiry is not None else None
        start = t
        if d is None or t < d:
            t = t + q / rate if d is None else min(t + q / rate, Fraction(d))
        schedule.append((q, start, t, d))

    def stock(k: int) -> Fraction:
        return sum((q - rate * (min(max(Fraction(k), start), stop) - start)
                    for q, start, stop, d in schedule if d is None or k < d), Fraction(0))

    return stock
