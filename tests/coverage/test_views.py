"""The coverage pages: the supply centre's coverage side by side per pool, an item's numbers and
projection chart, the manual baseline form, the coordinator's region, administration of policies
and scenarios, the landing page per role, access and CSRF.

Numbers are the hand-worked examples of tests/coverage/test_services.py, evaluated on
``factories.TODAY`` (2026-11-23) through ``?date=``.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from fractions import Fraction

import pytest
import sqlalchemy as sa

from stockpile.coverage import arithmetic
from stockpile.coverage import services as coverage
from stockpile.coverage.services import LotQuantity
from stockpile.coverage.display import build_chart, projected_series
from stockpile.coverage.models import Baseline, Policy, Scenario
from tests import factories
from tests.conftest import counted, csrf_token

TODAY = factories.TODAY
ON = f"date={TODAY.isoformat()}"


def day(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


def main_html(response) -> str:
    """The page without the navigation (which names other pages)."""
    return response.text.split('<main id="main"', 1)[1]


def item_rows(html: str) -> dict[str, str]:
    """The coverage table's rows by item code, in page order."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = {}
    for chunk in body.split("<tr class=\"row-")[1:]:
        code = re.search(r'<div class="muted small">([^ <]+) ·', chunk).group(1)
        rows[code] = chunk
    return rows


def cells(row_html: str) -> list[str]:
    """The text of each cell of a row, tags and extra spaces removed."""
    found = re.findall(r"<td[^>]*>(.*?)</td>", row_html, flags=re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in found]


@pytest.fixture
def centre(world, session):
    """The world's supply centre SC (depot SC-D) with three items, committed:

    - TUBE (consumable): manual baseline 70 a week (10 a day), 250 usable → 25 days, 3.6 weeks,
      below the target of 28 days, 30 short;
    - FILTER (consumable): 999 units, no baseline;
    - FFP3 (ppe) on SC's emergency list: baseline 7 a week (1 a day), 140 in the emergency pool
      → 140 days, 20.0 weeks, ok against 84/112; nothing in the operational pool → the PPE
      safety stock row is 0 days, below minimum, 28 short.
    """
    ctx = factories.ctx()
    sc, depot = world.centre, world.centre_depot
    tube = factories.item(session, "TUBE", "consumable", name="Suction tube")
    filt = factories.item(session, "FILTER", "consumable", name="HME filter")
    ffp3 = factories.item(session, "FFP3", "ppe", name="FFP3 respirator", ppe_group="respirators")
    coverage.set_manual_baseline(session, ctx, organisation=sc, item=tube, weekly_use=70, valid_from=day(-30))
    coverage.set_manual_baseline(session, ctx, organisation=sc, item=ffp3, weekly_use=7, valid_from=day(-30))
    emergency = coverage.item_list_for(session, sc, "emergency", name="Emergency list")
    coverage.save_list_entry(session, ctx, item_list=emergency, item=ffp3)
    factories.receive(session, depot, tube, "T1", day(200), 250)
    factories.receive(session, depot, filt, "F1", day(200), 999)
    factories.receive(session, depot, ffp3, "R1", dt.date(2030, 1, 1), 140, pool="emergency")
    session.commit()
    return world


# --- the supply centre's coverage ------------------------------------------------------------

def test_supply_centre_page_shows_both_pools_worst_first_with_the_worked_numbers(client, auth, centre):
    auth.login("supply@example.org")
    response = client.get(f"/coverage?{ON}")
    assert response.status_code == 200
    page = main_html(response)
    assert "Coverage: Organisation SC" in page
    assert "Evaluated on 2026-11-23" in page
    assert "Safety stock (operational pool)" in page and "Emergency stock (emergency pool)" in page
    rows = item_rows(page)
    # Worst first: below minimum, then no baseline, then below target.
    assert list(rows) == ["FFP3", "FILTER", "TUBE"]

    # Item, normal use, then per pool: weeks with the status, expiry-aware weeks, usable,
    # shortfall, at risk of expiry.
    tube = cells(rows["TUBE"])
    assert tube[1] == "70 / week Entered by hand"
    assert tube[2:7] == ["3.6 Below target", "3.6", "250", "30", "0"]
    assert 'class="badge cov cov-below_target"' in rows["TUBE"]
    assert "minimum 3.0, target 4.0 weeks" in rows["TUBE"]
    assert "No target for this pool" in tube[7]  # TUBE is not on the emergency list

    ffp3 = cells(rows["FFP3"])
    assert ffp3[2:7] == ["0.0 Below minimum", "0.0", "0", "28", "0"]
    assert ffp3[7:12] == ["20.0 OK", "20.0", "140", "0", "0"]
    assert "Supply centre emergency stock: minimum 12.0, target 16.0 weeks" in rows["FFP3"]
    assert 'cov-below_min' in rows["FFP3"] and 'cov-ok' in rows["FFP3"]

    filt = cells(rows["FILTER"])
    assert filt[1].startswith("none No baseline entered and no issue history")
    assert filt[2:7] == ["— No baseline", "—", "999", "—", "—"]
    assert 'cov-no_baseline' in rows["FILTER"]
    # Each item links to its own coverage page, keeping the date.
    assert f'href="/coverage/SC/TUBE?date={TODAY.isoformat()}"' in rows["TUBE"]


def test_headline_counts_per_policy(client, auth, centre):
    auth.login("supply@example.org")
    page = main_html(client.get(f"/coverage?{ON}"))
    cards = {re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip().split("  ")[0]: c
             for c in page.split('<section class="cov-card')[1:]}
    consumables = next(c for title, c in cards.items() if "safety stock: consumables" in title)
    text = " ".join(re.sub(r"<[^>]+>", " ", consumables).split())
    # TUBE below target, FILTER without baseline: none of 2 meets; 30 short.
    assert "0 of 2" in text and "1 without baseline" in text and "Shortfall to target: 30 units" in text


def test_filters_by_category_and_by_list(client, auth, centre):
    auth.login("supply@example.org")
    consumables = item_rows(main_html(client.get(f"/coverage?{ON}&category=consumable")))
    assert list(consumables) == ["FILTER", "TUBE"]
    on_list = main_html(client.get(f"/coverage?{ON}&list=emergency"))
    assert list(item_rows(on_list)) == ["FFP3"]
    assert '<option value="emergency" selected>Emergency list (1 items)</option>' in on_list


def test_pandemic_scenario_multiplies_ppe_use(client, auth, centre):
    auth.login("supply@example.org")
    page = main_html(client.get(f"/coverage?{ON}&scenario=Pandemic+wave"))
    assert "Scenario: Pandemic wave" in page
    rows = item_rows(page)
    # PPE ×4: 140 / 4 a day = 35 days = 5.0 weeks, below the emergency minimum of 84 days;
    # the target is 112 days of the scenario's use: 448 − 140 = 308 short.
    assert cells(rows["FFP3"])[7:12] == ["5.0 Below minimum", "5.0", "140", "308", "0"]
    # Consumables are not in the scenario.
    assert cells(rows["TUBE"])[2] == "3.6 Below target"


def test_unknown_scenario_and_bad_date_are_explained(client, auth, centre):
    auth.login("supply@example.org")
    unknown = client.get("/coverage?scenario=Zombies")
    assert unknown.status_code == 404
    assert "No scenario named “Zombies”. Known scenarios: Pandemic wave." in unknown.text
    bad = client.get("/coverage?date=23.11.2026")
    assert bad.status_code == 400
    assert "is not a date: write it as YYYY-MM-DD" in bad.text


def test_the_evaluation_date_moves_the_numbers(client, auth, centre, session):
    # On the day after T1's expiry (day 201) TUBE has nothing usable left.
    auth.login("supply@example.org")
    later = item_rows(main_html(client.get(f"/coverage?date={day(201).isoformat()}")))
    assert cells(later["TUBE"])[2:5] == ["0.0 Below minimum", "0.0", "0"]


def test_a_reader_of_several_organisations_picks_one(client, auth, centre, session):
    mun = centre.municipality
    mask = centre.mask
    coverage.set_annual_baseline(session, factories.ctx(), organisation=mun, item=mask,
                                  annual_use={2023: 20_000, 2024: 20_000, 2025: 20_000},
                                  valid_from=dt.date(2026, 1, 1))
    factories.receive(session, centre.municipal_depot, mask, "M1", day(400), 5000)
    session.commit()
    auth.login("coordinator@example.org")
    default = main_html(client.get(f"/coverage?{ON}"))
    # A coordinator starts on the supply centre in their region, and may pick the others.
    assert "Coverage: Organisation SC" in default
    assert '<option value="MUN"' in default and '<option value="OTHER"' not in default
    page = main_html(client.get(f"/coverage?organisation=MUN&{ON}"))
    row = cells(item_rows(page)["MASK"])
    # § 8a: 20 000 a year → 5 000 a quarter; 5000 units = 91.3125 days exactly → ok, 13.0 weeks.
    assert "All stock (both pools)" in page
    assert row[1] == "383 / week § 8a: three calendar years"  # 20 000 · 7 / 365.25 = 383.299…
    assert row[2:7] == ["13.0 OK", "13.0", "5,000", "0", "0"]


# --- access ---------------------------------------------------------------------------------

@pytest.mark.parametrize("who,url", [
    ("outsider", "/coverage?organisation=SC"),
    ("outsider", "/coverage/SC/TUBE"),
    ("outsider", "/coverage/SC/TUBE/baseline"),
    ("outsider", "/coverage/region?parent=REG"),
    ("coordinator", "/coverage?organisation=OTHER"),
    ("coordinator", "/coverage/region?parent=OTHER"),
    ("municipal", "/coverage?organisation=SC"),
    ("viewer", "/coverage/SC/TUBE/baseline"),
    ("coordinator", "/coverage/SC/TUBE/baseline"),
    *[(who, url) for who in ("supply", "coordinator", "viewer", "municipal", "pharmacist")
      for url in ("/admin/policies", "/admin/policies/1", "/admin/scenarios", "/admin/scenarios/1")],
])
def test_pages_refused_outside_ones_access(client, auth, centre, who, url):
    auth.login(f"{who}@example.org")
    response = client.get(url)
    assert response.status_code == 403, url
    assert "<nav" in response.text  # the styled error page


@pytest.mark.parametrize("who,url", [
    ("supply", "/coverage"), ("supply", "/coverage/SC/TUBE"), ("supply", "/coverage/SC/TUBE/baseline"),
    ("viewer", "/coverage"), ("viewer", "/coverage/SC/FFP3"),
    ("pharmacist", "/coverage/SC/TUBE/baseline"),
    ("coordinator", "/coverage/region"), ("coordinator", "/coverage/SC/TUBE"),
    ("admin", "/coverage?organisation=OTHER"), ("admin", "/coverage/region?parent=REG"),
    ("admin", "/admin/policies"), ("admin", "/admin/scenarios"), ("admin", "/admin/scenarios/1"),
    ("municipal", "/coverage"),
])
def test_pages_render_for_their_readers(client, auth, centre, who, url):
    auth.login(f"{who}@example.org")
    assert client.get(url).status_code == 200, url


def test_unknown_codes_are_404(client, auth, centre):
    auth.login("admin@example.org")
    assert client.get("/coverage?organisation=NOPE").status_code == 404
    assert client.get("/coverage/SC/NOPE").status_code == 404
    assert client.get("/admin/policies/99999").status_code == 404
    assert client.get("/admin/policies/99999999999").status_code == 404


def test_posting_a_baseline_without_write_access_is_refused_and_stores_nothing(client, auth, centre, session):
    auth.login("viewer@example.org")
    before = session.scalar(sa.select(sa.func.count(Baseline.id)))
    response = client.post("/coverage/SC/TUBE/baseline", data={"weekly_use": "1", "valid_from": TODAY.isoformat()})
    assert response.status_code == 403
    assert session.scalar(sa.select(sa.func.count(Baseline.id))) == before


# --- one item's page ---------------------------------------------------------------------------

def test_item_page_shows_the_numbers_the_baseline_and_why(client, auth, centre):
    auth.login("supply@example.org")
    page = main_html(client.get(f"/coverage/SC/TUBE?{ON}"))
    assert "70 piece a week" in page and "(10 a day)" in page
    assert "Source: Entered by hand · in force from 2026-10-24" in page
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "Usable 250 piece" in text
    assert "Coverage 3.6 wk 25.0 days" in text
    assert "Expiry-aware 3.6 wk 25.0 days" in text
    assert "Shortfall to target 30 piece" in text
    assert "Minimum 21 days, target 28 days" in text
    assert "below the minimum from 2026-11-28" in text  # 250 − 10·k < 210 → k = 5
    assert "runs out 2026-12-18" in text  # day 25
    assert "<svg" in page and "Minimum: 21 days of normal use (210)" in page
    assert "Target: 28 days (280)" in page
    # The lot, and the form to set the baseline (supply staff write for SC).
    assert "T1" in page and "Set normal use by hand" in page


def test_item_page_for_a_reader_has_no_baseline_form(client, auth, centre):
    auth.login("viewer@example.org")
    page = main_html(client.get(f"/coverage/SC/TUBE?{ON}"))
    assert "3.6 wk" in page and "Set normal use by hand" not in page


def test_item_page_shows_the_section_8a_years(client, auth, centre, session):
    mun, mask = centre.municipality, centre.mask
    coverage.set_annual_baseline(session, factories.ctx(), organisation=mun, item=mask,
                                  annual_use={2022: 19_000, 2023: 20_000, 2024: 90_000, 2025: 21_000},
                                  deviating_years=[2024], valid_from=dt.date(2026, 1, 1))
    factories.receive(session, centre.municipal_depot, mask, "A", day(29), 3000)
    factories.receive(session, centre.municipal_depot, mask, "B", dt.date(2028, 6, 30), 1500, pool="emergency")
    session.commit()
    auth.login("municipal@example.org")
    page = main_html(client.get(f"/coverage/MUN/MASK?{ON}"))
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "Years used (§ 8a): 2022, 2023, 2025 · 2024 deviated and was replaced by 2022" in text
    assert "A quarter of the mean annual use of 2022, 2023, 2025 (2024 replaced by 2022)" in text
    # 4500 usable at 20 000 / 365.25 a day: 82.2 days, 11.7 weeks; expiry-aware 57.4 days (8.2 weeks),
    # 1 357 of lot A at risk; 500 short of the quarter's 5 000.
    assert "Coverage 11.7 wk 82.2 days" in text
    assert "Expiry-aware 8.2 wk 57.4 days" in text
    assert "At risk of expiry 1,357" in text and "Shortfall to target 500" in text


def test_item_page_under_a_scenario_shows_both_lines(client, auth, centre):
    auth.login("supply@example.org")
    page = main_html(client.get(f"/coverage/SC/FFP3?{ON}&scenario=Pandemic+wave"))
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    # Emergency pool: 140 at 1 a day (normal) lasts 20.0 weeks; ×4 → 5.0 weeks.
    emergency = text.split("Emergency stock (emergency pool)", 1)[1]
    assert "Coverage 20.0 wk 140.0 days" in emergency
    assert "Pandemic wave 5.0 wk expiry-aware 5.0 wk · Below minimum" in emergency
    assert "runs out 2027-04-12" in emergency  # day 140 at normal use
    assert "runs out 2026-12-28" in emergency  # day 35 under the scenario
    assert 'class="series series-normal"' in page and 'class="series series-scenario"' in page
    assert "Pandemic wave (×4)" in page


def test_item_page_for_an_item_no_policy_reaches(client, auth, centre):
    auth.login("supply@example.org")
    page = main_html(client.get(f"/coverage/SC/GLOVE?{ON}"))
    assert "No coverage target applies to Item GLOVE at Organisation SC" in page
    assert "No baseline: coverage is unknown." in page


# --- the chart ---------------------------------------------------------------------------------

def test_projection_series_has_the_drop_where_a_lot_expires():
    # test_coverage's projection example: 10 a day; SOON 100 expires day 2, LATER 300 day 365.
    lots = [LotQuantity(day(2), 100), LotQuantity(day(365), 300)]
    series = projected_series("normal", "Normal use", lots, Fraction(10), TODAY, 28, min_units=Fraction(210))
    assert series.starts[:6] == [400, 390, 380, 300, 290, 280]
    # 30 used in three days, then 70 of SOON lost at the start of day 3; straight stretches merged.
    assert series.vertices == [(0, 400), (3, 370), (3, 300), (28, 50)]
    [drop] = series.drops
    assert (drop.day, drop.expired_on, drop.lost, drop.before, drop.after) == (3, day(2), 70, 370, 300)
    assert series.below_min == day(13) and series.runs_out is None and series.lost == 70


def test_projection_without_use_shows_only_what_expires():
    lots = [LotQuantity(day(10), 50), LotQuantity(None, 20)]
    series = projected_series("normal", "Normal use", lots, None, TODAY, 14, min_units=None)
    assert series.vertices == [(0, 70), (11, 70), (11, 20), (14, 20)]
    assert [d.lost for d in series.drops] == [50] and series.below_min is None


def test_chart_scale_and_lines():
    row = coverage.CoverageRow(
        organisation=None, item=None, policy=None, pool="operational", usable=400, baseline=None,
        no_baseline_reason="", factor=Fraction(1), min_days=Fraction(21), target_days=Fraction(28),
        max_days=None, days=None, expiry=None, status=arithmetic.Status.OK, shortfall=0,
        lots=(LotQuantity(day(2), 100), LotQuantity(day(365), 300)), evaluated_on=TODAY)
    chart = build_chart(row, Fraction(10), None, None, weeks=26)
    assert chart.days == 182
    # Highest value 400 (+8 % headroom = 432) on steps of 100 → axis to 500.
    assert (chart.y_max, chart.y_step) == (500, 100)
    assert [(key, units) for key, _label, units in chart.lines] == [("min", 210), ("target", 280)]
    assert chart.x(0) == chart.left and chart.x(182) == chart.width - chart.right
    assert chart.y(0) == chart.height - chart.bottom and chart.y(500) == chart.top


def test_item_page_draws_the_expiry_drop_in_the_svg(client, auth, centre, session):
    tube2 = factories.item(session, "TUBE2", "consumable", name="Suction tube, large")
    coverage.set_manual_baseline(session, factories.ctx(), organisation=centre.centre, item=tube2,
                                  weekly_use=70, valid_from=day(-30))
    factories.receive(session, centre.centre_depot, tube2, "SOON", day(2), 100)
    factories.receive(session, centre.centre_depot, tube2, "LATER", day(365), 300)
    session.commit()
    auth.login("supply@example.org")
    page = main_html(client.get(f"/coverage/SC/TUBE2?{ON}&weeks=26"))
    row = coverage.evaluate(session, [centre.centre], today=TODAY, item=tube2)[0]
    chart = build_chart(row, Fraction(10), None, None, weeks=26)
    # The drop: a marker where the stock lands after SOON's 70 are lost, with its explanation.
    assert f'<circle cx="{chart.x(3)}" cy="{chart.y(300)}" r="4"/>' in page
    assert "Normal use: 70 lost when lots expiring 2026-11-25 run out of date (370 → 300)" in page
    # The line falls to 370 by day 3, drops to 300, then runs at 10 a day to day 182 (0 left at 33).
    points = re.search(r'class="series series-normal" fill="none" points="([^"]+)"', page).group(1)
    assert points.split()[:3] == [f"{chart.x(0)},{chart.y(400)}", f"{chart.x(3)},{chart.y(370)}",
                                  f"{chart.x(3)},{chart.y(300)}"]
    assert f"{chart.x(33)},{chart.y(0)}" in points
    # The week-by-week table under the chart: week 1 starts with 300 − 4·10 = 260.
    weekly = page.split("Projected stock week by week", 1)[1]
    assert re.search(r"<td>1</td><td>2026-11-30</td><td class=\"num\">260</td>", weekly)


def test_chart_horizon_grows_with_long_lasting_stock(client, auth, centre):
    auth.login("supply@example.org")
    # FFP3 emergency stock lasts 140 days at normal use: 20 weeks < 26 → the default half year.
    page = main_html(client.get(f"/coverage/SC/FFP3?{ON}"))
    assert "Projected usable stock over 26 weeks" in page
    bad = client.get(f"/coverage/SC/FFP3?{ON}&weeks=500")
    assert bad.status_code == 400 and "weeks must be a whole number from 4 to 104" in bad.text


# --- the manual baseline form --------------------------------------------------------------------

def test_setting_a_manual_baseline_changes_the_numbers(client, auth, centre, session):
    auth.login("supply@example.org")
    response = client.post(f"/coverage/SC/TUBE/baseline?{ON}", data={
        "weekly_use": "35", "valid_from": TODAY.isoformat(), "note": "Ward closed for refurbishment"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/coverage/SC/TUBE?{ON}"
    page = main_html(client.get(response.headers["Location"]))
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    # 250 at 5 a day = 50 days = 7.1 weeks: above the target of 28 days now.
    assert "Coverage 7.1 wk 50.0 days" in text and "Shortfall to target 0" in text
    assert "Entered by hand, valid from 2026-11-23: Ward closed for refurbishment" in text
    stored = session.scalars(sa.select(Baseline).order_by(Baseline.id.desc())).first()
    assert (stored.weekly_use, stored.recorded_by_id) == (Decimal("35"), centre.users["supply"].id)


def test_baseline_form_takes_a_decimal_comma_and_refuses_nonsense(client, auth, centre, session):
    auth.login("supply@example.org")
    ok = client.post("/coverage/SC/FILTER/baseline", data={"weekly_use": "12,5", "valid_from": TODAY.isoformat()})
    assert ok.status_code == 302
    assert session.scalars(sa.select(Baseline.weekly_use).order_by(Baseline.id.desc())).first() == Decimal("12.5")
    count = session.scalar(sa.select(sa.func.count(Baseline.id)))
    for data in ({"weekly_use": "-1", "valid_from": TODAY.isoformat()}, {"weekly_use": "lots", "valid_from": ""}):
        refused = client.post("/coverage/SC/FILTER/baseline", data=data)
        assert refused.status_code == 422
        assert "Nothing was recorded" in refused.text
    assert session.scalar(sa.select(sa.func.count(Baseline.id))) == count


def test_baseline_page_lists_the_entries(client, auth, centre):
    auth.login("supply@example.org")
    page = main_html(client.get("/coverage/SC/TUBE/baseline"))
    assert "Entered baselines" in page and "2026-10-24" in page and "Entered by hand" in page


# --- the region ----------------------------------------------------------------------------------

@pytest.fixture
def region(world, session):
    """REGION with municipalities K1, K2, K3 (MASK, baseline 100 a week unless said):

    - K1: 1300 masks at 50 a week → 182 days: meets the PPE duty (91.3125 days);
    - K2: 1000 (day 400) + 400 expiring on day 9 → 98 days: meets it; of the 400, only
      10 days × 100/7 = 142.86 can be used: 257 at risk of expiry;
    - K3: nothing → 0 days: below minimum, 1305 short (91.3125 · 100/7 = 1304.46).
    """
    region = factories.org(session, "REGION", "region")
    ctx = factories.ctx()
    mask = world.mask
    orgs = {code: factories.org(session, code, "municipality", parent="REGION") for code in ("K1", "K2", "K3")}
    for code, weekly in (("K1", 50), ("K2", 100), ("K3", 100)):
        coverage.set_manual_baseline(session, ctx, organisation=orgs[code], item=mask, weekly_use=weekly,
                                      valid_from=day(-30))
    factories.receive(session, factories.depot(session, orgs["K1"]), mask, "K1-L", day(400), 1300)
    k2 = factories.depot(session, orgs["K2"])
    factories.receive(session, k2, mask, "K2-L", day(400), 1000)
    factories.receive(session, k2, mask, "K2-S", day(9), 400)
    factories.user(session, "coordinator", region, email="regional@example.org")
    session.commit()
    return region


def test_region_page_counts_members_meeting_the_target(client, auth, region):
    auth.login("regional@example.org")
    response = client.get(f"/coverage/region?{ON}")
    assert response.status_code == 200
    page = main_html(response)
    assert "Region: Organisation REGION" in page
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "PPE duty 2 of 3 municipalities meet the target of 91.3125 days" in text
    assert "1 with items below minimum" in text and "257 units at risk of expiry" in text
    # Drill-down to each member's coverage page.
    for code in ("K1", "K2", "K3"):
        assert f'href="/coverage?organisation={code}&amp;date={TODAY.isoformat()}"' in page
    below = text.split("Items below minimum", 1)[1].split("Stock at risk of expiry", 1)[0]
    assert "Organisation K3 Item MASK PPE duty 0.0 13.0 1,305" in below
    at_risk = text.split("Stock at risk of expiry (1)", 1)[1]
    assert "Organisation K2 Item MASK All stock (both pools) 257 1,400" in at_risk


def test_region_matrix_marks_each_member(client, auth, region):
    auth.login("regional@example.org")
    page = main_html(client.get(f"/coverage/region?{ON}"))
    matrix = page.split('<table class="table matrix">', 1)[1].split("</table>", 1)[0]
    rows = {re.search(r">Organisation (K\d)<", r).group(1): r for r in matrix.split("<tr>")[2:]}
    assert 'cell meets' in rows["K1"] and 'cell meets' in rows["K2"] and 'cell failing' in rows["K3"]
    assert "1 of 1 items meet the target" in rows["K1"] and "1 below minimum" in rows["K3"]


def test_region_under_the_pandemic_scenario(client, auth, region):
    auth.login("regional@example.org")
    page = main_html(client.get(f"/coverage/region?{ON}&scenario=Pandemic+wave"))
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    # PPE ×4: K1 182 / 4 = 45.5 days, K2 24.5 days: none meets the duty.
    assert "PPE duty 0 of 3 municipalities meet the target" in text


def test_coordinator_may_not_see_another_region(client, auth, region):
    auth.login("coordinator@example.org")  # coordinates REG, not REGION
    assert client.get("/coverage/region?parent=REGION").status_code == 403
    client.post("/logout")
    auth.login("regional@example.org")
    assert client.get("/coverage?organisation=SC").status_code == 403
    assert client.get("/coverage?organisation=K3").status_code == 200


# --- administration ------------------------------------------------------------------------------

def test_policies_page_lists_the_defaults_exactly(client, auth, centre):
    auth.login("admin@example.org")
    page = main_html(client.get("/admin/policies"))
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "PPE duty every municipality category ppe Both pools 91.3125 13.0 wk 91.3125 13.0 wk" in text
    assert "Supply centre emergency stock every supply centre list “emergency” Emergency pool 84 12.0 wk 112 16.0 wk" in text


def test_admin_creates_a_per_item_override_and_coverage_follows(client, auth, centre, session):
    auth.login("admin@example.org")
    response = client.post("/admin/policies", data={
        "name": "FFP3 168 days", "organisation_kind": "supply_centre", "item": "FFP3", "pool": "emergency",
        "min_days": "168", "target_days": "168", "active": "y"})
    assert response.status_code == 302
    policy = session.scalar(sa.select(Policy).where(Policy.name == "FFP3 168 days"))
    assert (policy.item.code, policy.min_days, policy.organisation_kind) == ("FFP3", 168, "supply_centre")
    rows = item_rows(main_html(client.get(f"/coverage?{ON}")))
    # 140 days against 168: below minimum, 28 short.
    assert cells(rows["FFP3"])[7:12] == ["20.0 Below minimum", "20.0", "140", "28", "0"]
    assert "FFP3 168 days: minimum 24.0, target 24.0 weeks" in rows["FFP3"]


def test_admin_edits_a_policy_keeping_exact_days(client, auth, centre, session):
    auth.login("admin@example.org")
    duty = session.scalar(sa.select(Policy).where(Policy.name == "PPE duty"))
    form = client.get(f"/admin/policies/{duty.id}").text
    assert 'value="91.3125"' in form  # never rounded to 91.31
    safety = session.scalar(sa.select(Policy).where(Policy.name == "Supply centre safety stock: consumables"))
    response = client.post(f"/admin/policies/{safety.id}", data={
        "name": safety.name, "organisation_kind": "supply_centre", "category": "consumable",
        "pool": "operational", "min_days": "14", "target_days": "21", "active": "y"})
    assert response.status_code == 302
    session.refresh(safety)
    assert (safety.min_days, safety.target_days) == (14, 21)
    # TUBE: 25 days against 14/21 → ok now.
    assert cells(item_rows(main_html(client.get(f"/coverage?{ON}")))["TUBE"])[2] == "3.6 OK"


def test_policy_form_refusals_name_the_field(client, auth, centre, session):
    auth.login("admin@example.org")
    count = session.scalar(sa.select(sa.func.count(Policy.id)))
    response = client.post("/admin/policies", data={
        "name": "Upside down", "organisation_kind": "municipality", "category": "ppe", "pool": "all",
        "min_days": "30", "target_days": "20"})
    assert response.status_code == 422
    assert "target_days cannot be below min_days." in response.text
    both = client.post("/admin/policies", data={
        "name": "Two scopes", "organisation_kind": "municipality", "category": "ppe", "item": "MASK",
        "pool": "all", "min_days": "1", "target_days": "2"})
    assert both.status_code == 422 and "Give exactly one of category, item_list or item." in both.text
    taken = client.post("/admin/policies", data={
        "name": "PPE duty", "organisation_kind": "municipality", "category": "ppe", "pool": "all",
        "min_days": "1", "target_days": "2"})
    assert taken.status_code == 422 and "A policy named &#39;PPE duty&#39; already exists." in taken.text
    assert session.scalar(sa.select(sa.func.count(Policy.id))) == count


def test_admin_creates_and_edits_a_scenario(client, auth, centre, session):
    auth.login("admin@example.org")
    response = client.post("/admin/scenarios", data={
        "name": "Heatwave", "description": "Hot summer", "consumable": "1,5", "item_factors": "FFP3 = 3\n\nTUBE 2"})
    assert response.status_code == 302
    heat = session.scalar(sa.select(Scenario).where(Scenario.name == "Heatwave"))
    factors = {(f.category or f.item.code): f.factor for f in heat.factors}
    assert factors == {"consumable": Decimal("1.5"), "FFP3": 3, "TUBE": 2}
    # TUBE's own ×2 beats consumables ×1.5: 250 / 20 a day = 12.5 days = 1.8 weeks.
    rows = item_rows(main_html(client.get(f"/coverage?{ON}&scenario=Heatwave")))
    assert cells(rows["TUBE"])[2] == "1.8 Below minimum"
    edit = client.get(f"/admin/scenarios/{heat.id}").text
    assert "FFP3 3\nTUBE 2</textarea>" in edit and 'value="1.5"' in edit
    client.post(f"/admin/scenarios/{heat.id}", data={"name": "Heatwave", "consumable": "4"})
    session.expire_all()
    assert {(f.category or f.item.code): f.factor for f in heat.factors} == {"consumable": 4}


def test_scenario_form_refusals(client, auth, centre, session):
    auth.login("admin@example.org")
    for data, message in (
            ({"name": "X", "item_factors": "NOPE 2"}, "Line 1: no item with code NOPE."),
            ({"name": "X", "item_factors": "TUBE"}, "Line 1: write an item code and a factor"),
            ({"name": "X", "item_factors": "TUBE 0"}, "Line 1: the factor for TUBE must be a number above zero."),
            ({"name": "X"}, "A scenario needs at least one demand factor.")):
        response = client.post("/admin/scenarios", data=data)
        assert response.status_code == 422, data
        assert message in response.text
    assert session.scalar(sa.select(Scenario).where(Scenario.name == "X")) is None


# --- landing and navigation ----------------------------------------------------------------------

@pytest.mark.parametrize("who,target", [
    ("supply", "/coverage"),
    ("municipal", "/duty/ppe"),
    ("outsider", "/duty/ppe"),
    ("pharmacist", "/duty/critical-drugs"),
    ("coordinator", "/coverage/region"),
    ("admin", "/coverage"),
    ("viewer", "/coverage"),  # the world's viewer belongs to the supply centre
])
def test_each_role_lands_on_its_coverage_page(client, auth, world, who, target):
    auth.login(f"{who}@example.org")
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == target


def test_a_viewer_without_a_supply_centre_lands_on_the_items(client, auth, world, session):
    factories.user(session, "viewer", world.municipality, email="mun-viewer@example.org")
    session.commit()
    auth.login("mun-viewer@example.org")
    assert client.get("/").headers["Location"] == "/items"


def test_navigation_offers_coverage_region_and_policies(client, auth, world):
    auth.login("supply@example.org")
    nav = client.get("/items").text.split("<main", 1)[0]
    assert ">Coverage<" in nav and ">Region<" not in nav and "Coverage policies" not in nav
    client.post("/logout")
    auth.login("coordinator@example.org")
    nav = client.get("/items").text.split("<main", 1)[0]
    assert ">Region<" in nav
    client.post("/logout")
    auth.login("admin@example.org")
    nav = client.get("/items").text.split("<main", 1)[0]
    assert "Coverage policies" in nav and ">Scenarios<" in nav


# --- cost: a fixed number of queries whatever the number of rows -----------------------------------

def _statements(engine, fn) -> int:
    with counted(engine) as seen:
        fn()
    return len(seen)


def test_pages_cost_the_same_number_of_queries_for_more_rows(client, auth, centre, session, engine):
    auth.login("admin@example.org")
    urls = [f"/coverage?organisation=SC&{ON}&scenario=Pandemic+wave", f"/coverage/region?parent=REG&{ON}",
            f"/coverage/SC/TUBE?{ON}", "/admin/policies"]

    def load() -> list[int]:
        return [_statements(engine, lambda u=url: client.get(u)) for url in urls]

    before = load()
    ctx = factories.ctx()
    for n in range(8):
        extra = factories.item(session, f"EXTRA-{n}", "consumable")
        coverage.set_manual_baseline(session, ctx, organisation=centre.centre, item=extra, weekly_use=7)
        factories.receive(session, centre.centre_depot, extra, f"X{n}", day(50 + n), 10 + n)
        factories.receive(session, centre.centre_depot, extra, f"Y{n}", day(90 + n), 10 + n)
        coverage.save_policy(session, name=f"Extra {n}", organisation_kind="supply_centre", item=extra,
                              pool="operational", min_days=7, target_days=14)
    session.commit()
    assert len(item_rows(main_html(client.get(f"/coverage?{ON}")))) == 11
    assert load() == before


# --- CSRF ------------------------------------------------------------------------------------------

class TestCsrf:
    def test_baseline_post_needs_the_token_from_the_page(self, csrf_client, auth, centre, session):
        auth.login(centre.users["supply"].email)
        count = session.scalar(sa.select(sa.func.count(Baseline.id)))
        data = {"weekly_use": "35", "valid_from": TODAY.isoformat()}
        assert csrf_client.post("/coverage/SC/TUBE/baseline", data=data).status_code == 400
        assert session.scalar(sa.select(sa.func.count(Baseline.id))) == count
        token = csrf_token(csrf_client.get(f"/coverage/SC/TUBE?{ON}").text)
        assert csrf_client.post("/coverage/SC/TUBE/baseline", data={**data, "csrf_token": token}).status_code == 302
        assert session.scalar(sa.select(sa.func.count(Baseline.id))) == count + 1

    def test_policy_post_needs_the_token(self, csrf_client, auth, centre, session):
        auth.login(centre.users["admin"].email)
        data = {"name": "Forged", "organisation_kind": "municipality", "category": "ppe", "pool": "all",
                "min_days": "1", "target_days": "2"}
        assert csrf_client.post("/admin/policies", data=data).status_code == 400
        assert session.scalar(sa.select(Policy).where(Policy.name == "Forged")) is None
