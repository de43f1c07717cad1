"""How coverage is shown: the figures of a row at a daily rate, the projection of usable stock
as a chart (SVG coordinates for the item page's template), and the number formats of the pages."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from flask_babel import format_date, format_decimal
from flask_babel import gettext as _

from stockpile.coverage import arithmetic
from stockpile.coverage.arithmetic import ExpiryAware, LotQuantity, Status
from stockpile.coverage.services import CoverageRow

# The chart shows at least half a year and at most two years ahead.
MIN_CHART_WEEKS, DEFAULT_CHART_WEEKS, MAX_CHART_WEEKS = 4, 26, 104


def format_weeks(days: Fraction | None) -> str:
    """Days as weeks with one decimal (DESIGN.md §3), or a dash when unknown."""
    weeks = arithmetic.weeks(days)
    return "—" if weeks is None else format_decimal(weeks, format="#,##0.0")


def format_days(days: Fraction | Decimal | float | None, exact: bool = False) -> str:
    """Days with one decimal; ``exact`` keeps up to four (policy figures such as 91.3125)."""
    if days is None:
        return "—"
    return format_decimal(float(days), format="#,##0.####" if exact else "#,##0.0")


def format_use(value: Fraction | Decimal | float | None) -> str:
    """Use per week or day: whole units from 100 up, fewer decimals the larger the figure."""
    if value is None:
        return "—"
    number = float(value)
    pattern = "#,##0" if abs(number) >= 100 else "#,##0.#" if abs(number) >= 10 else "#,##0.##"
    return format_decimal(number, format=pattern)


@dataclass(frozen=True)
class Figures:
    """The numbers of DESIGN.md §3 for one row at one daily rate."""

    rate: Fraction | None
    days: Fraction | None
    expiry: ExpiryAware | None
    status: Status
    shortfall: int | None


def figures(row: CoverageRow, rate: Fraction | None) -> Figures:
    days = arithmetic.coverage_days(row.usable, rate)
    return Figures(rate, days, arithmetic.expiry_aware(row.lots, rate, row.evaluated_on),
                   arithmetic.status(days, row.min_days, row.target_days, row.max_days),
                   arithmetic.shortfall(row.usable, rate, row.target_days))


@dataclass(frozen=True)
class Drop:
    """Stock lost at the start of ``day`` because lots expired at the end of the day before."""

    day: int
    expired_on: dt.date
    lost: Fraction
    before: Fraction
    after: Fraction


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    rate: Fraction | None
    starts: list[Fraction]  # usable stock at the start of each day, day 0 = the evaluation date
    vertices: list[tuple[Fraction, Fraction]]  # (day, units): use within a day, drops at its start
    drops: list[Drop]
    runs_out: dt.date | None
    below_min: dt.date | None

    @property
    def lost(self) -> int:
        return math.floor(sum((d.lost for d in self.drops), Fraction(0)) + Fraction(1, 2))


def projected_series(key: str, label: str, lots: Sequence[LotQuantity], rate: Fraction | None,
                     today: dt.date, days: int, min_units: Fraction | None) -> Series:
    """The projection of ``arithmetic.projection`` as a path: stock falls by ``rate`` through each
    day and drops straight down at the start of a day where lots expired the day before."""
    points = arithmetic.projection(lots, rate, today, days)
    starts = [stock for _day, stock in points]
    use = rate or Fraction(0)
    vertices: list[tuple[Fraction, Fraction]] = [(Fraction(0), starts[0])]
    drops: list[Drop] = []
    runs_out = below_min = None
    for k in range(1, len(starts)):
        end_of_previous = starts[k - 1] - min(use, starts[k - 1])
        vertices.append((Fraction(k), end_of_previous))
        if starts[k] < end_of_previous:
            drops.append(Drop(k, today + dt.timedelta(days=k - 1), end_of_previous - starts[k],
                              end_of_previous, starts[k]))
            vertices.append((Fraction(k), starts[k]))
    for k, stock in enumerate(starts):
        if below_min is None and min_units is not None and stock < min_units:
            below_min = today + dt.timedelta(days=k)
        if runs_out is None and stock == 0:
            runs_out = today + dt.timedelta(days=k)
    return Series(key, label, rate, starts, _without_collinear(vertices), drops, runs_out, below_min)


def _without_collinear(vertices: list[tuple[Fraction, Fraction]]) -> list[tuple[Fraction, Fraction]]:
    """Drop the points in the middle of straight stretches (exact arithmetic: no tolerance)."""
    kept: list[tuple[Fraction, Fraction]] = []
    for point in vertices:
        while len(kept) >= 2:
            (ax, ay), (bx, by) = kept[-2], kept[-1]
            if (bx - ax) * (point[1] - by) != (by - ay) * (point[0] - bx):
                break
            kept.pop()
        if not kept or kept[-1] != point:
            kept.append(point)
    return kept


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * magnitude:
            return multiple * magnitude
    return 10 * magnitude


@dataclass(frozen=True)
class Chart:
    """A line chart of projected usable stock, in SVG user units (the template draws it)."""

    days: int
    today: dt.date
    series: list[Series]
    lines: list[tuple[str, str, Fraction]]  # (key, label, units): minimum and target
    y_max: float
    y_step: float
    width: int = 960
    height: int = 330
    left: int = 70
    right: int = 16
    top: int = 14
    bottom: int = 34

    def x(self, day: float | Fraction) -> float:
        return round(self.left + float(day) / self.days * (self.width - self.left - self.right), 2)

    def y(self, units: float | Fraction) -> float:
        return round(self.top + (1 - float(units) / self.y_max) * (self.height - self.top - self.bottom), 2)

    def path(self, series: Series) -> str:
        return " ".join(f"{self.x(d)},{self.y(u)}" for d, u in series.vertices)

    @property
    def y_ticks(self) -> list[tuple[float, str]]:
        count = round(self.y_max / self.y_step)
        return [(self.y(i * self.y_step), format_decimal(i * self.y_step, format="#,##0.##"))
                for i in range(count + 1)]

    @property
    def x_ticks(self) -> list[tuple[float, str, bool]]:
        """Weekly grid lines; every few weeks labelled with the date: (x, label, labelled)."""
        weeks = self.days // 7
        every = 2 if weeks <= 16 else 4 if weeks <= 32 else 8 if weeks <= 64 else 13
        pattern = "d MMM" if weeks <= 32 else "MMM yyyy"
        return [(self.x(w * 7), format_date(self.today + dt.timedelta(weeks=w), pattern), w % every == 0)
                for w in range(weeks + 1)]

    @property
    def end(self) -> dt.date:
        return self.today + dt.timedelta(days=self.days)

    @property
    def weekly(self) -> list[tuple[int, dt.date, list[Fraction]]]:
        """Stock at the start of each week per series, for the table under the chart."""
        return [(w, self.today + dt.timedelta(weeks=w), [s.starts[w * 7] for s in self.series])
                for w in range(self.days // 7 + 1)]


def chart_weeks(row: CoverageRow, rate: Fraction | None) -> int:
    """26 weeks, or as long as the stock lasts at normal use (expiry counted), up to 104."""
    if rate is not None:
        lasts = arithmetic.expiry_aware(row.lots, rate, row.evaluated_on)
        end = float(lasts.days) if lasts else 0.0
    else:  # no use to measure by: show until the last lot with an expiry is gone
        end = max(((lot.expiry - row.evaluated_on).days + 1 for lot in row.lots if lot.expiry), default=0)
    return max(DEFAULT_CHART_WEEKS, min(MAX_CHART_WEEKS, math.ceil((end + 14) / 7)))


def build_chart(row: CoverageRow, normal_rate: Fraction | None, scenario_rate: Fraction | None,
                scenario_label: str | None, weeks: int) -> Chart:
    days = weeks * 7
    today = row.evaluated_on
    min_units = row.min_days * normal_rate if normal_rate is not None else None
    series = [projected_series("normal", _("Normal use"), row.lots, normal_rate, today, days, min_units)]
    if scenario_rate is not None and scenario_label:
        # Under a scenario the minimum counts days of the scenario's use, as its status does.
        series.append(projected_series("scenario", scenario_label, row.lots, scenario_rate, today, days,
                                       row.min_days * scenario_rate))
    lines: list[tuple[str, str, Fraction]] = []
    if normal_rate is not None:
        lines.append(("min", _("Minimum: %(days)s days of normal use", days=format_days(row.min_days, True)),
                      row.min_days * normal_rate))
        if row.target_days != row.min_days:
            lines.append(("target", _("Target: %(days)s days", days=format_days(row.target_days, True)),
                          row.target_days * normal_rate))
    highest = max([float(s.starts[0]) for s in series] + [float(units) for _k, _l, units in lines] + [1.0])
    step = _nice_step(highest * 1.08 / 5)
    return Chart(days, today, series, lines, y_max=math.ceil(highest * 1.08 / step) * step, y_step=step)
