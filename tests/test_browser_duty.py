"""End to end in a real browser: a municipality's staff member signs in, lands on the PPE duty
page, reads the verdict and the numbers of the § 8a worked example, downloads the order list,
and finds the page again from the navigation.

How the app is served, and what happens where Chromium is missing: tests/browser.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.coverage import services as coverage
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Depot, Item, Organisation
from tests import factories
from tests.browser import CHROMIUM_ARGS, shot, world_database

pytestmark = pytest.mark.browser


@pytest.fixture
def database(tmp_path: Path) -> str:
    """The test world with the § 8a example at MUN, committed: masks used 19 000, 20 000, 90 000
    (a deviating year, replaced by the first) and 21 000 in the four years before this one, so a
    quarter of a year is 5 000; 3 000 + 1 500 usable masks leave 500 to order."""
    today = inventory.local_today()
    year = today.year

    def add(session: so.Session) -> None:
        municipality = session.scalar(sa.select(Organisation).where(Organisation.code == "MUN"))
        mask = session.scalar(sa.select(Item).where(Item.code == "MASK"))
        depot = session.scalar(sa.select(Depot).where(Depot.code == "MUN-D"))
        mask.pack_size = 50
        ctx = factories.ctx(today=today)
        coverage.set_annual_baseline(
            session, ctx, organisation=municipality, item=mask,
            annual_use={year - 4: 19_000, year - 3: 20_000, year - 2: 90_000, year - 1: 21_000},
            deviating_years=[year - 2], valid_from=dt.date(year, 1, 1))
        factories.receive(session, depot, mask, "A", today + dt.timedelta(days=29), 3000, today=today)
        factories.receive(session, depot, mask, "B", today + dt.timedelta(days=600), 1500, pool="emergency",
                          today=today)

    return world_database(tmp_path / "browser-duty.sqlite3", add)


def test_municipal_staff_reads_the_ppe_duty_verdict(chromium: str, server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    today = inventory.local_today()
    year = today.year
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)

            # Municipal staff land on the PPE duty page after signing in.
            page.goto(f"{server}/login")
            page.fill("#email", "municipal@example.org")
            page.fill("#password", factories.PASSWORD)
            page.click("button:has-text('Sign in')")
            expect(page).to_have_url(f"{server}/duty/ppe")
            expect(page.locator("nav a[aria-current=page]")).to_have_text("PPE duty")

            verdict = page.locator("#verdict")
            expect(verdict.locator("h2")).to_have_text("✗ Does not meet the PPE duty")
            expect(verdict).to_contain_text(f"Evaluated on {today.isoformat()} for Organisation MUN.")
            expect(verdict).to_contain_text("Face masks — 500 units short")
            expect(verdict).to_contain_text("Gloves — no stock and no annual use entered")

            cells = page.locator("tr.item-row[data-item=MASK] td")
            expect(cells.nth(1)).to_have_text("4,500")
            expect(cells.nth(2)).to_contain_text("5,000")
            expect(cells.nth(3)).to_contain_text(f"§ 8a: years {year - 4}, {year - 3}, {year - 1}")
            expect(cells.nth(3)).to_contain_text(f"{year - 2} replaced by {year - 4}")
            expect(cells.nth(4)).to_contain_text("11.7")
            expect(cells.nth(4).locator(".badge")).to_have_text("Below minimum")
            expect(cells.nth(5)).to_contain_text("500")
            expect(cells.nth(5)).to_contain_text("10 packs")
            shot(page, "ppe-duty.png")

            # The order list, as a file.
            with page.expect_download() as download:
                page.click("text=Download the order list (CSV)")
            content = Path(download.value.path()).read_text(encoding="utf-8")
            assert content.splitlines() == [
                "item_code,item_name,ppe_group,unit,pack_size,shortfall_units,packs_to_order,evaluated_on",
                f"MASK,Item MASK,face_masks,piece,50,500,10,{today.isoformat()}"]

            # From elsewhere, the navigation leads back to it.
            page.goto(f"{server}/items")
            page.click("nav >> text=PPE duty")
            expect(page.locator("#verdict h2")).to_contain_text("Does not meet the PPE duty")
            page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, upright
            shot(page, "ppe-duty-tablet.png")
        finally:
            browser.close()
