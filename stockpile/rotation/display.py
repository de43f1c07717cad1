"""How rotation is drawn: each emergency lot of an item as a bar on a timeline, from the day its
use must start to the day it must be used up, with the time already lost and the safety margin
before expiry (SVG units for the timeline page's template)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask_babel import format_date

from stockpile.rotation import services as rotation


@dataclass(frozen=True)
class Segment:
    x: float
    width: float
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class TimelineRow:
    planned: rotation.PlannedLot
    y: float
    use: Segment | None        # daily use still possible: from today (or later) to the finish
    lost: Segment | None       # time already gone: what should have been used by now is at risk
    margin: Segment | None     # the safety margin between the finish and the expiry
    expiry_x: float | None
    note_x: float = 0          # where the rotate-by date is written beside the bar …
    note_anchor: str = "start"  # … after it, or before it near the right edge


@dataclass(frozen=True)
class Timeline:
    """Each emergency lot as a bar from its rotate-by date to its finish-by date, in SVG units."""

    start: dt.date
    end: dt.date
    today: dt.date
    rows: list[TimelineRow]
    width: int = 900
    left: int = 200
    right: int = 20
    top: int = 34
    row_height: int = 38
    bar_height: int = 18
    bottom: int = 14

    @property
    def height(self) -> int:
        return self.top + self.row_height * max(1, len(self.rows)) + self.bottom

    @property
    def days(self) -> int:
        return max(1, (self.end - self.start).days)

    def x(self, day: dt.date) -> float:
        day = min(max(day, self.start), self.end)
        return round(self.left + (day - self.start).days / self.days * (self.width - self.left - self.right), 2)

    @property
    def today_x(self) -> float:
        return self.x(self.today)

    @property
    def ticks(self) -> list[tuple[float, str]]:
        """Month starts (every month, quarter or year, by the span), labelled."""
        months = self.days / 30.4
        step = 1 if months <= 15 else 3 if months <= 40 else 12
        pattern = "MMM yyyy" if step < 12 else "yyyy"
        first = dt.date(self.start.year, self.start.month, 1)
        ticks = []
        month_index = first.year * 12 + first.month - 1
        month_index += (-month_index) % step
        while True:
            day = dt.date(month_index // 12, month_index % 12 + 1, 1)
            if day > self.end:
                break
            if day >= self.start:
                ticks.append((self.x(day), format_date(day, pattern)))
            month_index += step
        return ticks


NOTE_WIDTH = 210  # room for "rotate by 2027-01-31 · 7,998 at risk" beside a bar, in SVG units


def _segment(timeline_x: Any, start: dt.date, end: dt.date) -> Segment | None:
    if end <= start:
        return None
    x0, x1 = timeline_x(start), timeline_x(end)
    return Segment(x0, round(max(x1 - x0, 1.5), 2), start, end) if x1 > x0 else None


def build_timeline(item_plan: rotation.ItemRotation | None, today: dt.date) -> Timeline:
    lots = list(item_plan.lots) if item_plan else []
    # The chart starts a little before the earliest rotate-by date (at most a year back: a start
    # further back only says "long overdue", which the table says too) and ends after the last expiry.
    starts = [p.plan.rotate_by for p in lots if p.plan.rotate_by]
    ends = [p.lot.expiry for p in lots if p.lot.expiry]
    earliest = max(min([today, *starts]), today - dt.timedelta(days=365))
    start = earliest - dt.timedelta(days=14)
    end = max([today + dt.timedelta(days=90), *ends]) + dt.timedelta(days=21)
    frame = Timeline(start, end, today, [])
    rows = []
    for n, planned in enumerate(lots):
        plan, expiry = planned.plan, planned.lot.expiry
        y = frame.top + n * frame.row_height + (frame.row_height - frame.bar_height) / 2
        expiry_x = frame.x(expiry) if expiry else None
        if plan.rotate_by is None or plan.finish_by is None:
            # Nothing can be used: the whole time to expiry is lost.
            use, margin, lost = None, None, _segment(frame.x, today, expiry) if expiry else None
        else:
            use = _segment(frame.x, max(plan.rotate_by, today), plan.finish_by)
            lost = _segment(frame.x, plan.rotate_by, min(today, plan.finish_by)) if plan.at_risk else None
            margin = _segment(frame.x, plan.finish_by, expiry) if expiry else None
        drawn = [seg for seg in (lost, use, margin) if seg is not None]
        first = min([seg.x for seg in drawn], default=frame.today_x)
        last = max([seg.x + seg.width for seg in drawn] + ([expiry_x + 6] if expiry_x is not None else []),
                   default=frame.today_x)
        if last + NOTE_WIDTH <= frame.width - frame.right or first - NOTE_WIDTH < frame.left:
            note_x, anchor = last + 6, "start"
        else:
            note_x, anchor = first - 6, "end"
        rows.append(TimelineRow(planned, y, use, lost, margin, expiry_x, note_x, anchor))
    return Timeline(start, end, today, rows)
