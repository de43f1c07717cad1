"""The pages: items, the item page with lots and stock card, every movement form (posting the
right movements, or nothing with the reason shown), the FEFO preview, administration, access
for every role, and CSRF."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa

from stockpile.inventory import services as inventory
from stockpile.inventory.models import (Balance, Depot, Item, Lot, LotEvent, Movement, Organisation)
from tests import factories
from tests.conftest import csrf_token


TODAY = factories.TODAY


def days(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


@pytest.fixture
def w(world, session):
    """The world with stock, committed (a savepoint release in tests) so that a view's rollback
    after a refusal keeps it.

    SC-D (operational): MASK lot A 30 (expires in 30 days), lot B 50 (in 200 days), lot X 5
    (expired 10 days ago). MUN-D: MASK lot M 20 (in 100 days).
    """
    factories.receive(session, world.centre_depot, world.mask, "A", days(30), 30, today=TODAY)
    factories.receive(session, world.centre_depot, world.mask, "B", days(200), 50, today=TODAY)
    factories.receive(session, world.centre_depot, world.mask, "X", days(-10), 5, today=days(-100))
    factories.receive(session, world.municipal_depot, world.mask, "M", days(100), 20, today=TODAY)
    session.commit()
    return world


def qty(session, depot: Depot, item: Item, lot: str, pool: str = "operational") -> int:
    return session.scalar(
        sa.select(Balance.quantity).join(Balance.lot)
        .where(Lot.item_id == item.id, Lot.lot_number == lot, Balance.depot_id == depot.id,
               Balance.pool == pool)) or 0


def movement_count(session) -> int:
    return session.scalar(sa.select(sa.func.count(Movement.id)))


def newest(session, n: int = 1) -> list[Movement]:
    rows = session.scalars(sa.select(Movement).order_by(Movement.id.desc()).limit(n)).all()
    return list(reversed(rows))


def main_html(response) -> str:
    """The page without the navigation (which names other pages)."""
    return response.text.split('<main id="main"', 1)[1]


def movement_of(session, depot: Depot, lot: str) -> Movement:
    return session.scalar(sa.select(Movement).join(Movement.lot)
                          .where(Movement.depot_id == depot.id, Lot.lot_number == lot)
                          .order_by(Movement.id))


# --- pages per role -----------------------------------------------------------------------

RECORDING = ["/receipts/new", "/issues/new", "/transfers/new", "/counts/new", "/disposals/new"]


@pytest.mark.parametrize("who,urls,status", [
    ("supply", ["/items", "/items/MASK", *RECORDING, "/admin/items",
                "/items/MASK/lots/A/status", "/items/MASK/lots/A/extend", "/movements/{sc}/reverse"], 200),
    ("pharmacist", ["/items", "/items/MASK", *RECORDING], 200),
    ("municipal", ["/items", "/items/MASK", *RECORDING, "/items/MASK/lots/M/status",
                   "/movements/{mun}/reverse"], 200),
    ("admin", ["/items", "/items/MASK", *RECORDING, "/admin/organisations", "/admin/depots",
               "/admin/items", "/admin/users", "/movements/{sc}/reverse", "/items/MASK/lots/M/extend"], 200),
    ("coordinator", ["/items", "/items/MASK", "/items/MASK?depot=MUN-D"], 200),
    ("viewer", ["/items", "/items/MASK", "/items/MASK?depot=SC-D"], 200),
    # Read-only roles record nothing; supply staff administer only the item catalogue.
    ("coordinator", [*RECORDING, "/admin/items", "/movements/{sc}/reverse", "/items/MASK/lots/A/status"], 403),
    ("viewer", [*RECORDING, "/admin/items", "/admin/organisations", "/items/MASK/lots/A/extend"], 403),
    ("supply", ["/admin/organisations", "/admin/depots", "/admin/users", "/items/MASK?depot=MUN-D",
                "/items/MASK/lots/M/status"], 403),
    ("municipal", ["/admin/items", "/items/MASK/lots/A/status", "/receipts/new?depot=SC-D"], 403),
])
def test_pages_per_role(client, auth, w, session, who, urls, status):
    auth.login(f"{who}@example.org")
    ids = {"sc": movement_of(session, w.centre_depot, "A").id,
           "mun": movement_of(session, w.municipal_depot, "M").id}
    for url in urls:
        response = client.get(url.format(**ids))
        assert response.status_code == status, url
        assert "<nav" in response.text  # a full page in the layout, errors included


def test_navigation_offers_only_what_the_user_may_use(client, auth, w):
    auth.login("viewer@example.org")
    nav = client.get("/items").text.split("<main", 1)[0]
    assert "Items" in nav and "Receive" not in nav and "Organisations" not in nav
    client.post("/logout")
    auth.login("supply@example.org")
    nav = client.get("/items").text.split("<main", 1)[0]
    assert "Receive" in nav and "Item catalogue" in nav and "Organisations" not in nav
    client.post("/logout")
    auth.login("admin@example.org")
    nav = client.get("/items").text.split("<main", 1)[0]
    assert all(word in nav for word in ("Organisations", "Depots", "Users", "Item catalogue"))


# --- items and the item page --------------------------------------------------------------

def test_items_page_shows_usable_and_on_hand_for_readable_organisations(client, auth, w):
    auth.login("supply@example.org")
    page = main_html(client.get("/items"))
    mask_row = page.split("Item MASK</a>", 1)[1].split("</tr>", 1)[0]
    # Usable: A 30 + B 50; on hand also counts the expired lot X (5).
    assert '<td class="num strong">80</td>' in mask_row
    assert '<td class="num warn">85</td>' in mask_row
    assert "SC-D" in mask_row and "MUN-D" not in mask_row
    client.post("/logout")
    auth.login("coordinator@example.org")
    mask_row = main_html(client.get("/items")).split("Item MASK</a>", 1)[1].split("</tr>", 1)[0]
    assert "SC-D" in mask_row and "MUN-D" in mask_row
    assert '<td class="num strong">100</td>' in mask_row


def test_items_filter_by_category_and_search(client, auth, w, session):
    factories.item(session, "MIDAZ", "drug", name="Midazolam 5 mg/ml", atc="N05CD08")
    session.commit()
    auth.login("supply@example.org")
    drugs = main_html(client.get("/items?category=drug"))
    assert "Midazolam" in drugs and "Item MASK" not in drugs
    found = main_html(client.get("/items?q=glov"))
    assert "Item GLOVE" in found and "Item MASK" not in found
    by_code = main_html(client.get("/items?q=midaz"))
    assert "Midazolam" in by_code and "Item GLOVE" not in by_code
    stocked = main_html(client.get("/items?stocked=1"))
    assert "Item MASK" in stocked and "Item GLOVE" not in stocked
    assert "No items match." in main_html(client.get("/items?q=%25_nothing"))


def test_item_page_shows_lots_and_stock_card(client, auth, w, session):
    auth.login("supply@example.org")
    client.post("/receipts/new", data={"depot": "SC-D", "pool": "emergency", "item": "MASK",
                                       "lot_number": "B", "expiry": days(200).isoformat(),
                                       "quantity": "7", "reference": "DN-4711", "action": "record"})
    lot_a = session.scalar(sa.select(Lot).where(Lot.lot_number == "A"))
    inventory.extend_shelf_life(session, factories.ctx(w.users["supply"]), lot=lot_a,
                                new_expiry=days(60), reason="stability test")
    session.commit()
    page = main_html(client.get("/items/MASK"))
    lots = page.split("Stock card", 1)[0]
    for text in ("A", "B", "X", "Available", "expired", f"extended; printed {days(30).isoformat()}",
                 days(60).isoformat(), "Emergency"):
        assert text in lots
    assert "M</td>" not in lots  # MUN-D's lot is not the supply centre's to see
    card = page.split("Stock card", 1)[1]
    newest_row = card.split('<tr id="movement-', 2)[1]
    assert "Ref. DN-4711" in newest_row and "supply<wbr>@example.org" in newest_row
    assert "+7" in newest_row and '<td class="num">92</td>' in newest_row  # 30 + 50 + 5 + 7
    assert "stability test" in page and "Lot history" in page


def test_item_page_depot_filter_limits_the_card(client, auth, w):
    auth.login("coordinator@example.org")
    everything = main_html(client.get("/items/MASK"))
    assert "MUN-D" in everything and "SC-D" in everything
    only_mun = main_html(client.get("/items/MASK?depot=MUN-D"))
    card = only_mun.split("Stock card", 1)[1]
    assert '<td class="where">MUN-D<' in card and '<td class="where">SC-D<' not in card
    assert '<td class="num">20</td>' in card


def test_item_page_shows_nothing_of_other_organisations(client, auth, w):
    auth.login("outsider@example.org")
    page = main_html(client.get("/items/MASK"))
    assert "No stock of this item in the organisations you can see." in page
    assert "No movements of this item" in page
    assert "SC-D" not in page and "MUN-D" not in page
    assert "MUN-D" not in main_html(client.get("/items"))


def test_unknown_things_are_404(client, auth, w):
    auth.login("supply@example.org")
    response = client.get("/items/NOPE")
    assert response.status_code == 404 and "No item with code" in response.text
    for movement_id in (999999, 2**31, 2**64):
        response = client.get(f"/movements/{movement_id}/reverse")
        assert response.status_code == 404 and f"No movement {movement_id}." in response.text
    assert client.get("/items/MASK/lots/NOPE/status").status_code == 404


# --- receipts -----------------------------------------------------------------------------

def test_receipt_posts_one_movement(client, auth, w, session):
    auth.login("supply@example.org")
    response = client.post("/receipts/new", data={
        "depot": "SC-D", "pool": "operational", "item": "GLOVE", "lot_number": "G-1",
        "expiry": days(400).isoformat(), "quantity": "1200", "reference": "DN-1", "action": "record"},
        follow_redirects=True)
    assert response.request.path == "/items/GLOVE"
    assert "Received 1,200 × Item GLOVE, lot G-1" in response.text
    [movement] = newest(session)
    assert (movement.kind, movement.quantity, movement.reference, movement.recorded_by_id) == \
        ("receipt", 1200, "DN-1", w.users["supply"].id)
    assert qty(session, w.centre_depot, w.glove, "G-1") == 1200
    glove_row = main_html(client.get("/items")).split("Item GLOVE</a>", 1)[1].split("</tr>", 1)[0]
    assert '<td class="num strong">1,200</td>' in glove_row  # grouped digits


def test_refused_receipt_posts_nothing_and_says_why(client, auth, w, session):
    auth.login("supply@example.org")
    before = movement_count(session)
    response = client.post("/receipts/new", data={
        "depot": "SC-D", "pool": "operational", "item": "GLOVE", "lot_number": "OLD",
        "expiry": days(-1).isoformat(), "quantity": "10", "action": "record"})
    assert response.status_code == 422
    assert "expired stock cannot be received" in response.text
    assert "Nothing was recorded." in response.text
    expiry_field = response.text.split('id="expiry"', 1)[1].split("</div>", 1)[0]
    assert "is before today" in expiry_field  # the reason sits at the field it concerns
    assert movement_count(session) == before
    missing = client.post("/receipts/new", data={"depot": "SC-D", "pool": "operational",
                                                  "quantity": "10", "action": "record"})
    assert missing.status_code == 422 and "Choose the item, or scan the pack." in missing.text


def gs1(lot: str, expiry: dt.date, gtin: str = "07032069804988") -> str:
    return f"(01){gtin}(17){expiry:%y%m%d}(10){lot}"


def test_receipt_scan_is_read_into_the_fields(client, auth, w, session):
    auth.login("supply@example.org")
    before = movement_count(session)
    response = client.post("/receipts/new", data={
        "scan": gs1("SCAN-1", days(300)), "depot": "SC-D", "pool": "operational",
        "quantity": "", "action": "scan"})
    assert response.status_code == 200
    assert "The scan was read into item, lot and expiry" in response.text
    assert '<option selected value="MASK">' in response.text or 'value="MASK" selected' in response.text
    assert 'value="SCAN-1"' in response.text and f'value="{days(300).isoformat()}"' in response.text
    assert movement_count(session) == before


def test_receipt_from_a_scan_posts_item_lot_and_expiry(client, auth, w, session):
    auth.login("supply@example.org")
    response = client.post("/receipts/new", data={
        "scan": gs1("SCAN-2", days(300)), "depot": "SC-D", "pool": "emergency", "quantity": "40",
        "action": "record"})
    assert response.status_code == 302
    lot = session.scalar(sa.select(Lot).where(Lot.lot_number == "SCAN-2"))
    assert (lot.item_id, lot.expiry) == (w.mask.id, days(300))
    assert qty(session, w.centre_depot, w.mask, "SCAN-2", "emergency") == 40


def test_receipt_scan_refusals_name_the_scan_field(client, auth, w, session):
    auth.login("supply@example.org")
    before = movement_count(session)
    unknown = client.post("/receipts/new", data={
        "scan": gs1("Z", days(300), gtin="04006381333931"), "depot": "SC-D", "pool": "operational",
        "quantity": "1", "action": "record"})
    assert unknown.status_code == 422
    scan_field = unknown.text.split('id="scan"', 1)[1].split("</div>", 1)[0]
    assert "No item is registered with GTIN 04006381333931" in scan_field
    contradiction = client.post("/receipts/new", data={
        "scan": gs1("SCAN-3", days(300)), "depot": "SC-D", "pool": "operational", "item": "MASK",
        "lot_number": "OTHER", "quantity": "1", "action": "record"})
    assert contradiction.status_code == 422 and "The scan says SCAN-3 here" in contradiction.text
    assert movement_count(session) == before


# --- issues with the FEFO preview ---------------------------------------------------------

ISSUE = {"depot": "SC-D", "pool": "operational", "item": "MASK", "quantity": "40",
         "recipient": "ICU ward 3", "flag": "surge", "min_remaining_days": "", "lot_number": "",
         "override_reason": "", "reference": "REQ-9"}


def preview(client, **changes):
    response = client.post("/issues/new", data={**ISSUE, **changes, "action": "preview"})
    return response


def picked(response) -> list[tuple[str, int]]:
    body = response.text.split('<table class="table pick-table">', 1)[1].split("<tfoot>", 1)[0]
    rows = re.findall(r'<td class="strong">([^<]+)</td>.*?<td class="num strong">(\d+)</td>', body, re.S)
    return [(lot, int(n)) for lot, n in rows]


def confirm_fields(response) -> dict[str, str]:
    form = response.text.split('<form method="post" action="/issues/new">', 1)[1].split("</form>", 1)[0]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))


def test_issue_preview_shows_the_fefo_pick_and_posts_nothing(client, auth, w, session):
    auth.login("supply@example.org")
    before = movement_count(session)
    response = preview(client)
    assert response.status_code == 200
    # The expired lot X is skipped; A expires first, then B.
    assert picked(response) == [("A", 30), ("B", 10)]
    assert movement_count(session) == before
    with_shelf_life = preview(client, min_remaining_days="60")
    assert picked(with_shelf_life) == [("B", 40)]


def test_issue_confirm_posts_the_previewed_lots(client, auth, w, session):
    auth.login("supply@example.org")
    fields = confirm_fields(preview(client))
    response = client.post("/issues/new", data={**fields, "action": "confirm"}, follow_redirects=True)
    assert response.request.path == "/items/MASK"
    assert "Issued 40 × Item MASK from SC-D (Operational): lot A 30, lot B 10." in response.text
    moves = newest(session, 2)
    assert [(m.lot.lot_number, m.quantity) for m in moves] == [("A", -30), ("B", -10)]
    assert all(m.kind == "issue" and m.flag == "surge" and m.recipient == "ICU ward 3"
               and m.reference == "REQ-9" and not m.fefo_override for m in moves)
    assert (qty(session, w.centre_depot, w.mask, "A"), qty(session, w.centre_depot, w.mask, "B")) == (0, 40)


def test_issue_confirm_refuses_when_stock_changed_since_the_preview(client, auth, w, session):
    auth.login("supply@example.org")
    fields = confirm_fields(preview(client))
    inventory.issue(session, factories.ctx(w.users["pharmacist"], today=TODAY), depot=w.centre_depot,
                    item=w.mask, quantity=5)  # someone else takes 5 of lot A meanwhile
    session.commit()
    before = movement_count(session)
    response = client.post("/issues/new", data={**fields, "action": "confirm"})
    assert response.status_code == 409
    assert "The stock changed since the pick was shown" in response.text
    assert picked(response) == [("A", 25), ("B", 15)]
    assert movement_count(session) == before
    assert qty(session, w.centre_depot, w.mask, "A") == 25


def test_refused_issue_shows_the_usable_lots_and_posts_nothing(client, auth, w, session):
    auth.login("supply@example.org")
    before = movement_count(session)
    for action in ("preview", "confirm"):
        response = client.post("/issues/new", data={**ISSUE, "quantity": "200", "action": action,
                                                    "pick": "1:200"})
        assert response.status_code == 422
        quantity_field = response.text.split('id="quantity"', 1)[1].split("</div>", 1)[0]
        assert "Only 80 usable, 200 requested." in quantity_field
        assert f"A: 30 (expires {days(30).isoformat()})" in quantity_field
        assert "At most 80 can be issued." in quantity_field
    assert movement_count(session) == before


def test_issue_of_a_named_lot_records_the_override(client, auth, w, session):
    auth.login("supply@example.org")
    missing_reason = preview(client, lot_number="B")
    assert missing_reason.status_code == 422
    assert "Say why this lot is taken instead of the FEFO pick." in missing_reason.text
    response = preview(client, lot_number="B", override_reason="Ward needs long shelf life")
    assert picked(response) == [("B", 40)]
    assert "FEFO override" in response.text
    before = movement_count(session)
    client.post("/issues/new", data={**confirm_fields(response), "action": "confirm"})
    [movement] = newest(session)
    assert movement_count(session) == before + 1
    assert (movement.lot.lot_number, movement.quantity, movement.fefo_override, movement.reason) == \
        ("B", -40, True, "Ward needs long shelf life")
    expired = preview(client, lot_number="X", override_reason="try")
    assert expired.status_code == 422 and "expired on" in expired.text


# --- transfer, count, disposal, reversal, lots ------------------------------------------------

def test_transfer_posts_both_legs(client, auth, w, session):
    auth.login("supply@example.org")
    response = client.post("/transfers/new", data={
        "from_depot": "SC-D", "from_pool": "operational", "to_depot": "SC-D", "to_pool": "emergency",
        "item": "MASK", "quantity": "35", "lot_number": "", "reference": "", "reason": "build-up"},
        follow_redirects=True)
    assert "Moved 35 × Item MASK from SC-D (Operational) to SC-D (Emergency)" in response.text
    legs = newest(session, 4)
    assert sorted((m.lot.lot_number, m.pool, m.quantity) for m in legs) == [
        ("A", "emergency", 30), ("A", "operational", -30), ("B", "emergency", 5), ("B", "operational", -5)]
    assert len({m.posting_id for m in legs}) == 1
    before = movement_count(session)
    too_much = client.post("/transfers/new", data={
        "from_depot": "SC-D", "from_pool": "operational", "to_depot": "SC-D", "to_pool": "emergency",
        "item": "MASK", "quantity": "46"})
    assert too_much.status_code == 422 and "Only 45 usable, 46 requested." in too_much.text
    refused = client.post("/transfers/new", data={
        "from_depot": "SC-D", "from_pool": "operational", "to_depot": "SC-D", "to_pool": "operational",
        "item": "MASK", "quantity": "1"})
    assert refused.status_code == 422 and "different depot or pool" in refused.text
    assert movement_count(session) == before


def test_count_posts_the_difference_or_nothing(client, auth, w, session):
    auth.login("supply@example.org")
    response = client.post("/counts/new", data={
        "depot": "SC-D", "pool": "operational", "item": "MASK", "lot_number": "A",
        "counted_quantity": "27", "reason": "annual count"}, follow_redirects=True)
    assert "corrected by −3 to 27" in response.text
    [movement] = newest(session)
    assert (movement.kind, movement.quantity, movement.reason) == ("adjustment", -3, "annual count")
    before = movement_count(session)
    same = client.post("/counts/new", data={
        "depot": "SC-D", "pool": "operational", "item": "MASK", "lot_number": "A",
        "counted_quantity": "27", "reason": "recount"}, follow_redirects=True)
    assert "Nothing to correct." in same.text
    assert movement_count(session) == before
    unknown = client.post("/counts/new", data={
        "depot": "SC-D", "pool": "operational", "item": "MASK", "lot_number": "NOPE",
        "counted_quantity": "1", "reason": "x"})
    assert unknown.status_code == 422 and "has no lot &#39;NOPE&#39;" in unknown.text
    assert movement_count(session) == before


def test_disposal_posts_and_refuses_more_than_on_hand(client, auth, w, session):
    auth.login("supply@example.org")
    before = movement_count(session)
    refused = client.post("/disposals/new", data={
        "depot": "SC-D", "pool": "operational", "item": "MASK", "lot_number": "X", "quantity": "6",
        "reason": "expired"})
    assert refused.status_code == 422
    assert "Lot X has 5 in SC-D (operational); 6 cannot be taken." in refused.text
    assert movement_count(session) == before
    client.post("/disposals/new", data={
        "depot": "SC-D", "pool": "operational", "item": "MASK", "lot_number": "X", "quantity": "5",
        "reason": "expired"})
    [movement] = newest(session)
    assert (movement.kind, movement.quantity, movement.reason) == ("disposal", -5, "expired")
    assert qty(session, w.centre_depot, w.mask, "X") == 0


def test_reversal_from_the_stock_card(client, auth, w, session):
    auth.login("supply@example.org")
    receipt = movement_of(session, w.centre_depot, "B")
    card = main_html(client.get("/items/MASK"))
    assert f'href="/movements/{receipt.id}/reverse"' in card
    page = client.get(f"/movements/{receipt.id}/reverse")
    assert page.status_code == 200 and "−50" in page.text
    response = client.post(f"/movements/{receipt.id}/reverse", data={"reason": "wrong depot"},
                           follow_redirects=True)
    assert f"Movement {receipt.id}" in response.text and "is reversed" in response.text
    [reversal] = newest(session)
    assert (reversal.quantity, reversal.reversal_of_id, reversal.reason) == (-50, receipt.id, "wrong depot")
    assert qty(session, w.centre_depot, w.mask, "B") == 0
    before = movement_count(session)
    again = client.post(f"/movements/{receipt.id}/reverse", data={"reason": "twice"})
    assert again.status_code == 422 and "has already been reversed" in again.text
    assert movement_count(session) == before
    assert f'href="/movements/{receipt.id}/reverse"' not in main_html(client.get("/items/MASK"))


def test_lot_status_change_and_shelf_life_extension(client, auth, w, session):
    auth.login("supply@example.org")
    response = client.post("/items/MASK/lots/A/status", data={"status": "quarantined",
                                                              "reason": "temperature excursion"},
                           follow_redirects=True)
    assert "Lot A of Item MASK is now quarantined." in response.text
    lot = session.scalar(sa.select(Lot).where(Lot.lot_number == "A"))
    assert lot.status == "quarantined"
    assert picked(preview(client, quantity="10")) == [("B", 10)]  # quarantined lots are skipped
    same = client.post("/items/MASK/lots/A/status", data={"status": "quarantined", "reason": "again"})
    assert same.status_code == 422 and "already quarantined" in same.text
    earlier = client.post("/items/MASK/lots/B/extend", data={"new_expiry": days(100).isoformat(),
                                                             "reason": "stability test"})
    assert earlier.status_code == 422 and "must move the expiry later" in earlier.text
    client.post("/items/MASK/lots/B/extend", data={"new_expiry": days(365).isoformat(),
                                                   "reason": "stability test"})
    lot_b = session.scalar(sa.select(Lot).where(Lot.lot_number == "B"))
    assert (lot_b.expiry, lot_b.original_expiry) == (days(365), days(200))
    kinds = session.scalars(sa.select(LotEvent.kind).order_by(LotEvent.id)).all()
    assert kinds == ["status", "extension"]


# --- administration -----------------------------------------------------------------------

def test_admin_creates_organisations_and_depots(client, auth, w, session):
    auth.login("admin@example.org")
    response = client.post("/admin/organisations", data={
        "code": "KOMMUNE-5501", "name": "Tromsø kommune", "kind": "municipality", "parent": "REG",
        "population": "78745"}, follow_redirects=True)
    assert "Organisation Tromsø kommune (KOMMUNE-5501) created." in response.text
    tree = main_html(response).split('<ul class="tree">', 1)[1]
    assert tree.index("Organisation REG") < tree.index("Tromsø kommune")
    assert "population 78 745" in tree
    org = session.scalar(sa.select(Organisation).where(Organisation.code == "KOMMUNE-5501"))
    assert (org.parent_id, org.population) == (w.region.id, 78745)
    duplicate = client.post("/admin/organisations", data={"code": "SC", "name": "Again",
                                                          "kind": "region"})
    assert duplicate.status_code == 422 and "&#39;SC&#39; is already taken." in duplicate.text
    response = client.post("/admin/depots", data={"code": "TR-1", "name": "Tromsø lager",
                                                  "organisation": "KOMMUNE-5501"}, follow_redirects=True)
    assert "Depot Tromsø lager (TR-1) created for Tromsø kommune." in response.text
    assert session.scalar(sa.select(Depot.organisation_id).where(Depot.code == "TR-1")) == org.id


def test_supply_staff_create_items(client, auth, w, session):
    auth.login("supply@example.org")
    response = client.post("/admin/items", data={
        "code": "PPE-FFP3", "name": "Respirator FFP3", "category": "ppe", "unit": "piece",
        "pack_size": "20", "gtin": "4006381333931", "ppe_group": "respirators", "has_expiry": "y"},
        follow_redirects=True)
    assert "Item Respirator FFP3 (PPE-FFP3) created." in response.text
    item = session.scalar(sa.select(Item).where(Item.code == "PPE-FFP3"))
    assert (item.gtin, item.pack_size, item.ppe_group, item.has_expiry) == \
        ("04006381333931", 20, "respirators", True)
    wrong = client.post("/admin/items", data={"code": "GLV-2", "name": "Glove", "category": "consumable",
                                              "unit": "pair", "ppe_group": "gloves"})
    assert wrong.status_code == 422 and "Only items of category ppe have a PPE group." in wrong.text


# --- access: another organisation's stock, by hand-crafted requests --------------------------------

def _outsider_requests(w, session):
    sc_receipt = movement_of(session, w.centre_depot, "A").id
    mun_receipt = movement_of(session, w.municipal_depot, "M").id
    return [
        ("get", "/items/MASK?depot=SC-D", None),
        ("get", "/items/MASK?depot=MUN-D", None),
        ("get", "/receipts/new?depot=SC-D", None),
        ("get", "/issues/new?depot=SC-D", None),
        ("get", "/counts/new?depot=MUN-D&item=MASK&lot=M", None),
        ("get", f"/movements/{sc_receipt}/reverse", None),
        ("get", "/items/MASK/lots/A/status", None),
        ("get", "/items/MASK/lots/M/extend", None),
        ("post", "/receipts/new", {"depot": "SC-D", "pool": "operational", "item": "MASK",
                                   "lot_number": "Z", "expiry": days(50).isoformat(), "quantity": "5",
                                   "action": "record"}),
        ("post", "/receipts/new", {"depot": "MUN-D", "scan": gs1("Z", days(50)), "action": "scan"}),
        ("post", "/issues/new", {**ISSUE, "action": "preview"}),
        ("post", "/issues/new", {**ISSUE, "action": "confirm", "pick": "1:30,2:10"}),
        ("post", "/transfers/new", {"from_depot": "SC-D", "from_pool": "operational",
                                    "to_depot": "OTHER-D", "to_pool": "operational", "item": "MASK",
                                    "quantity": "5"}),
        ("post", "/transfers/new", {"from_depot": "OTHER-D", "from_pool": "operational",
                                    "to_depot": "MUN-D", "to_pool": "operational", "item": "MASK",
                                    "quantity": "5"}),
        ("post", "/counts/new", {"depot": "MUN-D", "pool": "operational", "item": "MASK",
                                 "lot_number": "M", "counted_quantity": "0", "reason": "x"}),
        ("post", "/disposals/new", {"depot": "SC-D", "pool": "operational", "item": "MASK",
                                    "lot_number": "A", "quantity": "5", "reason": "damaged"}),
        ("post", f"/movements/{mun_receipt}/reverse", {"reason": "x"}),
        ("post", "/items/MASK/lots/A/status", {"status": "recalled", "reason": "x"}),
        ("post", "/items/MASK/lots/M/extend", {"new_expiry": days(900).isoformat(), "reason": "x"}),
        ("get", "/admin/organisations", None),
        ("post", "/admin/organisations", {"code": "NEW", "name": "New", "kind": "region"}),
        ("post", "/admin/depots", {"code": "NEW-D", "name": "New", "organisation": "OTHER"}),
        ("post", "/admin/items", {"code": "NEW-I", "name": "New", "category": "ppe", "unit": "piece"}),
    ]


def test_outsider_is_refused_everywhere_and_nothing_changes(client, auth, w, session):
    auth.login("outsider@example.org")
    movements_before = movement_count(session)
    lots_before = session.execute(sa.select(Lot.lot_number, Lot.status, Lot.expiry).order_by(Lot.id)).all()
    for method, url, data in _outsider_requests(w, session):
        response = getattr(client, method)(url, data=data)
        assert response.status_code in (403, 404), (method, url, response.status_code)
    assert movement_count(session) == movements_before
    assert session.execute(sa.select(Lot.lot_number, Lot.status, Lot.expiry).order_by(Lot.id)).all() == lots_before
    assert session.scalar(sa.select(sa.func.count(Organisation.id)).where(Organisation.code == "NEW")) == 0
    assert session.scalar(sa.select(sa.func.count(Item.id)).where(Item.code == "NEW-I")) == 0


def test_outsider_may_record_for_their_own_depot(client, auth, w, session):
    # The same forms work for the outsider's own organisation: the refusals above are about access.
    auth.login("outsider@example.org")
    response = client.post("/receipts/new", data={
        "depot": "OTHER-D", "pool": "operational", "item": "MASK", "lot_number": "O-1",
        "expiry": days(50).isoformat(), "quantity": "5", "action": "record"})
    assert response.status_code == 302
    other = session.scalar(sa.select(Depot).where(Depot.code == "OTHER-D"))
    assert qty(session, other, w.mask, "O-1") == 5


# --- CSRF -----------------------------------------------------------------------------------

class TestCsrf:
    RECEIPT = {"depot": "SC-D", "pool": "operational", "item": "GLOVE", "lot_number": "C-1",
               "quantity": "10", "action": "record"}

    def test_form_post_without_token_is_refused_and_posts_nothing(self, csrf_client, auth, w, session):
        auth.login(w.users["supply"].email)
        before = movement_count(session)
        response = csrf_client.post("/receipts/new", data={**self.RECEIPT, "expiry": days(90).isoformat()})
        assert response.status_code == 400
        assert "Nothing was recorded" in response.text
        assert movement_count(session) == before
        forged = csrf_client.post("/receipts/new", data={**self.RECEIPT, "expiry": days(90).isoformat(),
                                                          "csrf_token": "forged"})
        assert forged.status_code == 400
        assert movement_count(session) == before

    def test_form_post_with_the_token_is_recorded(self, csrf_client, auth, w, session):
        auth.login(w.users["supply"].email)
        token = csrf_token(csrf_client.get("/receipts/new").text)
        response = csrf_client.post("/receipts/new", data={**self.RECEIPT, "expiry": days(90).isoformat(),
                                                           "csrf_token": token})
        assert response.status_code == 302
        assert qty(session, w.centre_depot, w.glove, "C-1") == 10

    def test_sign_in_and_out_need_the_token(self, csrf_client, w):
        response = csrf_client.post("/login", data={"email": "supply@example.org",
                                                    "password": factories.PASSWORD})
        assert response.status_code == 400
        assert csrf_client.get("/items").status_code == 302
        token = csrf_token(csrf_client.get("/login").text)
        csrf_client.post("/login", data={"email": "supply@example.org", "password": factories.PASSWORD,
                                         "csrf_token": token})
        assert csrf_client.get("/items").status_code == 200
        assert csrf_client.post("/logout").status_code == 400
        assert csrf_client.get("/items").status_code == 200
