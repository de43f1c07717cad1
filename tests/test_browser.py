"""End to end in a real browser: sign in, receive (typed and scanned), issue FEFO through the
preview, read the stock card.

How the app is served, and what happens where Chromium is missing: tests/browser.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.db import make_engine
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Balance, Lot, Movement
from tests import factories
from tests.browser import CHROMIUM_ARGS, shot, world_database

pytestmark = pytest.mark.browser


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A migrated SQLite file with the test world in it, committed."""
    return world_database(tmp_path / "browser.sqlite3")


def test_receive_issue_fefo_and_read_the_stock_card(chromium: str, server: str, database: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    today = inventory.local_today()
    soon, later = today + dt.timedelta(days=20), today + dt.timedelta(days=300)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})

            # Signing in from a protected page comes back to it.
            page.goto(f"{server}/items")
            expect(page).to_have_url(f"{server}/login?next=/items")
            page.fill("#email", "supply@example.org")
            page.fill("#password", factories.PASSWORD)
            page.click("button:has-text('Sign in')")
            expect(page).to_have_url(f"{server}/items")
            expect(page.locator(".whoami")).to_contain_text("Organisation SC")

            # A receipt typed by hand.
            page.click("nav >> text=Receive")
            page.select_option("#depot", "SC-D")
            page.select_option("#item", "MASK")
            page.fill("#lot_number", "BR-1")
            page.fill("#expiry", soon.isoformat())
            page.fill("#quantity", "30")
            page.fill("#reference", "DN-77")
            page.click("button:has-text('Record receipt')")
            expect(page.locator(".flash-success")).to_contain_text("Received 30 × Item MASK, lot BR-1")

            # A receipt from a scanned GS1 code: Enter in the scan field reads it into the fields.
            page.goto(f"{server}/receipts/new")
            page.fill("#scan", f"(01)07032069804988(17){later:%y%m%d}(10)BR-2")
            page.press("#scan", "Enter")
            expect(page.locator(".alert-info")).to_contain_text("The scan was read")
            expect(page.locator("#lot_number")).to_have_value("BR-2")
            expect(page.locator("#expiry")).to_have_value(later.isoformat())
            page.fill("#quantity", "50")
            page.click("button:has-text('Record receipt')")
            expect(page.locator(".flash-success")).to_contain_text("lot BR-2")

            # Issue 40: the preview shows the FEFO pick (BR-1 first), confirming posts it.
            page.click("nav >> text=Issue")
            page.select_option("#depot", "SC-D")
            page.select_option("#item", "MASK")
            page.fill("#quantity", "40")
            page.fill("#recipient", "ICU ward 3")
            page.click("button:has-text('Show the FEFO pick')")
            rows = page.locator(".pick-table tbody tr")
            expect(rows).to_have_count(2)
            expect(rows.nth(0)).to_contain_text("BR-1")
            expect(rows.nth(0).locator("td").nth(4)).to_have_text("30")
            expect(rows.nth(1)).to_contain_text("BR-2")
            expect(rows.nth(1).locator("td").nth(4)).to_have_text("10")
            page.click("button:has-text('Confirm issue')")
            expect(page.locator(".flash-success")).to_contain_text("Issued 40 × Item MASK")
            expect(page).to_have_url(f"{server}/items/MASK")

            # The stock card, newest first, with running balances, who and references.
            card = page.locator(".card-table tbody tr")
            expect(card).to_have_count(4)
            expected = [("Issue", "BR-2", "−10", "40"), ("Issue", "BR-1", "−30", "50"),
                        ("Receipt", "BR-2", "+50", "80"), ("Receipt", "BR-1", "+30", "30")]
            for index, (kind, lot, change, balance) in enumerate(expected):
                cells = card.nth(index).locator("td")
                expect(cells.nth(1)).to_contain_text(kind)
                expect(cells.nth(2)).to_have_text(lot)
                expect(cells.nth(4)).to_have_text(change)
                expect(cells.nth(5)).to_have_text(balance)
                expect(cells.nth(7)).to_have_text("supply@example.org")
            expect(card.nth(0)).to_contain_text("To: ICU ward 3")
            expect(card.nth(3).locator("td").nth(6)).to_contain_text("Ref. DN-77")
            lots = page.locator("section.panel").first.locator("tbody tr")
            expect(lots).to_have_count(1)
            expect(lots.first).to_contain_text("BR-2")
            shot(page, "item.png")

            page.click("nav >> text=Items")
            expect(page.locator(".items-table")).to_contain_text("Item MASK")
            shot(page, "items.png")
            page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, upright
            shot(page, "items-tablet.png")
            page.goto(f"{server}/items/MASK")
            shot(page, "item-tablet.png")
        finally:
            browser.close()

    engine = make_engine(database)
    try:
        with so.Session(engine) as session:
            assert inventory.verify(session) == []
            issued = session.execute(
                sa.select(Lot.lot_number, Movement.quantity, Movement.recipient).join(Movement.lot)
                .where(Movement.kind == "issue").order_by(Movement.id)).all()
            assert issued == [("BR-1", -30, "ICU ward 3"), ("BR-2", -10, "ICU ward 3")]
            remaining = dict(session.execute(sa.select(Lot.lot_number, Balance.quantity)
                                             .join(Balance.lot)).all())
            assert remaining == {"BR-1": 0, "BR-2": 40}
    finally:
        engine.dispose()
