"""The coverage API (API.md, *Coverage*) and what coverage is measured against: baselines,
policies and scenarios. Numbers are worked by hand in tests/coverage/test_services.py; here
they must come out of the API with the same values, rounded as documented."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from stockpile.coverage import services as coverage
from stockpile.auth import services as auth
from stockpile.extensions import db
from stockpile.inventory import services as inventory
from stockpile.coverage.models import Baseline, Policy, Scenario
from stockpile.inventory.models import Lot
from tests import factories

TODAY = factories.TODAY  # 2026-11-23: the fixed evaluation date of the worked examples


def day(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


def noon(day_: dt.date) -> dt.datetime:
    return dt.datetime(day_.year, day_.month, day_.day, 12, tzinfo=dt.timezone.utc)


def _headers(world, who) -> dict[str, str]:
    return who if isinstance(who, dict) else world.headers(who)


def call(client, world, who, method, path, body=None, query=None, **headers):
    # What the test arranged is committed first, as it would be before a real request: a
    # refused request rolls the session back, and must not take the test's data with it.
    db.fixed_session.commit()
    return client.open(f"/api/v1{path}", method=method, json=body, query_string=query,
                       headers={**_headers(world, who), **headers})


def get(client, world, who, path, **query):
    return call(client, world, who, "GET", path, query=query)


def assert_error(response, status, code, *fields):
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    for field in fields:
        assert field in error["fields"], error
    return error


def headers_for(session, role, organisation, email):
    user = factories.user(session, role, organisation, email=email)
    return {"Authorization": f"Bearer {auth.create_token(session, user)}"}


def by_item(response):
    assert response.status_code == 200, response.get_json()
    return {row["item"]: row for row in response.get_json()["items"]}


@pytest.fixture
def duty(world, session):
    """The municipality MUN holding MASK under the PPE duty, as in test_coverage's worked example:
    a § 8a baseline (2024 replaced by 2022, a quarter of a year = 5 000 masks), lot A 3000
    expiring in 29 days, lot B 1500 in the emergency pool, an expired and a quarantined lot."""
    mun, depot, mask = world.municipality, world.municipal_depot, world.mask
    coverage.set_annual_baseline(session, factories.ctx(), organisation=mun, item=mask,
                                  annual_use={2022: 19_000, 2023: 20_000, 2024: 90_000, 2025: 21_000},
                                  deviating_years=[2024], valid_from=dt.date(2026, 1, 1))
    factories.receive(session, depot, mask, "A", day(29), 3000)
    factories.receive(session, depot, mask, "B", dt.date(2028, 6, 30), 1500, pool="emergency")
    factories.receive(session, depot, mask, "GONE", day(-1), 400, today=day(-10))
    factories.receive(session, depot, mask, "Q", dt.date(2028, 1, 1), 500)
    quarantined = session.scalar(sa.select(Lot).where(Lot.lot_number == "Q"))
    inventory.set_lot_status(session, factories.ctx(), lot=quarantined, status="quarantined", reason="wet")
    return world


WORKED_ROW = {
    "organisation": "MUN", "item": "MASK", "policy": "PPE duty", "pool": "all",
    "usable": 4500,                    # A 3000 + B 1500; not the expired or quarantined lots
    "weekly_use": 383.2991,            # 20 000 · 7 / 365.25
    "baseline_source": "annual_3y",
    "coverage_days": 82.18,            # 4500 / (20 000 / 365.25) = 82.18125
    "coverage_weeks": 11.7,
    "expiry_aware_days": 57.39,        # A lasts 30 days (1357.29 expire), then B 27.39375 days
    "at_risk": 1357,
    "min_days": 91.3125, "target_days": 91.3125, "max_days": None,
    "status": "below_min",
    "shortfall": 500,                  # 91.3125 · 20 000 / 365.25 = 5000 − 4500
    "no_baseline_reason": None,
    "evaluated_on": "2026-11-23",
    "scenario": None,
}


# --- GET /coverage -------------------------------------------------------------------------

def test_coverage_row_of_the_worked_example(client, duty):
    response = get(client, duty, "municipal", "/coverage", organisation="MUN", date=TODAY.isoformat())
    assert response.status_code == 200
    assert response.get_json() == {"items": [WORKED_ROW], "page": 1, "per_page": 50, "total": 1}


def test_coverage_on_another_date(client, duty):
    # On day 30 lot A has expired: 1500 left, 1500 / (20 000 / 365.25) = 27.39375 days.
    [row] = get(client, duty, "municipal", "/coverage", organisation="MUN",
                date=day(30).isoformat()).get_json()["items"]
    assert row == {**WORKED_ROW, "usable": 1500, "coverage_days": 27.39, "coverage_weeks": 3.9,
                   "expiry_aware_days": 27.39, "at_risk": 0, "shortfall": 3500,
                   "evaluated_on": day(30).isoformat()}


def test_coverage_without_a_date_is_evaluated_today(client, duty):
    [row] = get(client, duty, "municipal", "/coverage", organisation="MUN").get_json()["items"]
    assert row["evaluated_on"] == TODAY.isoformat()


def test_coverage_under_the_pandemic_scenario(client, duty):
    # PPE × 4: 82.18125 / 4 = 20.5453125 days; A (13.70 days) is used before it expires.
    # A quarter's requirement at four times the use is 20 000 masks → 15 500 short.
    [row] = get(client, duty, "municipal", "/coverage", organisation="MUN", date=TODAY.isoformat(),
                scenario="Pandemic wave").get_json()["items"]
    assert row == {**WORKED_ROW, "coverage_days": 20.55, "coverage_weeks": 2.9, "expiry_aware_days": 20.55,
                   "at_risk": 0, "shortfall": 15_500, "scenario": "Pandemic wave"}
    # The baseline is the same; the scenario multiplies use, it does not change it.
    assert row["weekly_use"] == WORKED_ROW["weekly_use"]


def test_no_baseline_rows_have_null_coverage_and_say_why(client, duty, session):
    glove = duty.glove
    gown = factories.item(session, "GOWN", "ppe", ppe_group="gowns")
    # GLOVE arrives on the evaluation day itself: no baseline and no issue history before it.
    factories.receive(session, duty.municipal_depot, glove, "G1", day(300), 200, occurred_at=noon(TODAY))
    # GOWN has a baseline, but of zero use: coverage is unknown, never "ok" and never infinite.
    coverage.set_manual_baseline(session, factories.ctx(), organisation=duty.municipality, item=gown,
                                  weekly_use=0, valid_from=day(-30))
    factories.receive(session, duty.municipal_depot, gown, "W1", day(300), 50, occurred_at=noon(TODAY))
    rows = by_item(get(client, duty, "municipal", "/coverage", organisation="MUN", date=TODAY.isoformat()))
    assert set(rows) == {"MASK", "GLOVE", "GOWN"}
    unknown = {"coverage_days": None, "coverage_weeks": None, "expiry_aware_days": None, "at_risk": None,
               "shortfall": None, "status": "no_baseline"}
    assert rows["GLOVE"] == {**WORKED_ROW, **unknown, "item": "GLOVE", "usable": 200, "weekly_use": None,
                             "baseline_source": None,
                             "no_baseline_reason": "No baseline entered and no issue history."}
    assert rows["GOWN"] == {**rows["GOWN"], **unknown, "usable": 50, "weekly_use": 0.0,
                            "baseline_source": "manual"}
    assert "zero" in rows["GOWN"]["no_baseline_reason"]
    # Below minimum first, then the rows without a baseline.
    listed = get(client, duty, "municipal", "/coverage", organisation="MUN", date=TODAY.isoformat())
    assert [r["status"] for r in listed.get_json()["items"]] == ["below_min", "no_baseline", "no_baseline"]


def test_coverage_filters_and_pages(client, duty, session):
    factories.receive(session, duty.municipal_depot, duty.glove, "G1", day(300), 200, occurred_at=noon(TODAY))
    date = TODAY.isoformat()
    only_mask = get(client, duty, "municipal", "/coverage", organisation="MUN", item="MASK", date=date)
    assert [r["item"] for r in only_mask.get_json()["items"]] == ["MASK"]
    # The PPE duty's pool is "all": no policy of the operational pool applies to a municipality.
    assert get(client, duty, "municipal", "/coverage", organisation="MUN", pool="operational",
               date=date).get_json()["total"] == 0
    assert get(client, duty, "municipal", "/coverage", organisation="MUN", pool="all",
               date=date).get_json()["total"] == 2
    second = get(client, duty, "municipal", "/coverage", organisation="MUN", date=date, per_page=1, page=2)
    assert second.get_json() == {"items": [second.get_json()["items"][0]], "page": 2, "per_page": 1, "total": 2}
    assert second.get_json()["items"][0]["item"] == "GLOVE"
    assert get(client, duty, "municipal", "/coverage", organisation="MUN", date=date,
               page=3, per_page=1).get_json()["items"] == []


@pytest.mark.parametrize("query,status,code,field", [
    ({}, 400, "invalid", "organisation"),
    ({"organisation": "NOPE"}, 404, "not_found", "organisation"),
    ({"organisation": "MUN", "item": "NOPE"}, 404, "not_found", "item"),
    ({"organisation": "MUN", "scenario": "Zombie outbreak"}, 404, "not_found", "scenario"),
    ({"organisation": "MUN", "scenario": "S" * 101}, 400, "invalid", "scenario"),
    ({"organisation": "MUN", "date": "2026-02-30"}, 400, "invalid", "date"),
    ({"organisation": "MUN", "date": "23.11.2026"}, 400, "invalid", "date"),
    ({"organisation": "MUN", "date": "0001-01-01"}, 400, "invalid", "date"),
    ({"organisation": "MUN", "date": "9999-12-31"}, 400, "invalid", "date"),
    ({"organisation": "MUN", "pool": "sometimes"}, 400, "invalid", "pool"),
    ({"organisation": "MUN", "per_page": 501}, 400, "invalid", "per_page"),
    ({"organisation": "MUN", "page": 0}, 400, "invalid", "page"),
    ({"organisation": "MUN", "colour": "red"}, 400, "invalid", "colour"),
    ({"organisation": "M\x00N"}, 400, "invalid", "organisation"),
])
def test_bad_coverage_queries_are_refused_naming_the_field(client, duty, query, status, code, field):
    assert_error(get(client, duty, "municipal", "/coverage", **query), status, code, field)


@pytest.mark.parametrize("who,organisation,status", [
    ("municipal", "MUN", 200),
    ("municipal", "SC", 403),
    ("municipal", "OTHER", 403),
    ("coordinator", "MUN", 200),
    ("coordinator", "SC", 200),
    ("coordinator", "OTHER", 403),
    ("outsider", "MUN", 403),
    ("supply", "MUN", 403),
    ("viewer", "MUN", 403),
    ("admin", "MUN", 200),
    ("admin", "OTHER", 200),
])
def test_coverage_is_read_only_where_the_user_may_read(client, duty, who, organisation, status):
    response = get(client, duty, who, "/coverage", organisation=organisation, date=TODAY.isoformat())
    assert response.status_code == status, response.get_json()
    if status == 403:
        assert_error(response, 403, "forbidden")
        assert "MASK" not in response.get_data(as_text=True)
    elif organisation == "MUN":
        assert response.get_json()["items"] == [WORKED_ROW]


def test_missing_token_is_401(client, duty):
    db.fixed_session.commit()
    assert_error(client.get("/api/v1/coverage?organisation=MUN"), 401, "unauthenticated")
    assert_error(client.get("/api/v1/coverage/summary?parent=REG"), 401, "unauthenticated")


# --- GET /coverage/summary -----------------------------------------------------------------

@pytest.fixture
def region(world, session):
    """Region NORD: municipalities K1, K2, K3 under the PPE duty (MASK and GLOVE each) and a
    supply centre FS (TUBE against safety stock), all on manual baselines from 30 days ago."""
    ctx = factories.ctx()
    nord = factories.org(session, "NORD", "region")
    tube = factories.item(session, "TUBE", "consumable")
    depots = {}
    for code, kind in (("K1", "municipality"), ("K2", "municipality"), ("K3", "municipality"),
                       ("FS", "supply_centre")):
        org = factories.org(session, code, kind, parent="NORD")
        depots[code] = factories.depot(session, org, f"{code}-D")

    def baseline(code, item, weekly):
        coverage.set_manual_baseline(session, ctx, organisation=depots[code].organisation, item=item,
                                      weekly_use=weekly, valid_from=day(-30))

    def stock(code, item, quantity, expiry=None):
        factories.receive(session, depots[code], item, f"{code}-{item.code}", expiry or day(400), quantity,
                          occurred_at=noon(TODAY))

    mask, glove = world.mask, world.glove
    # K1: MASK 1400 at 100/week = 98 days, GLOVE 1000 at 70/week = 100 days: both meet 91.3125.
    baseline("K1", mask, 100), stock("K1", mask, 1400)
    baseline("K1", glove, 70), stock("K1", glove, 1000)
    # K2: MASK 1000 = 70 days, below the minimum. GLOVE 100 days, but its lot expires after
    # 50 days (d = 50 at 10 a day): 500 used, 500 at risk of expiry.
    baseline("K2", mask, 100), stock("K2", mask, 1000)
    baseline("K2", glove, 70), stock("K2", glove, 1000, day(49))
    # K3: a MASK baseline and nothing on hand (0 days); GLOVE held without a baseline.
    baseline("K3", mask, 100)
    stock("K3", glove, 300)
    # FS: TUBE 250 at 70/week = 25 days: above the 21-day minimum, below the 28-day target.
    baseline("FS", tube, 70), stock("FS", tube, 250)
    return nord


def test_region_summary_counts_by_hand(client, world, region, session):
    nord = headers_for(session, "coordinator", region, "nord-coordinator@example.org")
    response = get(client, world, nord, "/coverage/summary", parent="NORD", date=TODAY.isoformat())
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["parent"], body["evaluated_on"], body["scenario"]) == ("NORD", "2026-11-23", None)
    assert body["policies"] == [
        {"policy": "PPE duty", "organisations": 3, "meeting_target": 1, "share_meeting_target": 0.333,
         "items": 6, "items_below_min": 2, "items_no_baseline": 1, "at_risk": 500},
        {"policy": "Supply centre safety stock: consumables", "organisations": 1, "meeting_target": 0,
         "share_meeting_target": 0.0, "items": 1, "items_below_min": 0, "items_no_baseline": 0,
         "at_risk": 0},
    ]

    def member(org, policy, items, meeting, below, none, risk):
        return {"organisation": org, "policy": policy, "items": items, "meeting_target": meeting,
                "below_min": below, "no_baseline": none, "at_risk": risk, "meets_target": items == meeting}

    assert body["members"] == [
        member("K1", "PPE duty", 2, 2, 0, 0, 0),
        member("K2", "PPE duty", 2, 1, 1, 0, 500),
        member("K3", "PPE duty", 2, 0, 1, 1, 0),
        member("FS", "Supply centre safety stock: consumables", 1, 0, 0, 0, 0),
    ]
    # An administrator sees the same.
    assert get(client, world, "admin", "/coverage/summary", parent="NORD",
               date=TODAY.isoformat()).get_json() == body


def test_region_summary_under_a_scenario(client, world, region, session):
    # PPE × 4: K1's MASK 98 days become 24.5 and its GLOVE 25: nobody meets the duty.
    body = get(client, world, "admin", "/coverage/summary", parent="NORD", date=TODAY.isoformat(),
               scenario="Pandemic wave").get_json()
    ppe = next(p for p in body["policies"] if p["policy"] == "PPE duty")
    assert (ppe["meeting_target"], ppe["items_below_min"], body["scenario"]) == (0, 5, "Pandemic wave")


@pytest.mark.parametrize("who,parent,status", [
    ("coordinator", "NORD", 403),   # another region's coordinator
    ("municipal", "REG", 403),
    ("outsider", "NORD", 403),
    ("supply", "REG", 403),
])
def test_region_summary_needs_read_access_to_the_region(client, world, region, who, parent, status):
    response = get(client, world, who, "/coverage/summary", parent=parent, date=TODAY.isoformat())
    assert_error(response, status, "forbidden")


def test_coordinator_summary_of_their_own_region(client, world, session):
    coverage.set_manual_baseline(session, factories.ctx(), organisation=world.municipality,
                                  item=world.mask, weekly_use=70, valid_from=day(-30))
    factories.receive(session, world.municipal_depot, world.mask, "M1", day(400), 1000, occurred_at=noon(TODAY))
    body = get(client, world, "coordinator", "/coverage/summary", parent="REG",
               date=TODAY.isoformat()).get_json()
    # 1000 at 10 a day = 100 days ≥ 91.3125.
    assert body["members"] == [{"organisation": "MUN", "policy": "PPE duty", "items": 1, "meeting_target": 1,
                                "below_min": 0, "no_baseline": 0, "at_risk": 0, "meets_target": True}]


def test_summary_counts_only_members_the_user_may_read(client, world, region, session):
    # A viewer at the region itself may read the region, not its members' stock.
    viewer = headers_for(session, "viewer", region, "nord-viewer@example.org")
    body = get(client, world, viewer, "/coverage/summary", parent="NORD", date=TODAY.isoformat()).get_json()
    assert (body["policies"], body["members"]) == ([], [])


@pytest.mark.parametrize("query,status,field", [
    ({}, 400, "parent"),
    ({"parent": "NOPE"}, 404, "parent"),
    ({"parent": "NORD", "date": "2026-11-31"}, 400, "date"),
    ({"parent": "NORD", "scenario": "Zombie outbreak"}, 404, "scenario"),
    ({"parent": "NORD", "page": "x"}, 400, "page"),
])
def test_bad_summary_queries(client, world, region, query, status, field):
    response = get(client, world, "admin", "/coverage/summary", **query)
    assert_error(response, status, "invalid" if status == 400 else "not_found", field)


# --- baselines -----------------------------------------------------------------------------

def baseline_count(session):
    return session.scalar(sa.select(sa.func.count(Baseline.id)))


def put_baseline(client, world, who, body, path="/baselines/MUN/MASK", **headers):
    return call(client, world, who, "PUT", path, body, **headers)


def test_put_manual_baseline(client, world):
    valid_from = (TODAY - dt.timedelta(days=30)).isoformat()
    response = put_baseline(client, world, "municipal", {"weekly_use": 400, "source": "manual",
                                                         "valid_from": valid_from, "note": "Use in 2025"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    stored = body["baseline"]
    assert stored == {**stored, "organisation": "MUN", "item": "MASK", "source": "manual",
                      "weekly_use": 400.0, "valid_from": valid_from, "annual_use": None,
                      "years_used": None, "years_replaced": None, "note": "Use in 2025",
                      "recorded_by": "municipal@example.org"}
    assert dt.datetime.fromisoformat(stored["recorded_at"]).tzinfo is not None
    assert body["in_force"] == {"id": stored["id"], "weekly_use": 400.0, "source": "manual",
                                "valid_from": valid_from, "years_used": None, "years_replaced": None,
                                "explanation": f"Entered by hand, valid from {valid_from}: Use in 2025"}
    assert (body["organisation"], body["item"], body["no_baseline_reason"]) == ("MUN", "MASK", None)
    assert body["evaluated_on"] == TODAY.isoformat()
    # Coverage now measures MASK against it (a baseline alone brings the item under the duty).
    [row] = get(client, world, "municipal", "/coverage", organisation="MUN").get_json()["items"]
    assert (row["item"], row["weekly_use"], row["baseline_source"], row["usable"]) == ("MASK", 400.0, "manual", 0)


def section_8a(year: int) -> dict:
    """The § 8a example, for the three years before ``year``: the year before last deviates
    (a pandemic year) and is replaced by the year before the three."""
    return {"annual_use": {str(year - 4): 19_000, str(year - 3): 20_000, str(year - 2): 90_000,
                           str(year - 1): 21_000},
            "deviating_years": [year - 2], "valid_from": f"{year}-01-01"}


def test_put_annual_baseline_with_a_deviating_year(client, world):
    y = TODAY.year
    response = put_baseline(client, world, "municipal", section_8a(y))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    # Years used: y−4, y−3, y−1 (y−2 replaced by y−4); mean 20 000 a year → 20 000 · 7 / 365.25 a week.
    assert body["baseline"] == {**body["baseline"], "source": "annual_3y", "weekly_use": 383.2991,
                                "valid_from": f"{y}-01-01", "years_used": [y - 4, y - 3, y - 1],
                                "years_replaced": {str(y - 2): y - 4}, "note": None,
                                "annual_use": section_8a(y)["annual_use"]}
    assert body["in_force"] == {
        "id": body["baseline"]["id"], "weekly_use": 383.2991, "source": "annual_3y", "valid_from": f"{y}-01-01",
        "years_used": [y - 4, y - 3, y - 1], "years_replaced": {str(y - 2): y - 4},
        "explanation": f"A quarter of the mean annual use of {y - 4}, {y - 3}, {y - 1} "
                       f"({y - 2} replaced by {y - 4})"}


def test_source_annual_3y_may_be_named(client, world):
    body = {**section_8a(TODAY.year), "source": "annual_3y"}
    assert put_baseline(client, world, "municipal", body).get_json()["baseline"]["source"] == "annual_3y"


def test_a_manual_baseline_wins_over_a_newer_annual_one(client, world):
    manual = put_baseline(client, world, "municipal", {"weekly_use": 400}).get_json()["baseline"]
    response = put_baseline(client, world, "municipal", section_8a(TODAY.year))
    body = response.get_json()
    # Stored as asked, but the manual one stays in force: the answer says so.
    assert body["baseline"]["source"] == "annual_3y"
    assert body["in_force"]["source"] == "manual" and body["in_force"]["weekly_use"] == 400.0
    assert body["in_force"]["id"] == manual["id"]
    shown = get(client, world, "municipal", "/baselines/MUN/MASK").get_json()
    assert shown["in_force"]["id"] == manual["id"]
    assert [b["source"] for b in shown["history"]] == ["annual_3y", "manual"]
    assert shown["history"][0] == body["baseline"]


def test_a_future_baseline_is_stored_but_not_yet_in_force(client, world):
    later = TODAY + dt.timedelta(days=10)
    body = put_baseline(client, world, "municipal", {"weekly_use": 70, "valid_from": later.isoformat()}).get_json()
    assert body["baseline"]["valid_from"] == later.isoformat()
    assert body["in_force"] is None
    assert body["no_baseline_reason"] == "No baseline entered and no issue history."
    on_the_day = get(client, world, "municipal", "/baselines/MUN/MASK", date=later.isoformat()).get_json()
    assert on_the_day["in_force"]["weekly_use"] == 70.0 and on_the_day["evaluated_on"] == later.isoformat()


def test_a_computed_baseline_in_force_has_no_stored_row(client, world, session):
    # Stock on hand through the whole 13-week window before TODAY, 70 issued (normal) in it:
    # 70 over 91 in-stock days = 70 · 7 / 91 = 5.3846 a week.
    factories.receive(session, world.municipal_depot, world.mask, "M1", dt.date(2028, 1, 1), 1000,
                      today=day(-100), occurred_at=noon(day(-100)))
    inventory.issue(session, factories.ctx(today=day(-50), occurred_at=noon(day(-50))),
                    depot=world.municipal_depot, item=world.mask, quantity=70)
    body = get(client, world, "municipal", "/baselines/MUN/MASK", date=TODAY.isoformat()).get_json()
    assert body["in_force"] == {"id": None, "weekly_use": 5.3846, "source": "computed", "valid_from": None,
                                "years_used": None, "years_replaced": None,
                                "explanation": "70 issued (normal) over 91 in-stock days of the last 91"}
    assert body["history"] == []


def test_weekly_use_is_kept_to_four_decimals(client, world):
    body = put_baseline(client, world, "municipal", {"weekly_use": 383.29911019849415}).get_json()
    assert body["baseline"]["weekly_use"] == body["in_force"]["weekly_use"] == 383.2991


@pytest.mark.parametrize("path,who,status", [
    ("/baselines/MUN/MASK", "municipal", 200),
    ("/baselines/MUN/MASK", "admin", 200),
    ("/baselines/MUN/MASK", "coordinator", 403),   # reads the region, records nothing
    ("/baselines/MUN/MASK", "outsider", 403),
    ("/baselines/MUN/MASK", "supply", 403),
    ("/baselines/SC/MASK", "supply", 200),
    ("/baselines/SC/MASK", "pharmacist", 200),
    ("/baselines/SC/MASK", "viewer", 403),
    ("/baselines/SC/MASK", "municipal", 403),
])
def test_who_may_set_baselines(client, world, session, path, who, status):
    before = baseline_count(session)
    response = put_baseline(client, world, who, {"weekly_use": 10}, path=path)
    assert response.status_code == status, response.get_json()
    assert baseline_count(session) == before + (1 if status == 200 else 0)
    if status == 403:
        assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("who,status", [("municipal", 200), ("coordinator", 200), ("admin", 200),
                                        ("outsider", 403), ("supply", 403)])
def test_who_may_read_baselines(client, world, who, status):
    response = get(client, world, who, "/baselines/MUN/MASK")
    assert response.status_code == status, response.get_json()


@pytest.mark.parametrize("body,field", [
    ({}, "weekly_use"),
    ({"weekly_use": 5, "annual_use": {"2025": 1}}, "annual_use"),
    ({"weekly_use": -1}, "weekly_use"),
    ({"weekly_use": "12"}, "weekly_use"),
    ({"weekly_use": True}, "weekly_use"),
    ({"weekly_use": None}, "weekly_use"),
    ({"weekly_use": 10**13}, "weekly_use"),
    ({"weekly_use": 1e300}, "weekly_use"),
    ({"weekly_use": 5, "source": "computed"}, "source"),
    ({"weekly_use": 5, "source": "annual_3y"}, "source"),
    ({"weekly_use": 5, "valid_from": "2026-13-01"}, "valid_from"),
    ({"weekly_use": 5, "valid_from": "0001-01-01"}, "valid_from"),
    ({"weekly_use": 5, "deviating_years": [2024]}, "deviating_years"),
    ({"weekly_use": 5, "note": "a\x00b"}, "note"),
    ({"weekly_use": 5, "colour": "red"}, "colour"),
    ({"annual_use": {}}, "annual_use"),
    ({"annual_use": {"20x3": 5}}, "annual_use"),
    ({"annual_use": {"2023": -5}}, "annual_use"),
    ({"annual_use": {"2023": 1.5}}, "annual_use"),
    ({"annual_use": [2023, 5]}, "annual_use"),
    ({"annual_use": {"2025": 1}, "note": "x"}, "note"),
    ({"annual_use": {"2025": 1}, "source": "manual"}, "source"),
    ({"annual_use": {"2025": 1}, "deviating_years": ["2024"]}, "deviating_years"),
    # § 8a counts the three years before valid_from's year; 2025 deviates, so 2022 is needed.
    ({"annual_use": {"2023": 1, "2024": 2, "2025": 3}, "deviating_years": [2025],
      "valid_from": "2026-03-01"}, "annual_use"),
])
def test_invalid_baselines_are_400_naming_the_field(client, world, session, body, field):
    before = baseline_count(session)
    assert_error(put_baseline(client, world, "municipal", body), 400, "invalid", field)
    assert baseline_count(session) == before


def test_the_missing_year_is_named(client, world):
    response = put_baseline(client, world, "municipal", {"annual_use": {"2023": 1, "2024": 2, "2025": 3},
                                                         "deviating_years": [2025], "valid_from": "2026-03-01"})
    assert "annual use for 2022 is needed (in place of 2025)" in response.get_json()["error"]["message"]


def test_baseline_body_that_is_not_json_or_not_a_number(client, world):
    db.fixed_session.commit()
    nan = client.put("/api/v1/baselines/MUN/MASK", data='{"weekly_use": NaN}',
                     content_type="application/json", headers=world.headers("municipal"))
    assert_error(nan, 400, "invalid", "weekly_use")
    garbage = client.put("/api/v1/baselines/MUN/MASK", data="weekly_use=5",
                         content_type="application/x-www-form-urlencoded", headers=world.headers("municipal"))
    assert_error(garbage, 400, "malformed", "_body")


@pytest.mark.parametrize("path,field", [("/baselines/NOPE/MASK", "organisation"),
                                        ("/baselines/MUN/NOPE", "item"),
                                        ("/baselines/MUN/" + "X" * 300, "item")])
def test_baselines_of_unknown_codes_are_404(client, world, path, field):
    assert_error(put_baseline(client, world, "admin", {"weekly_use": 1}, path=path), 404, "not_found", field)
    assert_error(get(client, world, "admin", path), 404, "not_found", field)


def test_baseline_put_is_idempotent_with_a_key(client, world, session):
    before = baseline_count(session)
    key = {"Idempotency-Key": "baseline-0001"}
    first = put_baseline(client, world, "municipal", {"weekly_use": 400}, **key)
    retry = put_baseline(client, world, "municipal", {"weekly_use": 400}, **key)
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.get_json() == first.get_json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert baseline_count(session) == before + 1
    other = put_baseline(client, world, "municipal", {"weekly_use": 500}, **key)
    assert_error(other, 409, "idempotency_key_reused", "Idempotency-Key")
    assert baseline_count(session) == before + 1


# --- policies ------------------------------------------------------------------------------

SEEDED_POLICIES = {"Supply centre safety stock: consumables", "Supply centre safety stock: PPE",
                   "Supply centre safety stock: drugs", "Supply centre emergency stock", "PPE duty",
                   "Critical drug list", "Wholesaler critical drugs"}

GLOVE_POLICY = {"name": "Gloves at MUN", "organisation": "MUN", "item": "GLOVE", "pool": "all",
                "min_days": 30, "target_days": 60, "max_days": 120}


def post_policy(client, world, who, body, **headers):
    return call(client, world, who, "POST", "/policies", body, **headers)


def policy_id(session, name):
    return session.scalar(sa.select(Policy.id).where(Policy.name == name))


def test_anyone_signed_in_lists_the_seeded_policies(client, world):
    listed = get(client, world, "viewer", "/policies", per_page=500).get_json()
    names = {p["name"] for p in listed["items"]}
    assert names >= SEEDED_POLICIES and listed["total"] == len(listed["items"])
    duty = next(p for p in listed["items"] if p["name"] == "PPE duty")
    assert duty == {**duty, "organisation_kind": "municipality", "organisation": None, "category": "ppe",
                    "item_list": None, "item": None, "pool": "all", "min_days": 91.3125,
                    "target_days": 91.3125, "max_days": None, "active": True}
    drugs = next(p for p in listed["items"] if p["name"] == "Critical drug list")
    assert (drugs["item_list"], drugs["min_days"], drugs["category"]) == ("critical-drugs", 14.0, None)


def test_admin_creates_a_policy_and_coverage_uses_it(client, world, session):
    response = post_policy(client, world, "admin", GLOVE_POLICY)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created == {**created, **GLOVE_POLICY, "organisation_kind": None, "category": None,
                       "item_list": None, "min_days": 30.0, "target_days": 60.0, "max_days": 120.0,
                       "active": True}
    assert created["id"] == policy_id(session, "Gloves at MUN")
    assert get(client, world, "municipal", f"/policies/{created['id']}").get_json() == created
    listed = get(client, world, "municipal", "/policies", per_page=500).get_json()["items"]
    assert created in listed
    # 400 gloves at 10 a day = 40 days: below min of the PPE duty (91.3125), but the item policy
    # for this one organisation is more specific: between 30 and 60 → below target, 200 short.
    coverage.set_manual_baseline(session, factories.ctx(), organisation=world.municipality, item=world.glove,
                                  weekly_use=70, valid_from=day(-30))
    factories.receive(session, world.municipal_depot, world.glove, "G1", day(300), 400)
    [row] = get(client, world, "municipal", "/coverage", organisation="MUN", item="GLOVE",
                date=TODAY.isoformat()).get_json()["items"]
    assert (row["policy"], row["status"], row["coverage_days"], row["shortfall"]) == \
        ("Gloves at MUN", "below_target", 40.0, 200)
    assert (row["min_days"], row["target_days"], row["max_days"]) == (30.0, 60.0, 120.0)


def test_policy_by_kind_and_list(client, world):
    body = {"name": "Pharmacy antidotes", "organisation_kind": "hospital_pharmacy", "item_list": "antidotes",
            "pool": "emergency", "min_days": 91.3125, "target_days": 91.3125, "active": False}
    created = post_policy(client, world, "admin", body).get_json()
    assert created == {**created, **body, "organisation": None, "item": None, "category": None,
                       "max_days": None}


@pytest.mark.parametrize("change,field", [
    ({"name": None}, "name"),
    ({"name": ""}, "name"),
    ({"name": "N" * 201}, "name"),
    ({"organisation_kind": "municipality"}, "organisation"),        # and organisation: both
    ({"organisation": None}, "organisation"),                       # neither
    ({"category": "ppe"}, "item"),                                  # and item: two item scopes
    ({"item": None}, "item"),                                       # no item scope
    ({"organisation": None, "organisation_kind": "castle"}, "organisation_kind"),
    ({"item": None, "category": "castle"}, "category"),
    ({"item": None, "item_list": "has space"}, "item_list"),
    ({"pool": None}, "pool"),
    ({"pool": "sometimes"}, "pool"),
    ({"min_days": "14"}, "min_days"),
    ({"min_days": -1}, "min_days"),
    ({"min_days": True}, "min_days"),
    ({"target_days": 40_000}, "target_days"),
    ({"min_days": 61}, "target_days"),                              # target below min
    ({"max_days": 59}, "max_days"),                                 # max below target
    ({"active": "yes"}, "active"),
    ({"colour": "red"}, "colour"),
])
def test_invalid_policies_are_400_naming_the_field(client, world, session, change, field):
    body = {k: v for k, v in {**GLOVE_POLICY, **change}.items() if v is not None}
    assert_error(post_policy(client, world, "admin", body), 400, "invalid", field)
    assert policy_id(session, body.get("name", "")) is None


@pytest.mark.parametrize("change,field", [({"organisation": "NOPE"}, "organisation"), ({"item": "NOPE"}, "item")])
def test_policy_naming_unknown_codes_is_404(client, world, change, field):
    assert_error(post_policy(client, world, "admin", {**GLOVE_POLICY, **change}), 404, "not_found", field)


def test_duplicate_policy_name_is_409(client, world):
    assert_error(post_policy(client, world, "admin", {**GLOVE_POLICY, "name": "PPE duty"}),
                 409, "duplicate_name", "name")


@pytest.mark.parametrize("who", ["supply", "coordinator", "municipal", "pharmacist", "viewer"])
def test_only_administrators_create_or_change_policies(client, world, session, who):
    assert_error(post_policy(client, world, who, GLOVE_POLICY), 403, "forbidden")
    assert policy_id(session, GLOVE_POLICY["name"]) is None
    duty = policy_id(session, "PPE duty")
    assert_error(call(client, world, who, "PUT", f"/policies/{duty}", {"min_days": 1}), 403, "forbidden")
    assert session.get(Policy, duty).min_days == 91.3125


def test_policy_post_is_idempotent_with_a_key(client, world, session):
    key = {"Idempotency-Key": "policy-0001"}
    first = post_policy(client, world, "admin", GLOVE_POLICY, **key)
    retry = post_policy(client, world, "admin", GLOVE_POLICY, **key)
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.get_json() == first.get_json() and retry.headers["Idempotent-Replayed"] == "true"
    assert session.scalar(sa.select(sa.func.count(Policy.id)).where(Policy.name == "Gloves at MUN")) == 1


def test_admin_changes_a_policy(client, world, session, duty):
    duty_id = policy_id(session, "PPE duty")
    response = call(client, world, "admin", "PUT", f"/policies/{duty_id}", {"target_days": 120, "max_days": 200})
    assert response.status_code == 200, response.get_json()
    changed = response.get_json()
    assert changed == {**changed, "id": duty_id, "name": "PPE duty", "min_days": 91.3125,
                       "target_days": 120.0, "max_days": 200.0, "organisation_kind": "municipality",
                       "category": "ppe", "active": True}
    [row] = get(client, world, "municipal", "/coverage", organisation="MUN",
                date=TODAY.isoformat()).get_json()["items"]
    # Target 120 days at 20 000 / 365.25 a day = 6570.84 → 2071 short of 4500.
    assert (row["target_days"], row["max_days"], row["shortfall"]) == (120.0, 200.0, 2071)
    # Narrowed to one municipality: the kind is cleared with it.
    narrowed = call(client, world, "admin", "PUT", f"/policies/{duty_id}", {"organisation": "OTHER"}).get_json()
    assert (narrowed["organisation"], narrowed["organisation_kind"]) == ("OTHER", None)
    assert get(client, world, "municipal", "/coverage", organisation="MUN",
               date=TODAY.isoformat()).get_json()["total"] == 0
    # Back to every municipality, and switched off: MUN's masks are then under no policy.
    off = call(client, world, "admin", "PUT", f"/policies/{duty_id}",
               {"organisation_kind": "municipality", "active": False}).get_json()
    assert (off["organisation"], off["organisation_kind"], off["active"]) == (None, "municipality", False)
    assert get(client, world, "municipal", "/coverage", organisation="MUN",
               date=TODAY.isoformat()).get_json()["total"] == 0
    back = call(client, world, "admin", "PUT", f"/policies/{duty_id}", {"active": True, "item": "MASK"}).get_json()
    assert (back["item"], back["category"], back["active"]) == ("MASK", None, True)
    assert get(client, world, "municipal", "/coverage", organisation="MUN",
               date=TODAY.isoformat()).get_json()["total"] == 1


@pytest.mark.parametrize("body,status,code,field", [
    ({"target_days": 10}, 400, "invalid", "target_days"),           # below the minimum 91.3125
    ({"max_days": 50}, 400, "invalid", "max_days"),
    ({"organisation_kind": None}, 400, "invalid", "organisation"),  # no organisation scope left
    ({"organisation_kind": "municipality", "organisation": "MUN"}, 400, "invalid", "organisation"),
    ({"category": "ppe", "item": "MASK"}, 400, "invalid", "item"),
    ({"min_days": "x"}, 400, "invalid", "min_days"),
    ({"name": "Critical drug list"}, 409, "duplicate_name", "name"),
    ({"organisation": "NOPE"}, 404, "not_found", "organisation"),
    ({"item": "NOPE"}, 404, "not_found", "item"),
])
def test_invalid_policy_changes(client, world, session, body, status, code, field):
    duty_id = policy_id(session, "PPE duty")
    assert_error(call(client, world, "admin", "PUT", f"/policies/{duty_id}", body), status, code, field)
    unchanged = get(client, world, "admin", f"/policies/{duty_id}").get_json()
    assert (unchanged["name"], unchanged["target_days"], unchanged["organisation_kind"]) == \
        ("PPE duty", 91.3125, "municipality")


@pytest.mark.parametrize("method", ["GET", "PUT"])
@pytest.mark.parametrize("policy", ["999999", str(2**40)])
def test_unknown_policy_is_404(client, world, method, policy):
    assert_error(call(client, world, "admin", method, f"/policies/{policy}", {"min_days": 1}),
                 404, "not_found")


# --- scenarios -----------------------------------------------------------------------------

def test_scenarios_are_listed_with_their_factors(client, world):
    listed = get(client, world, "municipal", "/scenarios").get_json()
    pandemic = next(s for s in listed["items"] if s["name"] == "Pandemic wave")
    assert pandemic == {**pandemic, "factors": {"ppe": 4.0, "drug": 2.0}, "item_factors": {}}
    assert "12 weeks" in pandemic["description"]


def test_admin_adds_a_scenario_and_coverage_uses_it(client, duty, session):
    body = {"name": "Mask shortage", "description": "Masks go three times as fast.",
            "factors": {"ppe": 2}, "item_factors": {"MASK": 3}}
    response = call(client, duty, "admin", "POST", "/scenarios", body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json() == {**body, "id": response.get_json()["id"], "factors": {"ppe": 2.0},
                                   "item_factors": {"MASK": 3.0}}
    assert "Mask shortage" in {s["name"] for s in get(client, duty, "viewer", "/scenarios").get_json()["items"]}
    # The item's own factor wins over its category's: 82.18125 / 3 = 27.39375 days.
    [row] = get(client, duty, "municipal", "/coverage", organisation="MUN", date=TODAY.isoformat(),
                scenario="Mask shortage").get_json()["items"]
    assert (row["coverage_days"], row["scenario"]) == (27.39, "Mask shortage")


@pytest.mark.parametrize("body,status,code,field", [
    ({"name": "Pandemic wave", "factors": {"ppe": 2}}, 409, "duplicate_name", "name"),
    ({"name": "X", "item_factors": {"NOPE": 2}}, 404, "not_found", "item_factors"),
    ({"name": "X", "factors": {"castle": 2}}, 400, "invalid", "factors"),
    ({"name": "X", "factors": {"ppe": 0}}, 400, "invalid", "factors"),
    ({"name": "X", "factors": {"ppe": -2}}, 400, "invalid", "factors"),
    ({"name": "X", "factors": {"ppe": "4"}}, 400, "invalid", "factors"),
    ({"name": "X", "factors": {}}, 400, "invalid", "factors"),
    ({"name": "X"}, 400, "invalid", "factors"),
    ({"factors": {"ppe": 2}}, 400, "invalid", "name"),
    ({"name": "N" * 101, "factors": {"ppe": 2}}, 400, "invalid", "name"),
])
def test_invalid_scenarios(client, world, session, body, status, code, field):
    before = session.scalar(sa.select(sa.func.count(Scenario.id)))
    assert_error(call(client, world, "admin", "POST", "/scenarios", body), status, code, field)
    assert session.scalar(sa.select(sa.func.count(Scenario.id))) == before


@pytest.mark.parametrize("who", ["supply", "coordinator", "municipal"])
def test_only_administrators_add_scenarios(client, world, who):
    assert_error(call(client, world, who, "POST", "/scenarios", {"name": "X", "factors": {"ppe": 2}}),
                 403, "forbidden")
