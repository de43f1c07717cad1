"""DESIGN.md §3 worked by hand. today = 2026-11-23."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

from stockpile.coverage.services import (LotQuantity, Status, coverage_days, daily_rate,
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


# --- evaluated from the database ------------------------------------------------------------

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from stockpile.errors import InvalidInput  # noqa: E402
from stockpile.coverage import arithmetic
from stockpile.coverage import services as coverage
from stockpile.inventory import gs1  # noqa: E402
from stockpile.inventory import services as inventory  # noqa: E402
from stockpile.coverage.models import ComputedUse as KeptUse  # noqa: E402
from stockpile.inventory.models import Lot  # noqa: E402
from tests import factories  # noqa: E402
from tests.conftest import counted  # noqa: E402


def noon(day_: dt.date) -> dt.datetime:
    return dt.datetime(day_.year, day_.month, day_.day, 12, tzinfo=dt.timezone.utc)


def rows_by(rows, *keys):
    return {tuple(getattr(r, k) if k != "item" else r.item.code for k in keys): r for r in rows}


@pytest.fixture
def municipality(session):
    """KOMMUNE-9999 holding MASK (ppe) with a § 8a baseline and four lots."""
    org = factories.org(session, "KOMMUNE-9999", "municipality")
    depot = factories.depot(session, org, "K-D")
    mask = factories.item(session, "MASK", "ppe", ppe_group="face_masks")
    # 2024 was a pandemic year: replaced by 2022. Mean of 2022, 2023, 2025 = 20 000 a year,
    # so a quarter of a year is exactly 5 000 masks and r = 20 000 / 365.25 a day.
    coverage.set_annual_baseline(session, factories.ctx(), organisation=org, item=mask,
                                  annual_use={2022: 19_000, 2023: 20_000, 2024: 90_000, 2025: 21_000},
                                  deviating_years=[2024], valid_from=dt.date(2026, 1, 1))
    factories.receive(session, depot, mask, "A", day(29), 3000)                # d = 30
    factories.receive(session, depot, mask, "B", dt.date(2028, 6, 30), 1500, pool="emergency")
    factories.receive(session, depot, mask, "GONE", day(-1), 400, today=day(-10))  # expired yesterday
    factories.receive(session, depot, mask, "Q", dt.date(2028, 1, 1), 500)
    quarantined = session.scalar(sa.select(Lot).where(Lot.lot_number == "Q"))
    inventory.set_lot_status(session, factories.ctx(), lot=quarantined, status="quarantined", reason="wet")
    return org


def test_ppe_duty_worked_example(session, municipality):
    [row] = coverage.evaluate(session, [municipality], today=TODAY)
    assert (row.policy.name, row.pool, row.item.code) == ("PPE duty", "all", "MASK")
    # § 8a: years 2022, 2023, 2025 (2024 replaced by 2022); w = 20 000 · 7 / 365.25.
    assert row.baseline.source == "annual_3y"
    assert row.baseline.years_used == [2022, 2023, 2025] and row.baseline.years_replaced == {"2024": 2022}
    assert row.baseline.weekly_use == Fraction(20_000 * 7 * 100, 36525)
    # Usable: A 3000 + B 1500 (emergency pool counts for "all"); not the expired or quarantined lots.
    assert row.usable == 4500
    # 4500 / (20 000 / 365.25) = 82.18125 days = 11.74 weeks.
    assert row.days == Fraction(8218125, 100000) and row.weeks == 11.7
    assert row.min_days == Fraction(913125, 10000)
    assert row.status is Status.BELOW_MIN
    # Requirement 91.3125 · 20 000 / 365.25 = 5000 exactly → 500 short.
    assert row.shortfall == 500
    # Expiry-aware: A lasts 30 of its 54.79 days (1642.71 used, 1357.29 at risk), then B 27.39 days.
    assert row.expiry.days == 30 + Fraction(1500 * 36525, 20_000 * 100)
    assert float(row.expiry.days) == pytest.approx(57.39375)
    assert row.expiry.at_risk_units == 1357


def test_the_duty_counts_a_lot_expiring_today_not_one_expired_yesterday(session, municipality):
    # On day(29) lot A expires today and still counts; the next day it does not.
    [on_expiry_day] = coverage.evaluate(session, [municipality], today=day(29))
    [day_after] = coverage.evaluate(session, [municipality], today=day(30))
    assert (on_expiry_day.usable, day_after.usable) == (4500, 1500)


def test_gs1_day_00_expiry_counts_through_the_last_day_of_the_month(session, municipality):
    depot = session.scalar(sa.select(inventory.Depot).where(inventory.Depot.code == "K-D"))
    mask = session.scalar(sa.select(inventory.Item).where(inventory.Item.code == "MASK"))
    mask.gtin = "07032069804988"
    item, lot_number, expiry = gs1.for_receipt(session, "(01)07032069804988(17)261200(10)DEC")
    assert expiry == dt.date(2026, 12, 31)
    factories.receive(session, depot, item, lot_number, expiry, 100)
    [last_day] = coverage.evaluate(session, [municipality], today=dt.date(2026, 12, 31))
    [new_year] = coverage.evaluate(session, [municipality], today=dt.date(2027, 1, 1))
    assert last_day.usable - new_year.usable == 100


def test_pandemic_scenario_multiplies_use(session, municipality):
    [row] = coverage.evaluate(session, [municipality], today=TODAY, scenario="Pandemic wave")
    assert row.factor == 4
    assert row.days == Fraction(8218125, 100000) / 4
    # A quarter's requirement at four times the use: 20 000 masks → 15 500 short.
    assert row.shortfall == 20_000 - 4500


def test_unknown_scenario_is_refused(session, municipality):
    with pytest.raises(inventory.NotFound):
        coverage.evaluate(session, [municipality], today=TODAY, scenario="Zombie outbreak")


@pytest.fixture
def centre(session):
    org = factories.org(session, "FS", "supply_centre")
    return org, factories.depot(session, org, "FS-D")


def test_safety_stock_manual_baseline_and_no_baseline(session, centre):
    org, depot = centre
    tube = factories.item(session, "TUBE", "consumable")
    filt = factories.item(session, "FILTER", "consumable")
    coverage.set_manual_baseline(session, factories.ctx(), organisation=org, item=tube, weekly_use=70,
                                  valid_from=day(-30))
    factories.receive(session, depot, tube, "T1", day(200), 250)
    factories.receive(session, depot, filt, "F1", day(200), 999)
    rows = rows_by(coverage.evaluate(session, [org], today=TODAY), "item")
    tube_row = rows[("TUBE",)]
    # 250 / 10 a day = 25 days: above 21, below 28 → below target; 280 − 250 = 30 short.
    assert (tube_row.days, tube_row.status, tube_row.shortfall) == (25, Status.BELOW_TARGET, 30)
    assert tube_row.baseline.source == "manual"
    filt_row = rows[("FILTER",)]
    assert filt_row.status is Status.NO_BASELINE and filt_row.days is None and filt_row.shortfall is None
    assert "No baseline" in filt_row.no_baseline_reason


def test_a_manual_baseline_is_in_force_only_from_its_date_and_the_newest_wins(session, centre):
    org, depot = centre
    tube = factories.item(session, "TUBE", "consumable")
    factories.receive(session, depot, tube, "T1", day(200), 280)
    coverage.set_manual_baseline(session, factories.ctx(), organisation=org, item=tube, weekly_use=70,
                                  valid_from=day(-30))
    coverage.set_manual_baseline(session, factories.ctx(), organisation=org, item=tube, weekly_use=140,
                                  valid_from=day(10))
    [now] = coverage.evaluate(session, [org], today=TODAY)
    [later] = coverage.evaluate(session, [org], today=day(10))
    assert (now.days, later.days) == (28, 14)


def test_item_policy_overrides_the_list_policy(session, centre):
    org, depot = centre
    resp = factories.item(session, "FFP3", "ppe", ppe_group="respirators")
    ctx = factories.ctx()
    emergency = coverage.item_list_for(session, org, "emergency", name="Emergency list")
    coverage.save_list_entry(session, ctx, item_list=emergency, item=resp)
    coverage.set_manual_baseline(session, ctx, organisation=org, item=resp, weekly_use=7)
    factories.receive(session, depot, resp, "R1", dt.date(2030, 1, 1), 140, pool="emergency")
    [before] = [r for r in coverage.evaluate(session, [org], today=TODAY) if r.pool == "emergency"]
    assert (before.policy.name, before.days, before.status) == ("Supply centre emergency stock", 140, Status.OK)
    coverage.save_policy(session, name="FFP3 168 days", organisation_kind="supply_centre", item=resp,
                          pool="emergency", min_days=168, target_days=168)
    [after] = [r for r in coverage.evaluate(session, [org], today=TODAY) if r.pool == "emergency"]
    assert (after.policy.name, after.status, after.shortfall) == ("FFP3 168 days", Status.BELOW_MIN, 28)


def test_list_entry_minimum_days_replace_the_policy_minimum(session):
    pharmacy = factories.org(session, "APOTEK", "hospital_pharmacy")
    depot = factories.depot(session, pharmacy)
    propofol = factories.item(session, "PROPOFOL", "drug", atc="N01AX10")
    ctx = factories.ctx()
    drugs = coverage.item_list_for(session, pharmacy, "critical-drugs")
    coverage.save_list_entry(session, ctx, item_list=drugs, item=propofol, min_days=21)
    coverage.set_manual_baseline(session, ctx, organisation=pharmacy, item=propofol, weekly_use=70)
    factories.receive(session, depot, propofol, "P1", day(100), 180)
    [row] = coverage.evaluate(session, [pharmacy], today=TODAY)
    # 18 days: meets the list's 14 but not this drug's own 21.
    assert (row.days, row.min_days, row.status, row.shortfall) == (18, 21, Status.BELOW_MIN, 30)


def test_computed_baseline_leaves_stock_out_days_out(session, centre):
    org, depot = centre
    tube = factories.item(session, "TUBE", "consumable")
    start = TODAY - dt.timedelta(weeks=13)  # the window: 91 days before today
    factories.receive(session, depot, tube, "OPEN", dt.date(2028, 1, 1), 140, today=start,
                      occurred_at=noon(start - dt.timedelta(days=1)))

    def issue_on(offset, quantity, flag="normal"):
        when = start + dt.timedelta(days=offset)
        inventory.issue(session, factories.ctx(today=when, occurred_at=noon(when)), depot=depot,
                        item=tube, quantity=quantity, flag=flag)

    issue_on(0, 70)
    issue_on(13, 70)  # out of stock from day 14
    when = start + dt.timedelta(days=41)
    factories.receive(session, depot, tube, "REFILL", dt.date(2028, 1, 1), 300, today=when, occurred_at=noon(when))
    issue_on(50, 100, flag="surge")  # crisis demand is not normal use
    issue_on(60, 35)
    [row] = coverage.evaluate(session, [org], today=TODAY)
    # In stock days 0–13 and 42–90: 14 + 49 = 63 days = 9 weeks; normal issues 175 → 175/9 a week.
    assert row.baseline.source == "computed"
    assert row.baseline.weekly_use == Fraction(175, 9)
    assert "28 stock-out days left out" in row.baseline.explanation
    # 165 on hand / (175/63 a day) = 59.4 days.
    assert row.usable == 165 and row.days == Fraction(165 * 63, 175)


def test_fewer_than_four_in_stock_weeks_give_no_computed_baseline(session, centre):
    org, depot = centre
    tube = factories.item(session, "TUBE", "consumable")
    when = TODAY - dt.timedelta(days=20)
    factories.receive(session, depot, tube, "NEW", dt.date(2028, 1, 1), 300, today=when, occurred_at=noon(when))
    inventory.issue(session, factories.ctx(today=when, occurred_at=noon(when)), depot=depot, item=tube, quantity=10)
    [row] = coverage.evaluate(session, [org], today=TODAY)
    assert row.status is Status.NO_BASELINE
    assert "Only 20 in-stock days" in row.no_baseline_reason


def test_annual_baseline_needs_the_years_it_counts(session, municipality):
    mask = session.scalar(sa.select(inventory.Item).where(inventory.Item.code == "MASK"))
    with pytest.raises(InvalidInput) as missing:
        coverage.set_annual_baseline(session, factories.ctx(), organisation=municipality, item=mask,
                                      annual_use={2023: 1, 2024: 2, 2025: 3}, deviating_years=[2025],
                                      valid_from=dt.date(2026, 3, 1))
    assert "annual use for 2022 is needed (in place of 2025)" in missing.value.message


def test_projection_and_the_day_stock_falls_below_the_minimum(session, centre):
    org, depot = centre
    tube = factories.item(session, "TUBE", "consumable")
    coverage.set_manual_baseline(session, factories.ctx(), organisation=org, item=tube, weekly_use=70)
    factories.receive(session, depot, tube, "SOON", day(2), 100)   # 30 of it used, 70 lost after day 2
    factories.receive(session, depot, tube, "LATER", day(365), 300)
    [row] = coverage.evaluate(session, [org], today=TODAY)
    points = dict(arithmetic.projection(row.lots, row.rate, TODAY, 5))
    # 10 a day from SOON on days 0–2 (400, 390, 380 at the start of each); SOON expires at the end
    # of day 2 with 70 left, so day 3 starts with LATER's 300, then 290, 280.
    assert [points[day(n)] for n in range(6)] == [400, 390, 380, 300, 290, 280]
    # Below 21 days (210 units) when 300 − 10·k < 210 → k > 9 → day 3 + 10 = day 13.
    assert coverage.falls_below_min_on(row) == day(13)


def test_region_summary_counts_members_meeting_the_target(session):
    region = factories.org(session, "REGION", "region")
    mask = factories.item(session, "MASK", "ppe", ppe_group="face_masks")
    ctx = factories.ctx()
    for code, stock in (("K1", 1300), ("K2", 1000), ("K3", 0)):
        org = factories.org(session, code, "municipality", parent="REGION")
        coverage.set_manual_baseline(session, ctx, organisation=org, item=mask, weekly_use=100)
        if stock:
            factories.receive(session, factories.depot(session, org), mask, f"{code}-L", day(400), stock)
    members = coverage.members_of(session, region)
    summaries = coverage.summarise(coverage.evaluate(session, members, today=TODAY))
    # 1300 / (100/7) = 91 days < 91.3125: below min; K3 holds nothing but has a baseline.
    verdict = {s.organisation.code: (s.items, s.meeting_target, s.below_min) for s in summaries}
    assert verdict == {"K1": (1, 0, 1), "K2": (1, 0, 1), "K3": (1, 0, 1)}
    coverage.set_manual_baseline(session, ctx, organisation=members[0], item=mask, weekly_use=50)
    k1 = [s for s in coverage.summarise(coverage.evaluate(session, members, today=TODAY))
          if s.organisation.code == "K1"][0]
    assert k1.meets_target and k1.meeting_target == 1


def test_a_member_with_nothing_under_a_policy_counts_as_not_meeting_it(session):
    region = factories.org(session, "REGION", "region")
    mask = factories.item(session, "MASK", "ppe", ppe_group="face_masks")
    holder = factories.org(session, "K1", "municipality", parent="REGION")
    factories.org(session, "K2", "municipality", parent="REGION")  # no stock, no baseline
    coverage.set_manual_baseline(session, factories.ctx(), organisation=holder, item=mask, weekly_use=7)
    factories.receive(session, factories.depot(session, holder), mask, "L", day(400), 100)
    members = coverage.members_of(session, region)
    summaries = coverage.summarise(coverage.evaluate(session, members, today=TODAY), members)
    assert {(s.organisation.code, s.items, s.meets_target) for s in summaries} == {("K1", 1, True), ("K2", 0, False)}


# --- the computed baseline reads the window only; reversals count on their original's day ----

WINDOW_START = TODAY - dt.timedelta(weeks=13)  # 2026-08-24: the 91-day window is [start, today)


def on(offset: int) -> dt.date:
    """The date ``offset`` days after the window's start."""
    return WINDOW_START + dt.timedelta(days=offset)


def issue_on(session, depot, item, offset: int, quantity: int, flag: str = "normal"):
    return inventory.issue(session, factories.ctx(today=on(offset), occurred_at=noon(on(offset))),
                           depot=depot, item=item, quantity=quantity, flag=flag)


def reverse_on(session, movements, when: dt.date):
    [movement] = movements
    return inventory.reverse(session, factories.ctx(today=when, occurred_at=noon(when)),
                             movement=movement, reason="posted by mistake")


def test_a_reversed_issue_inside_the_window_never_happened(session, centre):
    org, depot = centre
    tube = factories.item(session, "TUBE", "consumable")
    twin = factories.item(session, "TWIN", "consumable")  # the same without the mistake
    for item, lot in ((tube, "T"), (twin, "W")):
        factories.receive(session, depot, item, lot, dt.date(2028, 1, 1), 300, today=on(-1),
                          occurred_at=noon(on(-1)))
    issue_on(session, depot, tube, 0, 70)
    issue_on(session, depot, twin, 0, 70)
    mistake = issue_on(session, depot, tube, 20, 230)  # takes all 230 left: stock-out from day 21
    reverse_on(session, mistake, on(25))
    for offset in (40, 80):
        issue_on(session, depot, tube, offset, 70)
        issue_on(session, depot, twin, offset, 70)
    use = coverage.computed_use(session, [org.id], TODAY)
    # Netted on day 20 the mistake never happened: 300 → 230 → 160 → 90, never out of stock.
    # 210 issued over all 91 days: 210 · 7 / 91 = 210/13 ≈ 16.2 a week. (Reversal netted on the
    # day it was recorded, days 21–25 would have been stock-out days: 210 · 7 / 86.)
    assert use[(org.id, tube.id)] == use[(org.id, twin.id)] == coverage.ComputedUse(210, 91, 91)
    rows = rows_by(coverage.evaluate(session, [org], today=TODAY), "item")
    assert rows[("TUBE",)].baseline.weekly_use == Fraction(210, 13)
    assert rows[("TUBE",)].baseline.explanation == "210 issued (normal) over 91 in-stock days of the last 91"


def test_an_issue_reversed_today_never_counts_even_though_the_window_ends_yesterday(session, centre):
    org, depot = centre
    tube = factories.item(session, "TUBE", "consumable")
    factories.receive(session, depot, tube, "T", dt.date(2028, 1, 1), 1000, today=on(-1),
                      occurred_at=noon(on(-1)))
    for offset in (0, 40, 80):
        issue_on(session, depot, tube, offset, 70)
    mistake = issue_on(session, depot, tube, 45, 500)
    reverse_on(session, mistake, TODAY)  # recorded today: after the window [start, today)
    [row] = coverage.evaluate(session, [org], today=TODAY)
    # 210 issued over 91 in-stock days: 210/13 ≈ 16.2 a week, as if the 500 had never been
    # issued. (Counted until the reversal enters the window, it was 710/13 ≈ 54.6 a week.)
    assert row.baseline.source == "computed" and row.baseline.weekly_use == Fraction(210, 13)
    # The day after, the window [start + 1, today + 1) has left day 0's issue behind and now
    # holds the reversal too: 2 × 70 = 140 issued, 140/13 a week — still without the 500.
    [tomorrow] = coverage.evaluate(session, [org], today=day(1))
    assert tomorrow.baseline.weekly_use == Fraction(140, 13)


def test_a_reversal_inside_the_window_of_an_issue_before_it_does_not_lower_use(session, centre):
    org, depot = centre
    tube = factories.item(session, "TUBE", "consumable")
    factories.receive(session, depot, tube, "T", dt.date(2028, 1, 1), 1000, today=on(-10),
                      occurred_at=noon(on(-10)))
    before_window = issue_on(session, depot, tube, -5, 100)
    reverse_on(session, before_window, on(10))
    for offset in (0, 40, 80):
        issue_on(session, depot, tube, offset, 70)
    use = coverage.computed_use(session, [org.id], TODAY)[(org.id, tube.id)]
    # The reversed issue (day −5) and its reversal (day 10) both belong before the window: the
    # window sees 1000 on hand at its start and 3 × 70 issued over 91 in-stock days, 210/13 a
    # week — not (210 − 100) · 7 / 91 = 110/13, as when the reversal counted on day 10.
    assert use == coverage.ComputedUse(210, 91, 91)


def test_history_before_the_window_matters_only_through_the_stock_at_its_start(session, centre):
    org, depot = centre
    old = factories.item(session, "OLD", "consumable")    # two years of history
    fresh = factories.item(session, "FRESH", "consumable")  # the same stock, received just before
    first = WINDOW_START - dt.timedelta(days=730)
    factories.receive(session, depot, old, "O1", dt.date(2029, 1, 1), 5000, today=first, occurred_at=noon(first))
    for week in range(104):  # 40 a week for two years, one of them reversed, one count
        when = first + dt.timedelta(weeks=week, days=1)
        movements = inventory.issue(session, factories.ctx(today=when, occurred_at=noon(when)),
                                    depot=depot, item=old, quantity=40)
        if week == 50:
            reverse_on(session, movements, when + dt.timedelta(days=2))
    inventory.adjust_to_count(session, factories.ctx(today=on(-3), occurred_at=noon(on(-3))), depot=depot,
                              pool="operational", item=old, lot_number="O1", counted_quantity=880,
                              reason="stock count")
    factories.receive(session, depot, fresh, "F1", dt.date(2029, 1, 1), 880, today=on(-1), occurred_at=noon(on(-1)))
    for item in (old, fresh):
        for offset in range(0, 91, 7):  # 13 issues of 60: 780, leaving 100
            issue_on(session, depot, item, offset, 60)
    use = coverage.computed_use(session, [org.id], TODAY)
    # 880 on hand at the window's start either way; 780 issued over 91 in-stock days = 60 a week.
    assert use[(org.id, old.id)] == use[(org.id, fresh.id)] == coverage.ComputedUse(780, 91, 91)


def test_stock_out_and_expiry_days_inside_the_window(session, centre):
    org, depot = centre
    tube = factories.item(session, "TUBE", "consumable")
    factories.receive(session, depot, tube, "SHORT", on(29), 100, today=on(-1), occurred_at=noon(on(-1)))
    issue_on(session, depot, tube, 10, 40)
    # SHORT expires at the end of day 29 with 60 left: days 30–49 hold nothing usable.
    factories.receive(session, depot, tube, "LONG", dt.date(2028, 1, 1), 200, today=on(50), occurred_at=noon(on(50)))
    issue_on(session, depot, tube, 60, 30)
    use = coverage.computed_use(session, [org.id], TODAY)[(org.id, tube.id)]
    # In stock days 0–29 (30) and 51–90 (40; day 50 starts empty, LONG arrives at noon): 70 days.
    assert use == coverage.ComputedUse(70, 70, 91)


def test_item_coverage_reads_the_ledger_only_for_items_without_a_stored_baseline(session, centre, engine):
    org, depot = centre
    tube = factories.item(session, "TUBE", "consumable")
    factories.receive(session, depot, tube, "T", dt.date(2028, 1, 1), 100)
    coverage.set_manual_baseline(session, factories.ctx(), organisation=org, item=tube, weekly_use=70,
                                  valid_from=day(-30))
    with counted(engine) as statements:
        found = coverage.item_coverage(session, org, [tube], today=TODAY)[tube.id]
    assert (found.baseline.source, found.days) == ("manual", 10)
    assert not any("movements" in s for s in statements)


def test_evaluate_runs_as_many_statements_for_one_item_as_for_many(session, centre, engine):
    org, depot = centre
    ctx = factories.ctx()
    emergency = coverage.item_list_for(session, org, "emergency")

    def add_items(codes, lots, with_history):
        for code in codes:
            item = factories.item(session, code, "consumable")
            coverage.save_list_entry(session, ctx, item_list=emergency, item=item)
            for n in range(lots):
                factories.receive(session, depot, item, f"{code}-{n}", dt.date(2028, 1, 1 + n), 500,
                                  today=on(-1), occurred_at=noon(on(-1)))
            factories.receive(session, depot, item, f"{code}-E", dt.date(2029, 1, 1), 50, pool="emergency",
                              today=on(-1), occurred_at=noon(on(-1)))
            if with_history:
                for offset in range(0, 91, 10):
                    issue_on(session, depot, item, offset, 5)
                for week in range(3):
                    coverage.set_manual_baseline(session, ctx, organisation=org, item=item,
                                                  weekly_use=10 + week, valid_from=day(-30 + week))

    add_items(["A1"], 1, False)
    with counted(engine) as small:
        assert len(coverage.evaluate(session, [org], today=TODAY)) == 2
    add_items([f"B{n}" for n in range(12)], 3, True)
    add_items([f"C{n}" for n in range(12)], 2, False)
    with counted(engine) as large:
        assert len(coverage.evaluate(session, [org], today=TODAY)) == 2 * 25
    # policies, the organisation's depots, lots on hand, stored baselines, list entries, items,
    # kept computed baselines, the window's movements (for the figures not kept) and the held
    # items' categories
    assert len(small) == len(large) <= 9


# --- falls_below_min_on: the same days as reading the projection day by day ------------------

def _kept(session) -> dict[tuple[int, int], tuple]:
    return {(k.organisation_id, k.item_id): (k.evaluated_on, k.issued, k.in_stock_days)
            for k in session.scalars(sa.select(KeptUse))}


def _figures(rows) -> list[tuple]:
    return [(r.item.code, r.pool, r.baseline.weekly_use if r.baseline else None, r.days, r.status,
             r.no_baseline_reason) for r in rows]


@pytest.fixture
def history(session, centre):
    """Two consumables at FS with 13 weeks of normal issues, one of them reversed; no stored baseline."""
    org, depot = centre
    tube = factories.item(session, "TUBE", "consumable")
    gauze = factories.item(session, "GAUZE", "consumable")
    for item in (tube, gauze):
        factories.receive(session, depot, item, f"{item.code}-1", dt.date(2028, 1, 1), 5000,
                          today=on(-1), occurred_at=noon(on(-1)))
        for offset in range(0, 91, 7):
            issue_on(session, depot, item, offset, 20)
    reverse_on(session, issue_on(session, depot, tube, 30, 50), on(40))
    return org, depot, tube, gauze


def test_kept_computed_baselines_give_the_same_coverage_without_reading_the_ledger(session, history, engine):
    org, _depot, tube, gauze = history
    fresh = _figures(coverage.evaluate(session, [org], today=TODAY))
    # 13 issues of 20 over 91 in-stock days (the reversed 50 never happened): 260 / 13 weeks = 20 a week.
    assert [(code, weekly) for code, _pool, weekly, *_ in fresh] == [("GAUZE", 20), ("TUBE", 20)]
    assert _kept(session) == {}  # a read keeps nothing
    assert _figures(coverage.evaluate(session, [org], today=TODAY, keep_computed=True)) == fresh
    assert _kept(session) == {(org.id, tube.id): (TODAY, 260, 91), (org.id, gauze.id): (TODAY, 260, 91)}
    with counted(engine) as statements:
        assert _figures(coverage.evaluate(session, [org], today=TODAY)) == fresh
    assert not any("FROM movements" in statement for statement in statements)
    # Another day's figures are not today's: read from the ledger again.
    with counted(engine) as statements:
        coverage.evaluate(session, [org], today=day(1))
    assert any("FROM movements" in statement for statement in statements)


def test_a_posting_forgets_the_kept_figures_of_what_it_touched(session, history):
    org, depot, tube, gauze = history
    coverage.evaluate(session, [org], today=TODAY, keep_computed=True)
    # A forgotten issue of yesterday, recorded now: tube's baseline changes, gauze's does not.
    issue_on(session, depot, tube, 90, 39)
    assert set(_kept(session)) == {(org.id, gauze.id)}
    rows = {r.item.code: r for r in coverage.evaluate(session, [org], today=TODAY, keep_computed=True)}
    # 260 + 39 = 299 over 13 weeks = 23 a week.
    assert rows["TUBE"].baseline.weekly_use == 23 and rows["GAUZE"].baseline.weekly_use == 20
    assert _kept(session)[(org.id, tube.id)] == (TODAY, 299, 91)


def test_a_shelf_life_extension_forgets_the_kept_figures_of_its_item(session, history):
    org, _depot, tube, gauze = history
    coverage.evaluate(session, [org], today=TODAY, keep_computed=True)
    lot = session.scalar(sa.select(Lot).where(Lot.lot_number == "TUBE-1"))
    inventory.extend_shelf_life(session, factories.ctx(), lot=lot, new_expiry=dt.date(2029, 1, 1),
                                reason="stability data")
    assert set(_kept(session)) == {(org.id, gauze.id)}


from types import SimpleNamespace  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def falls_below_min_day_by_day(row, horizon_days: int = 730) -> dt.date | None:
    """The former implementation: run the projection a day at a time (the reference)."""
    rate = row.rate
    if rate is None:
        return None
    for when, stock in arithmetic.projection(row.lots, rate, row.evaluated_on, horizon_days):
        if stock / rate < row.min_days:
            return when
    return None


lots_strategy = st.lists(st.builds(
    arithmetic.LotQuantity,
    st.one_of(st.none(), st.integers(-3, 400).map(day)),
    st.integers(-5, 3000)), max_size=6)


@settings(max_examples=400, deadline=None)
@given(lots=lots_strategy, weekly=st.integers(0, 20_000), factor=st.sampled_from([1, 2, 4, Fraction(1, 3)]),
       min_days=st.sampled_from([0, 1, 14, 21, Fraction(913125, 10000), 84, 168]), horizon=st.integers(0, 500))
def test_falls_below_min_on_matches_the_day_by_day_projection(lots, weekly, factor, min_days, horizon):
    row = SimpleNamespace(lots=tuple(lots), rate=arithmetic.daily_rate(Fraction(weekly, 10), factor),
                          evaluated_on=TODAY, min_days=Fraction(min_days))
    assert coverage.falls_below_min_on(row, horizon) == falls_below_min_day_by_day(row, horizon)
