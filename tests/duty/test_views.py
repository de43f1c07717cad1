"""The duty pages: a municipality's PPE duty (verdict, numbers, order list, § 8a annual use)
and a hospital pharmacy's critical drug list (days of coverage, the day a drug falls below its
minimum, alternatives, changes with history), access for every role, and CSRF."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from stockpile.coverage import services as coverage
from stockpile.inventory import services as inventory
from stockpile.coverage.models import Baseline, ItemList, ItemListChange, ItemListEntry
from stockpile.inventory.models import Item, Lot
from tests import factories
from tests.conftest import counted, csrf_token

# The hand-worked examples of tests/coverage/test_services.py are evaluated on this day.
FIXED = factories.TODAY  # 2026-11-23
# Pages that record something use the clock (a new baseline is valid from today).
TODAY = factories.TODAY
# Statements of the test's own transaction, not of the page under test.
OWN_TRANSACTION = ("SAVEPOINT", "RELEASE")


def fixed(n: int) -> dt.date:
    return FIXED + dt.timedelta(days=n)


def days(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


def text(fragment: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def row_cells(page: str, key: str, row_class: str = "item-row", attribute: str = "data-item") -> list[str]:
    """The cells of the table row marked ``attribute="key"`` (an item code) as text."""
    match = re.search(rf'<tr class="{row_class}"[^>]*{attribute}="{re.escape(key)}"[^>]*>(.*?)</tr>', page, re.S)
    assert match, f"no row for {key}"
    return [text(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", match.group(1), re.S)]


def input_tag(page: str, element_id: str) -> str:
    match = re.search(rf'<input [^>]*id="{element_id}"[^>]*>', page)
    assert match, f"no input #{element_id}"
    return match.group(0)


def section(page: str, element_id: str) -> str:
    match = re.search(rf'<(section|div|tbody|tr)[^>]*id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no element #{element_id}"
    return text(match.group(2))


def main_html(response) -> str:
    return response.text.split('<main id="main"', 1)[1]


# --- the PPE duty ---------------------------------------------------------------------------

@pytest.fixture
def example(world, session):
    """The § 8a worked example at MUN: MASK with annual use 2022–2025, 2024 deviating (replaced
    by 2022); lots A 3000 (expires in 29 days), B 1500 (emergency pool), an expired lot of 400 and
    a quarantined lot of 500. Evaluated on 2026-11-23."""
    coverage.set_annual_baseline(session, factories.ctx(), organisation=world.municipality, item=world.mask,
                                  annual_use={2022: 19_000, 2023: 20_000, 2024: 90_000, 2025: 21_000},
                                  deviating_years=[2024], valid_from=dt.date(2026, 1, 1))
    depot = world.municipal_depot
    factories.receive(session, depot, world.mask, "A", fixed(29), 3000)
    factories.receive(session, depot, world.mask, "B", dt.date(2028, 6, 30), 1500, pool="emergency")
    factories.receive(session, depot, world.mask, "GONE", fixed(-1), 400, today=fixed(-10))
    factories.receive(session, depot, world.mask, "Q", dt.date(2028, 1, 1), 500)
    inventory.set_lot_status(session, factories.ctx(), lot=session.scalar(sa.select(Lot).where(Lot.lot_number == "Q")),
                             status="quarantined", reason="water damage")
    session.commit()
    return world


def test_ppe_duty_page_shows_the_worked_example(client, auth, example):
    auth.login("municipal@example.org")
    response = client.get("/duty/ppe?date=2026-11-23")
    assert response.status_code == 200
    page = main_html(response)
    # Usable 3000 + 1500 (both pools; not the expired or quarantined lots); requirement
    # 91.3125 · 20 000 / 365.25 = 5000; 4500 / (20 000 / 365.25) = 82.18 days = 11.7 weeks.
    item, usable, need, years, weeks, short = row_cells(page, "MASK")
    assert usable == "4,500"
    assert need == "5,000 91.3125 days"
    # w = 20 000 / 365.25 a day = 54.76; from the years of § 8a.
    assert years.startswith("54.76 a day § 8a: years 2022, 2023, 2025") and "2024 replaced by 2022" in years
    assert (weeks, short) == ("11.7 Below minimum", "500")
    group = row_cells(page, "face_masks", "group-row", "data-group")
    assert group == ["Face masks Not met", "4,500", "5,000", "", "11.7", "500"]
    verdict = section(page, "verdict")
    assert verdict.startswith("✗ Does not meet the PPE duty")
    assert "Evaluated on 2026-11-23" in verdict
    assert "Face masks — 500 units short" in verdict
    # The groups the municipality holds nothing of fail too, and say so.
    assert "Gowns or coveralls — no stock and no annual use entered" in verdict


def test_the_lot_expiring_today_counts_and_the_day_after_it_does_not(client, auth, example):
    auth.login("municipal@example.org")
    on_expiry = main_html(client.get(f"/duty/ppe?date={fixed(29).isoformat()}"))
    day_after = main_html(client.get(f"/duty/ppe?date={fixed(30).isoformat()}"))
    assert row_cells(on_expiry, "MASK")[1] == "4,500"
    assert row_cells(day_after, "MASK")[1] == "1,500"
    assert "Evaluated on 2026-12-23" in section(day_after, "verdict")


@pytest.fixture
def five_groups(world, session):
    """One item per PPE group at MUN, each with normal use 70 a week (10 a day): the 3-month
    requirement is 91.3125 × 10 = 913.125, so 914 units meet it and 913 do not (1 short)."""
    items = {"gloves": world.glove, "face_masks": world.mask,
             "respirators": factories.item(session, "RESP", "ppe", ppe_group="respirators"),
             "gowns": factories.item(session, "GOWN", "ppe", ppe_group="gowns", name="Gown, isolation",
                                     pack_size=100),
             "eye_protection": factories.item(session, "VISOR", "ppe", ppe_group="eye_protection")}
    world.mask.pack_size = 50
    for item in items.values():
        coverage.set_manual_baseline(session, factories.ctx(), organisation=world.municipality, item=item,
                                      weekly_use=70, valid_from=fixed(-30))
    session.commit()
    return items


def stock(session, world, item, quantity, lot=None, expiry=None, pool="operational"):
    factories.receive(session, world.municipal_depot, item, lot or f"{item.code}-{quantity}",
                      expiry or fixed(400), quantity, pool=pool)
    session.commit()


def test_verdict_both_ways_at_the_boundary(client, auth, world, session, five_groups):
    for group, item in five_groups.items():
        stock(session, world, item, 913 if group == "eye_protection" else 914)
    factories.receive(session, world.municipal_depot, five_groups["eye_protection"], "OLD", fixed(-1), 50,
                      today=fixed(-20))  # expired yesterday: does not help
    session.commit()
    auth.login("municipal@example.org")
    page = main_html(client.get("/duty/ppe?date=2026-11-23"))
    verdict = section(page, "verdict")
    assert verdict.startswith("✗ Does not meet the PPE duty")
    assert "Goggles or visors — 1 units short" in verdict
    assert "Gloves" not in verdict and "Face masks" not in verdict
    assert row_cells(page, "VISOR")[4:] == ["13.0 Below minimum", "1"]   # 913 / 10 = 91.3 days
    assert row_cells(page, "GLOVE")[4:] == ["13.1 OK", "0"]               # 914 / 10 = 91.4 days
    assert row_cells(page, "eye_protection", "group-row", "data-group")[0] == "Goggles or visors Not met"

    stock(session, world, five_groups["eye_protection"], 1, lot="TOP-UP")
    page = main_html(client.get("/duty/ppe?date=2026-11-23"))
    verdict = section(page, "verdict")
    assert verdict.startswith("✓ Meets the PPE duty")
    assert "Evaluated on 2026-11-23" in verdict
    assert "Not met" not in page


def test_a_group_with_stock_but_no_known_use_does_not_meet_the_duty(client, auth, world, session, five_groups):
    for item in five_groups.values():
        stock(session, world, item, 1000)
    extra = factories.item(session, "NITRILE", "ppe", ppe_group="gloves", name="Nitrile gloves")
    stock(session, world, extra, 300)
    auth.login("municipal@example.org")
    page = main_html(client.get("/duty/ppe?date=2026-11-23"))
    verdict = section(page, "verdict")
    assert verdict.startswith("✗ Does not meet the PPE duty")
    assert "Gloves — normal use unknown for Nitrile gloves: enter the annual use" in verdict
    assert row_cells(page, "NITRILE")[4] == "— No baseline"
    assert row_cells(page, "gloves", "group-row", "data-group")[2] == "—"  # requirement unknown


def test_order_list_csv_is_exact_and_rounds_packs_up(client, auth, world, session, five_groups):
    stock(session, world, five_groups["gloves"], 914)
    stock(session, world, five_groups["face_masks"], 414)      # 500 short: 10 packs of 50
    stock(session, world, five_groups["respirators"], 2000)
    stock(session, world, five_groups["gowns"], 813)           # 101 short: 2 packs of 100
    # VISOR: none held, normal use known: all 914 short, pack size unknown.
    auth.login("municipal@example.org")
    response = client.get("/duty/ppe.csv?date=2026-11-23")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="ppe-order-list-MUN-2026-11-23.csv"'
    assert response.text == (
        "item_code,item_name,ppe_group,unit,pack_size,shortfall_units,packs_to_order,evaluated_on\r\n"
        "MASK,Item MASK,face_masks,piece,50,500,10,2026-11-23\r\n"
        'GOWN,"Gown, isolation",gowns,piece,100,101,2,2026-11-23\r\n'
        "VISOR,Item VISOR,eye_protection,piece,,914,,2026-11-23\r\n")
    page = main_html(client.get("/duty/ppe?date=2026-11-23"))
    assert row_cells(page, "GOWN")[5] == "101 2 packs"
    assert "/duty/ppe.csv?organisation=MUN&amp;date=2026-11-23" in page


def test_order_list_of_the_worked_example(client, auth, example):
    auth.login("municipal@example.org")
    response = client.get("/duty/ppe.csv?organisation=MUN&date=2026-11-23")
    assert response.text.splitlines()[1:] == ["MASK,Item MASK,face_masks,piece,,500,,2026-11-23"]


def test_annual_use_form_records_the_section_8a_baseline(client, auth, world, session):
    last = TODAY.year - 1
    auth.login("municipal@example.org")
    form = main_html(client.get("/duty/ppe"))
    assert f'<label for="use_1">Annual use in {last}</label>' in form
    response = client.post("/duty/ppe?organisation=MUN", data={
        "item": "GLOVE", "use_1": "21000", "use_2": "90000", "use_3": "20000", "use_4": "19000",
        "deviating_2": "y"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/duty/ppe?organisation=MUN#annual-use")
    baseline = session.scalar(sa.select(Baseline).where(Baseline.item_id == world.glove.id))
    assert baseline.source == "annual_3y" and baseline.valid_from == TODAY
    assert baseline.years_used == [last - 3, last - 2, last]
    assert baseline.years_replaced == {str(last - 1): last - 3}
    assert baseline.annual_use == {str(last - 3): 19000, str(last - 2): 20000, str(last - 1): 90000,
                                   str(last): 21000}
    assert baseline.weekly_use == Decimal("383.2991")  # 20 000 · 7 / 365.25
    assert baseline.recorded_by_id == world.users["municipal"].id
    page = client.get(response.headers["Location"])
    assert "Annual use of Item GLOVE saved: a quarter of the mean of" in page.text
    cells = row_cells(main_html(page), "GLOVE")
    # No stock yet: the whole requirement (91.3125 · 20 000 / 365.25 = 5000) is short.
    assert cells[1:3] == ["0", "5,000 91.3125 days"]
    assert cells[3].startswith(f"54.76 a day § 8a: years {last - 3}, {last - 2}, {last}")
    assert f"{last - 1} replaced by {last - 3}" in cells[3]
    # "Enter annual use" opens the form with what was entered.
    prefilled = main_html(client.get("/duty/ppe?organisation=MUN&item=GLOVE"))
    assert 'value="90000"' in input_tag(prefilled, "use_2")
    assert " checked " in input_tag(prefilled, "deviating_2")
    assert " checked " not in input_tag(prefilled, "deviating_1")


def test_annual_use_form_refusals_record_nothing(client, auth, world, session):
    last = TODAY.year - 1
    auth.login("municipal@example.org")
    missing_replacement = client.post("/duty/ppe?organisation=MUN", data={
        "item": "GLOVE", "use_1": "1", "use_2": "2", "use_3": "3", "deviating_1": "y"})
    assert missing_replacement.status_code == 422
    assert (f"annual use for {last - 3} is needed (in place of {last})"
            in html.unescape(missing_replacement.text))
    missing_year = client.post("/duty/ppe?organisation=MUN", data={"item": "GLOVE", "use_1": "1", "use_2": "2"})
    assert missing_year.status_code == 422
    assert "Please correct the highlighted fields" in missing_year.text
    negative = client.post("/duty/ppe?organisation=MUN", data={
        "item": "GLOVE", "use_1": "1", "use_2": "-2", "use_3": "3"})
    assert negative.status_code == 422
    not_ppe_group = factories.item(session, "SANITISER", "ppe")
    session.commit()
    wrong_item = client.post("/duty/ppe?organisation=MUN", data={
        "item": not_ppe_group.code, "use_1": "1", "use_2": "2", "use_3": "3"})
    assert wrong_item.status_code == 422
    assert "Item SANITISER is not in one of the five PPE groups." in wrong_item.text
    assert session.scalar(sa.select(sa.func.count(Baseline.id))) == 0


def test_a_manual_baseline_in_force_is_pointed_out_after_saving_annual_use(client, auth, world, session):
    coverage.set_manual_baseline(session, factories.ctx(), organisation=world.municipality,
                                  item=world.glove, weekly_use=10, valid_from=days(-5))
    session.commit()
    auth.login("municipal@example.org")
    page = client.post("/duty/ppe?organisation=MUN", data={
        "item": "GLOVE", "use_1": "100", "use_2": "100", "use_3": "100"}, follow_redirects=True)
    assert "A weekly use entered by hand" in page.text
    assert row_cells(main_html(page), "GLOVE")[3].startswith("1.43 a day Entered by hand")


# --- who sees and changes the PPE duty -------------------------------------------------------

@pytest.fixture
def mun_viewer(world, session):
    user = factories.user(session, "viewer", world.municipality, email="mun-viewer@example.org")
    session.commit()
    return user


def test_ppe_duty_access(client, auth, example, session, mun_viewer):
    auth.login("outsider@example.org")
    assert client.get("/duty/ppe?organisation=MUN").status_code == 403
    assert client.get("/duty/ppe.csv?organisation=MUN").status_code == 403
    assert client.post("/duty/ppe?organisation=MUN", data={"item": "MASK", "use_1": "1", "use_2": "1",
                                                           "use_3": "1"}).status_code == 403
    own = client.get("/duty/ppe")
    assert own.status_code == 200 and "PPE duty — Organisation OTHER" in own.text
    client.post("/logout")

    auth.login("supply@example.org")  # a supply centre keeps no PPE duty
    refused = client.get("/duty/ppe")
    assert refused.status_code == 403
    assert "The PPE duty is kept by municipalities, and you have access to none." in refused.text
    client.post("/logout")

    auth.login("mun-viewer@example.org")
    page = client.get("/duty/ppe?date=2026-11-23")
    assert page.status_code == 200 and row_cells(main_html(page), "MASK")[1] == "4,500"
    assert 'id="annual-use"' not in page.text and "Enter annual use" not in page.text
    assert client.post("/duty/ppe?organisation=MUN", data={"item": "MASK", "use_1": "1", "use_2": "1",
                                                           "use_3": "1"}).status_code == 403
    client.post("/logout")

    auth.login("coordinator@example.org")
    page = client.get("/duty/ppe?organisation=MUN&date=2026-11-23")
    assert page.status_code == 200 and 'id="annual-use"' not in page.text
    assert client.get("/duty/ppe?organisation=OTHER").status_code == 403  # outside the region
    assert client.get("/duty/ppe?organisation=SC").status_code == 404     # not a municipality
    assert client.get("/duty/ppe?organisation=NOPE").status_code == 404
    bad_date = client.get("/duty/ppe?organisation=MUN&date=23.11.2026")
    assert bad_date.status_code == 400 and "write it as YYYY-MM-DD" in bad_date.text
    client.post("/logout")

    auth.login("admin@example.org")
    picker = client.get("/duty/ppe?organisation=MUN").text
    assert '<option value="OTHER"' in picker and '<option value="MUN" selected' in picker
    assert client.post("/duty/ppe?organisation=OTHER", data={
        "item": "MASK", "use_1": "4", "use_2": "4", "use_3": "4"}).status_code == 302
    assert session.scalar(sa.select(sa.func.count(Baseline.id))) == 2  # the example's and this


def test_navigation_offers_the_duty_pages_by_kind(client, auth, world, session):
    auth.login("municipal@example.org")
    nav = client.get("/items").text.split('<main id="main"')[0]
    assert 'href="/duty/ppe"' in nav and 'href="/duty/critical-drugs"' not in nav
    client.post("/logout")
    auth.login("supply@example.org")
    nav = client.get("/items").text.split('<main id="main"')[0]
    assert 'href="/duty/ppe"' not in nav and 'href="/duty/critical-drugs"' not in nav


def test_the_ppe_page_runs_the_same_queries_however_many_items(client, auth, world, session, five_groups, connection):
    for item in five_groups.values():
        stock(session, world, item, 500)
    auth.login("municipal@example.org")
    client.get("/duty/ppe?date=2026-11-23")  # warm-up: the user and the session cookie
    with counted(connection, ignore=OWN_TRANSACTION) as statements:
        client.get("/duty/ppe?date=2026-11-23")
        few = len(statements)
        for n in range(6):
            item = factories.item(session, f"GLOVE-{n}", "ppe", ppe_group="gloves", pack_size=10)
            coverage.set_manual_baseline(session, factories.ctx(), organisation=world.municipality,
                                          item=item, weekly_use=7, valid_from=fixed(-3))
            stock(session, world, item, 30 + n)
        statements.clear()
        page = client.get("/duty/ppe?date=2026-11-23")
        assert page.text.count('data-item="GLOVE-') == 6
        assert len(statements) == few, "\n\n".join(statements)


# --- the critical drug list ------------------------------------------------------------------

@pytest.fixture
def pharmacy(world, session):
    """APOTEK (hospital pharmacy under REG), evaluated today:

    - PROPOFOL: 70 a week (10 a day), 180 usable → 18 days; its own minimum 21 → below it from
      today. Alternatives KETAMINE (35 a week, 300 usable → 60 days) and ETOMIDATE (40 usable,
      no normal use on record).
    - NORADR: 28 a week (4 a day), lots of 100 (expiring in 9 days) and 200 (in 300 days):
      300 / 4 = 75 days. Used at 4 a day, the first lot loses 60 units at the end of day 9, so
      day 10 starts with 200; below 14 days (56 units) once 200 − 4k < 56, k = 37: day 47.
    """
    apotek = factories.org(session, "APOTEK", "hospital_pharmacy", parent="REG")
    other = factories.org(session, "APOTEK-2", "hospital_pharmacy")
    depot = factories.depot(session, apotek, "APO-D")
    pharmacist = factories.user(session, "pharmacist", apotek, email="ph@example.org")
    factories.user(session, "viewer", apotek, email="ph-viewer@example.org")
    factories.user(session, "supply_staff", apotek, email="apo-staff@example.org")
    factories.user(session, "pharmacist", other, email="ph2@example.org")
    drugs = {code: factories.item(session, code, "drug", name=name, unit="vial")
             for code, name in (("PROPOFOL", "Propofol 10 mg/ml"), ("NORADR", "Noradrenaline 1 mg/ml"),
                                ("KETAMINE", "Ketamine 10 mg/ml"), ("ETOMIDATE", "Etomidate 2 mg/ml"))}
    ctx = factories.ctx(pharmacist, today=TODAY)
    for code, weekly in (("PROPOFOL", 70), ("NORADR", 28), ("KETAMINE", 35)):
        coverage.set_manual_baseline(session, ctx, organisation=apotek, item=drugs[code], weekly_use=weekly,
                                      valid_from=days(-30))
    for code, lot, expiry, quantity in (("PROPOFOL", "P1", days(100), 180), ("NORADR", "N1", days(9), 100),
                                        ("NORADR", "N2", days(300), 200), ("KETAMINE", "K1", days(200), 300),
                                        ("ETOMIDATE", "E1", days(200), 40)):
        factories.receive(session, depot, drugs[code], lot, expiry, quantity, today=TODAY)
    the_list = coverage.item_list_for(session, apotek, "critical-drugs", name="Critical drug list")
    coverage.save_list_entry(session, ctx, item_list=the_list, item=drugs["PROPOFOL"], min_days=21,
                              criticality="high", alternatives=[drugs["KETAMINE"], drugs["ETOMIDATE"]],
                              note="Sedation in intensive care.")
    coverage.save_list_entry(session, ctx, item_list=the_list, item=drugs["NORADR"])
    session.commit()
    return drugs


def entry_of(session, code: str) -> ItemListEntry | None:
    return session.scalar(sa.select(ItemListEntry).join(ItemListEntry.item).where(Item.code == code))


def version(session) -> int:
    return session.scalar(sa.select(ItemList.version).join(ItemList.organisation)
                          .where(ItemList.code == "critical-drugs"))


def test_critical_drug_list_worked_example(client, auth, pharmacy):
    auth.login("ph@example.org")
    response = client.get("/duty/critical-drugs")
    assert response.status_code == 200
    page = main_html(response)
    assert "Critical drug list — Organisation APOTEK" in page
    assert "Version 3" in page and "2 drugs" in page
    assert "Minimum 14 days of normal use unless a drug has its own" in page
    drug, criticality, daily, usable, minimum, cover, below_from, status = row_cells(page, "PROPOFOL", "drug-row")
    assert (criticality, daily, usable, minimum) == ("High", "10.00 by hand", "180", "21")
    assert (cover, below_from, status) == ("18.0 2.6 weeks", "already below", "Below minimum")
    assert drug == ("Propofol 10 mg/ml PROPOFOL · vial Alternatives: Etomidate 2 mg/ml, Ketamine 10 mg/ml "
                    "Sedation in intensive care. Change Remove")
    shown = section(page.replace('data-alternatives-for="PROPOFOL"', 'id="alt-PROPOFOL"'), "alt-PROPOFOL")
    assert "Ketamine 10 mg/ml — 300 usable, 60.0 days (8.6 weeks) of its own normal use" in shown
    assert "Etomidate 2 mg/ml — 40 usable; coverage unknown (no normal use on record)" in shown

    cells = row_cells(page, "NORADR", "drug-row")
    assert cells[2:8] == ["4.00 by hand", "300", "14 list default", "75.0 10.7 weeks",
                          days(47).isoformat(), "OK"]
    assert 'data-alternatives-for="NORADR"' not in page  # alternatives only for drugs below minimum
    assert "1 of 2 drugs are below their minimum: Propofol 10 mg/ml." in section(page, "summary")


def test_pharmacist_adds_changes_and_removes_drugs_with_history(client, auth, pharmacy, session):
    auth.login("ph@example.org")
    # Add ETOMIDATE with a daily use typed with a decimal comma.
    added = client.post("/duty/critical-drugs?organisation=APOTEK", data={
        "item": "ETOMIDATE", "daily_use": "2,5", "min_days": "", "criticality": "medium",
        "alternatives": ["PROPOFOL"], "note": "Induction"})
    assert added.status_code == 302
    entry = entry_of(session, "ETOMIDATE")
    assert (entry.min_days, entry.criticality, [a.code for a in entry.alternatives], entry.note) == \
        (None, "medium", ["PROPOFOL"], "Induction")
    assert version(session) == 4
    baseline = session.scalar(sa.select(Baseline).where(Baseline.item_id == pharmacy["ETOMIDATE"].id))
    assert (baseline.source, baseline.weekly_use, baseline.valid_from) == ("manual", Decimal("17.5"), TODAY)
    page = client.get(added.headers["Location"])
    assert ("Etomidate 2 mg/ml is on the critical drug list (version 4). Daily use of Etomidate 2 mg/ml "
            "is 2.5 from today (17.5 a week).") in page.text
    # 40 / 2.5 = 16 days against the default 14; below 14 days (35 units) once 40 − 2.5k < 35: day 3.
    assert row_cells(main_html(page), "ETOMIDATE", "drug-row")[2:8] == [
        "2.50 by hand", "40", "14 list default", "16.0 2.3 weeks", days(3).isoformat(), "OK"]

    # Change NORADR: twice the use and its own minimum of 21 days.
    changed = client.post("/duty/critical-drugs?organisation=APOTEK", data={
        "item": "NORADR", "daily_use": "8", "min_days": "21", "criticality": "high"})
    assert changed.status_code == 302
    assert version(session) == 5
    assert entry_of(session, "NORADR").min_days == 21
    newest = session.scalars(sa.select(Baseline).where(Baseline.item_id == pharmacy["NORADR"].id)
                             .order_by(Baseline.id)).all()
    assert [b.weekly_use for b in newest] == [Decimal("28"), Decimal("56")]
    page = main_html(client.get("/duty/critical-drugs"))
    # 300 / 8 = 37.5 days ≥ 21.
    assert row_cells(page, "NORADR", "drug-row")[2:8][:4] == ["8.00 by hand", "300", "21", "37.5 5.4 weeks"]

    # The same settings again change nothing: no new version, no new baseline.
    again = client.post("/duty/critical-drugs?organisation=APOTEK", data={
        "item": "NORADR", "daily_use": "8", "min_days": "21", "criticality": "high"}, follow_redirects=True)
    assert "Nothing changed for Noradrenaline 1 mg/ml." in again.text
    assert version(session) == 5
    assert session.scalar(sa.select(sa.func.count(Baseline.id))
                          .where(Baseline.item_id == pharmacy["NORADR"].id)) == 2

    removed = client.post("/duty/critical-drugs/remove?organisation=APOTEK", data={"item": "ETOMIDATE"},
                          follow_redirects=True)
    assert removed.status_code == 200
    assert "Etomidate 2 mg/ml is no longer on the critical drug list (version 6)." in removed.text
    assert entry_of(session, "ETOMIDATE") is None and version(session) == 6
    history = section(main_html(removed), "history")
    rows = re.findall(r"<tr>(.*?)</tr>", removed.text.split('id="history"')[1], re.S)[1:]
    assert [text(r).split(" ")[0] for r in rows] == ["6", "5", "4", "3", "2"]
    assert "ph@example.org" in history
    assert "Removed" in text(rows[0]) and "Etomidate" in text(rows[0])
    assert "Changed" in text(rows[1]) and "no settings → minimum 21 days; criticality high" in text(rows[1])
    assert "Added" in text(rows[2]) and "criticality medium; alternatives PROPOFOL; note: Induction" in text(rows[2])
    changes = session.scalars(sa.select(ItemListChange).order_by(ItemListChange.id)).all()
    assert [(c.version, c.action) for c in changes] == [
        (2, "added"), (3, "added"), (4, "added"), (5, "changed"), (6, "removed")]


def test_edit_link_fills_the_form_with_the_drug(client, auth, pharmacy):
    auth.login("ph@example.org")
    page = main_html(client.get("/duty/critical-drugs?organisation=APOTEK&edit=PROPOFOL"))
    assert "Change Propofol 10 mg/ml" in page
    assert re.search(r'<option selected value="PROPOFOL">|<option value="PROPOFOL" selected>', page)
    assert 'value="10"' in input_tag(page, "daily_use")
    assert 'value="21"' in input_tag(page, "min_days")
    assert re.search(r'<option selected value="KETAMINE">|<option value="KETAMINE" selected>', page)


def test_drug_list_refusals_record_nothing(client, auth, world, pharmacy, session):
    auth.login("ph@example.org")
    not_a_drug = client.post("/duty/critical-drugs?organisation=APOTEK", data={"item": "MASK"})
    assert not_a_drug.status_code == 422
    assert "Item MASK is not a drug; the critical drug list holds drugs." in not_a_drug.text
    itself = client.post("/duty/critical-drugs?organisation=APOTEK", data={
        "item": "NORADR", "alternatives": ["NORADR"]})
    assert itself.status_code == 422 and "NORADR cannot be its own alternative." in itself.text
    unknown = client.post("/duty/critical-drugs?organisation=APOTEK", data={"item": "NOPE"})
    assert unknown.status_code == 422
    negative = client.post("/duty/critical-drugs?organisation=APOTEK", data={"item": "NORADR", "daily_use": "-1"})
    assert negative.status_code == 422
    not_listed = client.post("/duty/critical-drugs/remove?organisation=APOTEK", data={"item": "KETAMINE"})
    assert not_listed.status_code == 404 and "KETAMINE is not on the list" in not_listed.text
    assert version(session) == 3
    assert session.scalar(sa.select(sa.func.count(Baseline.id))) == 3


def test_critical_drug_list_access(client, auth, world, pharmacy, session):
    add = {"item": "KETAMINE", "criticality": "low"}
    auth.login("outsider@example.org")
    assert client.get("/duty/critical-drugs?organisation=APOTEK").status_code == 403
    refused = client.get("/duty/critical-drugs")
    assert refused.status_code == 403
    assert "The critical drug list is kept by hospital pharmacies, and you have access to none." in refused.text
    assert client.post("/duty/critical-drugs?organisation=APOTEK", data=add).status_code == 403
    client.post("/logout")

    for reader in ("ph-viewer@example.org", "apo-staff@example.org", "coordinator@example.org"):
        auth.login(reader)
        page = client.get("/duty/critical-drugs?organisation=APOTEK")
        assert page.status_code == 200, reader
        assert "18.0" in page.text and "already below" in page.text
        assert 'id="drug-form"' not in page.text and ">Remove<" not in page.text
        assert "You can read this list; the pharmacists of Organisation APOTEK maintain it." in page.text
        assert client.post("/duty/critical-drugs?organisation=APOTEK", data=add).status_code == 403
        assert client.post("/duty/critical-drugs/remove?organisation=APOTEK",
                           data={"item": "NORADR"}).status_code == 403
        client.post("/logout")

    # A pharmacist of another pharmacy neither reads nor edits this one; their own page is empty
    # and reading it creates no list.
    auth.login("ph2@example.org")
    assert client.get("/duty/critical-drugs?organisation=APOTEK").status_code == 403
    assert client.post("/duty/critical-drugs?organisation=APOTEK", data=add).status_code == 403
    assert client.post("/duty/critical-drugs/remove?organisation=APOTEK", data={"item": "NORADR"}).status_code == 403
    own = client.get("/duty/critical-drugs")
    assert own.status_code == 200 and "Critical drug list — Organisation APOTEK-2" in own.text
    assert "No drug is on the list yet." in own.text and 'id="drug-form"' in own.text
    assert session.scalar(sa.select(sa.func.count(ItemList.id))) == 1
    client.post("/logout")

    assert version(session) == 3 and entry_of(session, "KETAMINE") is None
    auth.login("admin@example.org")
    assert client.post("/duty/critical-drugs?organisation=APOTEK", data=add).status_code == 302
    assert entry_of(session, "KETAMINE").criticality == "low"


def test_the_drug_list_runs_the_same_queries_however_many_drugs(client, auth, pharmacy, session, connection):
    auth.login("ph@example.org")
    client.get("/duty/critical-drugs")
    with counted(connection, ignore=OWN_TRANSACTION) as statements:
        client.get("/duty/critical-drugs")
        few = len(statements)
        the_list = session.scalar(sa.select(ItemList))
        depot = session.scalar(sa.select(inventory.Depot).where(inventory.Depot.code == "APO-D"))
        for n in range(5):
            drug = factories.item(session, f"DRUG-{n}", "drug")
            coverage.set_manual_baseline(session, factories.ctx(), organisation=the_list.organisation, item=drug,
                                          weekly_use=7, valid_from=days(-3))
            factories.receive(session, depot, drug, f"D{n}", days(50), 5, today=TODAY)
            coverage.save_list_entry(session, factories.ctx(), item_list=the_list, item=drug, min_days=30,
                                      alternatives=[pharmacy["PROPOFOL"]])
        session.commit()
        statements.clear()
        page = client.get("/duty/critical-drugs")
        assert page.text.count('data-alternatives-for="DRUG-') == 5
        assert len(statements) == few, "\n\n".join(statements)


# --- CSRF -----------------------------------------------------------------------------------

class TestCsrf:
    ANNUAL = {"item": "GLOVE", "use_1": "10", "use_2": "10", "use_3": "10"}

    def test_annual_use_needs_the_token(self, csrf_client, auth, world, session):
        auth.login(world.users["municipal"].email)
        assert csrf_client.post("/duty/ppe?organisation=MUN", data=self.ANNUAL).status_code == 400
        forged = csrf_client.post("/duty/ppe?organisation=MUN", data={**self.ANNUAL, "csrf_token": "forged"})
        assert forged.status_code == 400 and "Nothing was recorded" in forged.text
        assert session.scalar(sa.select(sa.func.count(Baseline.id))) == 0
        token = csrf_token(csrf_client.get("/duty/ppe").text)
        assert csrf_client.post("/duty/ppe?organisation=MUN",
                                data={**self.ANNUAL, "csrf_token": token}).status_code == 302
        assert session.scalar(sa.select(sa.func.count(Baseline.id))) == 1

    def test_drug_list_changes_need_the_token(self, csrf_client, auth, pharmacy, session):
        auth.login("ph@example.org")
        add = {"item": "KETAMINE", "criticality": "low"}
        assert csrf_client.post("/duty/critical-drugs?organisation=APOTEK", data=add).status_code == 400
        assert csrf_client.post("/duty/critical-drugs/remove?organisation=APOTEK",
                                data={"item": "NORADR"}).status_code == 400
        assert version(session) == 3
        token = csrf_token(csrf_client.get("/duty/critical-drugs?organisation=APOTEK").text)
        assert csrf_client.post("/duty/critical-drugs?organisation=APOTEK",
                                data={**add, "csrf_token": token}).status_code == 302
        assert csrf_client.post("/duty/critical-drugs/remove?organisation=APOTEK",
                                data={"item": "NORADR", "csrf_token": token}).status_code == 302
        assert version(session) == 5
