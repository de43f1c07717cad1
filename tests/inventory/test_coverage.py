"""DESIGN.md §3 worked by hand. today = 2026-11-23."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

from stockpile.inventory.coverage import (LotQuantity, Status, coverage_days, daily_rate,
                                          expiry_aware, shortfall, status, weeks)

TODAY = dt.date(2026, 11, 23)


def day(n: int) -> dt.date:
    """The date n days after today (n = 0 is today)."""
    return TODAY + dt.timedelta(days=n)


def test_coverage_of_the_ppe_duty_example():
    # w = 400/week → r = 400/7 a day; U = 5200 → 5200 · 7 / 400 = 91 days = 13.0 weeks.
    r = daily_rate(400)
    days = coverage_days(5200, r)
    assert days == 91 and weeks(days) == 13.0
    # 91 < 91.3125 (a quarter of a year of normal use) → below the minimum.
    assert status(days, 91.3125, 91.3125) is Status.BELOW_MIN
    # target · r − U = 91.3125 · 400/7 − 5200 = 5217.857… − 5200 = 17.857… → 18 units.
    assert shortfall(5200, r, 91.3125) == 18


def test_status_boundaries():
    r = daily_rate(70)  # 10 a day
    assert status(coverage_days(209, r), 21, 28) is Status.BELOW_MIN        # 20.9 days
    assert status(coverage_days(210, r), 21, 28) is Status.BELOW_TARGET     # exactly 21: not below min
    assert status(coverage_days(280, r), 21, 28) is Status.OK               # exactly the target
    assert status(coverage_days(400, r), 21, 28, 40) is Status.OK           # exactly max is not over
    assert status(coverage_days(401, r), 21, 28, 40) is Status.OVERSTOCK


def test_zero_or_missing_baseline_is_no_baseline_never_ok():
    for w in (0, None, 0.0):
        r = daily_rate(w)
        assert r is None
        assert coverage_days(1000, r) is None
        assert status(coverage_days(1000, r), 14, 14) is Status.NO_BASELINE
        assert shortfall(1000, r, 14) is None
        assert expiry_aware([LotQuantity(day(10), 5)], r, TODAY) is None


def test_shortfall_rounds_up_and_never_goes_negative():
    r = daily_rate(10)  # 10/7 a day; 14 days need exactly 20 units
    assert shortfall(19, r, 14) == 1
    assert shortfall(20, r, 14) == 0
    assert shortfall(500, r, 14) == 0
    # 28 · 100/7 = 400 exactly; 0.1 more a week makes it 400.4 → 1 unit short at 400.
    assert shortfall(400, daily_rate(100.1), 28) == 1


def test_expiry_aware_with_a_partly_usable_lot():
    # r = 10/day. Lot A: 100 units, expires today+4 → usable for 5 days (d = 5): uses 50, 50 at risk.
    # Lot B: 300, expires today+59 (d = 60): starts at t = 5, needs 30 days → t = 35.
    # Lot C: 200, no expiry → +20 days → t = 55.
    result = expiry_aware([LotQuantity(None, 200), LotQuantity(day(59), 300), LotQuantity(day(4), 100)],
                          daily_rate(70), TODAY)
    assert result.days == 55 and result.at_risk == 50 and result.at_risk_units == 50
    # Plain coverage counts all 600 as 60 days; the expiry-aware figure is 5 days shorter.
    assert coverage_days(600, daily_rate(70)) == 60


def test_a_lot_expiring_today_lasts_through_today():
    # 25 units at 10/day expiring today: d = 1, so 10 are used today and 15 expire.
    result = expiry_aware([LotQuantity(day(0), 25)], daily_rate(70), TODAY)
    assert (result.days, result.at_risk) == (1, 15)


def test_two_lots_with_the_same_expiry_do_not_share_consumption_twice():
    # r = 10/day, both expire today+9 (d = 10). The first 60 are used in 6 days (t = 6);
    # the second has 4 days left: 40 used, 20 at risk; t = 10. Counted once: 20 at risk, not 80.
    result = expiry_aware([LotQuantity(day(9), 60), LotQuantity(day(9), 60)], daily_rate(70), TODAY)
    assert (result.days, result.at_risk) == (10, 20)


def test_a_lot_that_expires_before_earlier_stock_is_used_is_all_at_risk():
    # A: 200 expiring today+29 (d = 30) lasts 20 days; B: 50 expiring today+9 comes first (d = 10)
    # and is used in 5 days (t = 5); then A: t + 20 = 25 ≤ 30 → t = 25. Nothing at risk.
    ok = expiry_aware([LotQuantity(day(29), 200), LotQuantity(day(9), 50)], daily_rate(70), TODAY)
    assert (ok.days, ok.at_risk) == (25, 0)
    # At 1 a day (w = 7): D, 5 units expiring today+4 (d = 5), sorts first and is used up: t = 5.
    # C, 30 units expiring today+9 (d = 10), has 5 days left: 5 used, 25 at risk, t = 10.
    slow = expiry_aware([LotQuantity(day(9), 30), LotQuantity(day(4), 5)], daily_rate(7), TODAY)
    assert (slow.days, slow.at_risk) == (10, 25)


def test_used_up_exactly_on_the_expiry_day_is_not_at_risk():
    # 50 units at 10/day expiring today+4 (d = 5): exactly used up, nothing at risk.
    result = expiry_aware([LotQuantity(day(4), 50)], daily_rate(70), TODAY)
    assert (result.days, result.at_risk) == (5, 0)


def test_scenario_multiplier_scales_the_daily_rate():
    # Pandemic wave: PPE × 4. w = 400 → r = 1600/7; 5200 units last 5200 · 7 / 1600 = 22.75 days.
    r = daily_rate(400, factor=4)
    assert coverage_days(5200, r) == Fraction(91, 4)
    assert weeks(coverage_days(5200, r)) == 3.2
    # Lot expiring in 30 days (d = 31) holding 8000: only 31 · 1600/7 = 7085.71… can be used.
    result = expiry_aware([LotQuantity(day(30), 8000)], r, TODAY)
    assert result.days == 31 and result.at_risk_units == 914  # 8000 − 7085.714… = 914.29
