"""The inventory HTTP API: master data, stock movements, errors, idempotency, pagination."""

import datetime as dt

import pytest
import sqlalchemy as sa

from stockpile.extensions import db
from stockpile.inventory.models import Lot, Movement
from tests import factories

TODAY = factories.TODAY
NEXT_YEAR = TODAY + dt.timedelta(days=365)
LATER = TODAY + dt.timedelta(days=500)

MOVEMENT_FIELDS = {"id", "kind", "item", "lot_number", "expiry", "depot", "pool", "quantity",
                   "occurred_at", "recorded_at", "recorded_by", "reference", "reason", "flag",
                   "recipient", "fefo_override", "reversal_of"}


def arranged():
    """Commit what the test arranged, as it would be before a real request: a refused
    request rolls the session back, and must not take the test's data with it."""
    db.fixed_session.commit()


def post(client, world, who, path, body, **headers):
    arranged()
    return client.post(f"/api/v1{path}", json=body, headers={**world.headers(who), **headers})


def get(client, world, who, path, **params):
    arranged()
    return client.get(f"/api/v1{path}", query_string=params, headers=world.headers(who))


def movement_count(session):
    return session.scalar(sa.select(sa.func.count(Movement.id)))


def assert_error(response, status, code, *fields):
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert set(error) >= {"code", "message", "fields"}
    assert error["code"] == code
    assert error["message"]
    for field in fields:
        assert field in error["fields"], error
    return error


def parse_time(value):
    moment = dt.datetime.fromisoformat(value)
    assert moment.tzinfo is not None, value
    return moment


@pytest.fixture
def stocked(world, session):
    """SC-D operational: MASK lot A (expires next year, 30), lot B (later, 50)."""
    factories.receive(session, world.centre_depot, world.mask, "A", NEXT_YEAR, 30, today=TODAY)
    factories.receive(session, world.centre_depot, world.mask, "B", LATER, 50, today=TODAY)
    return world


# --- authentication and the error shape ----------------------------------------------------

def test_missing_token_is_401(client, world):
    arranged()
    response = client.get("/api/v1/items")
    assert_error(response, 401, "unauthenticated")


def test_unknown_token_is_401(client, world):
    arranged()
    response = client.get("/api/v1/items", headers={"Authorization": "Bearer sp_nope"})
    assert_error(response, 401, "invalid_token")


@pytest.mark.parametrize("data,content_type", [
    ("{not json", "application/json"),
    ("null", "application/json"),
    ("code=X", "application/x-www-form-urlencoded"),
])
def test_body_that_is_not_a_json_object_is_400(client, world, data, content_type):
    arranged()
    response = client.post("/api/v1/receipts", data=data, content_type=content_type,
                           headers=world.headers("supply"))
    assert_error(response, 400, "malformed", "_body")


def test_json_array_body_is_400(client, world):
    response = post(client, world, "supply", "/receipts", [1, 2])
    assert_error(response, 400, "invalid")


def test_unknown_route_is_json_404(client, world):
    response = get(client, world, "admin", "/nothing-here")
    assert_error(response, 404, "not_found")


# --- organisations -------------------------------------------------------------------------

def test_create_and_read_organisation(client, world):
    body = {"code": "KOMMUNE-5401", "name": "Tromsø kommune", "kind": "municipality",
            "parent": "REG", "population": 78745}
    response = post(client, world, "admin", "/organisations", body)
    assert response.status_code == 201
    assert response.get_json() == body

    assert get(client, world, "admin", "/organisations/KOMMUNE-5401").get_json() == body
    listed = get(client, world, "admin", "/organisations", per_page=500).get_json()
    assert body in listed["items"]
    assert [o["code"] for o in listed["items"]] == sorted(o["code"] for o in listed["items"])


def test_organisation_without_parent_or_population(client, world):
    response = post(client, world, "admin", "/organisations",
                    {"code": "HSO", "name": "Helse Sør-Øst", "kind": "health_trust"})
    assert response.status_code == 201
    assert response.get_json() == {"code": "HSO", "name": "Helse Sør-Øst", "kind": "health_trust",
                                   "parent": None, "population": None}


def test_duplicate_organisation_code_is_409(client, world):
    response = post(client, world, "admin", "/organisations",
                    {"code": "SC", "name": "Again", "kind": "supply_centre"})
    assert_error(response, 409, "duplicate_code", "code")


def test_unknown_parent_is_404(client, world):
    response = post(client, world, "admin", "/organisations",
                    {"code": "X1", "name": "X", "kind": "municipality", "parent": "NOPE"})
    assert_error(response, 404, "not_found", "parent")


@pytest.mark.parametrize("change,field", [
    ({"code": None}, "code"),
    ({"code": ""}, "code"),
    ({"code": "A" * 41}, "code"),
    ({"code": "HAS SPACE"}, "code"),
    ({"code": "A/B"}, "code"),
    ({"code": 17}, "code"),
    ({"name": "N" * 201}, "name"),
    ({"name": "bad\x00name"}, "name"),
    ({"kind": "castle"}, "kind"),
    ({"population": -1}, "population"),
    ({"population": "5"}, "population"),
    ({"population": 1.5}, "population"),
    ({"population": 10**12}, "population"),
    ({"parent": "P" * 41}, "parent"),
    ({"colour": "red"}, "colour"),
])
def test_invalid_organisation_is_400_naming_the_field(client, world, change, field):
    body = {"code": "NEW", "name": "New", "kind": "municipality", **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = post(client, world, "admin", "/organisations", body)
    error = assert_error(response, 400, "invalid", field)
    assert field in error["message"]


def test_unknown_organisation_is_404(client, world):
    assert_error(get(client, world, "admin", "/organisations/NOPE"), 404, "not_found")
    assert_error(get(client, world, "admin", "/organisations/" + "X" * 300), 404, "not_found")
    assert_error(get(client, world, "admin", "/organisations/A%00B"), 404, "not_found")


# --- depots --------------------------------------------------------------------------------

def test_create_and_list_depots(client, world):
    response = post(client, world, "admin", "/depots",
                    {"code": "MUN-D2", "name": "Second store", "organisation": "MUN"})
    assert response.status_code == 201
    assert response.get_json() == {"code": "MUN-D2", "name": "Second store", "organisation": "MUN"}

    listed = get(client, world, "admin", "/depots", organisation="MUN").get_json()
    assert [d["code"] for d in listed["items"]] == ["MUN-D", "MUN-D2"]
    assert listed["total"] == 2
    assert get(client, world, "municipal", "/depots/MUN-D2").get_json()["organisation"] == "MUN"


def test_depot_errors(client, world):
    assert_error(post(client, world, "admin", "/depots",
                      {"code": "SC-D", "name": "Dup", "organisation": "SC"}), 409, "duplicate_code", "code")
    assert_error(post(client, world, "admin", "/depots",
                      {"code": "NEW-D", "name": "New", "organisation": "NOPE"}), 404, "not_found", "organisation")
    assert_error(post(client, world, "admin", "/depots", {"code": "NEW-D"}), 400, "invalid",
                 "name", "organisation")


def test_depot_list_shows_only_readable_depots(client, world):
    codes = [d["code"] for d in get(client, world, "municipal", "/depots").get_json()["items"]]
    assert codes == ["MUN-D"]


# --- items ---------------------------------------------------------------------------------

def test_supply_staff_create_items(client, world):
    body = {"code": "SYR-10", "name": "Syringe 10 ml", "category": "consumable", "unit": "piece",
            "pack_size": 100, "gtin": "7032069805008", "atc": None}
    response = post(client, world, "supply", "/items", body)
    assert response.status_code == 201
    assert response.get_json() == {**body, "gtin": "07032069805008", "ppe_group": None,
                                   "has_expiry": True}
    assert get(client, world, "viewer", "/items/SYR-10").get_json()["gtin"] == "07032069805008"


def test_item_with_ppe_group_and_no_expiry(client, world):
    response = post(client, world, "admin", "/items",
                    {"code": "VISOR", "name": "Visor", "category": "ppe", "unit": "piece",
                     "ppe_group": "eye_protection", "has_expiry": False, "atc": None})
    assert response.status_code == 201
    assert response.get_json()["ppe_group"] == "eye_protection"
    assert response.get_json()["has_expiry"] is False


def test_item_catalogue_is_read_by_everyone(client, world):
    listed = get(client, world, "outsider", "/items").get_json()
    assert [i["code"] for i in listed["items"]] == ["GLOVE", "MASK"]
    assert listed["items"][1] == {"code": "MASK", "name": "Item MASK", "category": "ppe",
                                  "unit": "piece", "pack_size": None, "gtin": "07032069804988",
                                  "atc": None, "ppe_group": "face_masks", "has_expiry": True}


@pytest.mark.parametrize("change,status,code,field", [
    ({"gtin": "07032069804988"}, 409, "duplicate_gtin", "gtin"),
    ({"gtin": "7032069805009"}, 400, "invalid", "gtin"),  # check digit
    ({"code": "MASK"}, 409, "duplicate_code", "code"),
    ({"category": "food"}, 400, "invalid", "category"),
    ({"ppe_group": "gloves"}, 400, "invalid", "ppe_group"),  # only for category ppe
    ({"pack_size": 0}, 400, "invalid", "pack_size"),
    ({"atc": "N01AX10-TOO-LONG"}, 400, "invalid", "atc"),
    ({"unit": "u" * 41}, 400, "invalid", "unit"),
    ({"has_expiry": "yes"}, 400, "invalid", "has_expiry"),
])
def test_invalid_items(client, world, change, status, code, field):
    body = {"code": "NEW", "name": "New", "category": "consumable", "unit": "piece", **change}
    assert_error(post(client, world, "admin", "/items", body), status, code, field)


def test_unknown_item_is_404(client, world):
    assert_error(get(client, world, "viewer", "/items/NOPE"), 404, "not_found", "code")


# --- receipts ------------------------------------------------------------------------------

def test_receipt(client, world, session):
    occurred = dt.datetime.now(dt.timezone(dt.timedelta(hours=1))).replace(microsecond=0) - dt.timedelta(hours=2)
    response = post(client, world, "supply", "/receipts", {
        "depot": "SC-D", "pool": "emergency", "item": "MASK", "lot_number": "L-1",
        "expiry": NEXT_YEAR.isoformat(), "quantity": 120, "reference": "PO-77",
        "occurred_at": occurred.isoformat()})
    assert response.status_code == 201
    [movement] = response.get_json()["movements"]
    assert set(movement) == MOVEMENT_FIELDS
    recorded_at = parse_time(movement.pop("recorded_at"))
    assert abs(recorded_at - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)
    assert parse_time(movement.pop("occurred_at")) == occurred
    assert movement == {
        "id": movement["id"], "kind": "receipt", "item": "MASK", "lot_number": "L-1",
        "expiry": NEXT_YEAR.isoformat(), "depot": "SC-D", "pool": "emergency", "quantity": 120,
        "recorded_by": "supply@example.org", "reference": "PO-77", "reason": None, "flag": None,
        "recipient": None, "fefo_override": False, "reversal_of": None}
    assert session.get(Movement, movement["id"]).quantity == 120


def test_receipt_defaults_to_operational_pool_and_now(client, world):
    response = post(client, world, "pharmacist", "/receipts", {
        "depot": "SC-D", "item": "GLOVE", "lot_number": "G-1", "expiry": NEXT_YEAR.isoformat(),
        "quantity": 5})
    assert response.status_code == 201
    [movement] = response.get_json()["movements"]
    assert movement["pool"] == "operational"
    assert movement["reference"] is None
    assert abs(parse_time(movement["occurred_at"]) - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)


def test_receipt_from_gs1_scan(client, world):
    yy = (TODAY.year + 2) % 100
    scanned = f"]d2010703206980498817{yy:02d}0200" + "10SCAN-1\x1d21SERIAL"
    response = post(client, world, "supply", "/receipts",
                    {"depot": "SC-D", "gs1": scanned, "quantity": 10})
    assert response.status_code == 201, response.get_json()
    [movement] = response.get_json()["movements"]
    last_of_february = dt.date(TODAY.year + 2, 3, 1) - dt.timedelta(days=1)
    assert (movement["item"], movement["lot_number"], movement["expiry"]) == (
        "MASK", "SCAN-1", last_of_february.isoformat())


def test_receipt_from_human_readable_gs1(client, world):
    expiry = NEXT_YEAR.strftime("%y%m%d")
    response = post(client, world, "supply", "/receipts",
                    {"depot": "SC-D", "gs1": f"(01)07032069804988(17){expiry}(10)HRI-1", "quantity": 3})
    assert response.status_code == 201
    [movement] = response.get_json()["movements"]
    assert (movement["lot_number"], movement["expiry"]) == ("HRI-1", NEXT_YEAR.isoformat())


def test_receipt_from_gs1_with_unknown_gtin_is_404(client, world, session):
    response = post(client, world, "supply", "/receipts",
                    {"depot": "SC-D", "gs1": "(01)07032069805015(17)301200(10)X", "quantity": 3})
    error = assert_error(response, 404, "not_found", "gs1")
    assert "07032069805015" in error["message"]
    assert movement_count(session) == 0


def test_receipt_gs1_excludes_item_fields(client, world):
    response = post(client, world, "supply", "/receipts",
                    {"depot": "SC-D", "gs1": "(01)07032069804988(17)301200(10)X", "item": "MASK",
                     "quantity": 3})
    assert_error(response, 400, "invalid", "item")
    response = post(client, world, "supply", "/receipts", {"depot": "SC-D", "quantity": 3})
    assert_error(response, 400, "invalid", "item", "lot_number")


def test_receipt_of_unreadable_gs1_is_400(client, world):
    response = post(client, world, "supply", "/receipts",
                    {"depot": "SC-D", "gs1": "not a barcode", "quantity": 3})
    assert_error(response, 400, "invalid", "gs1")


def test_receipt_of_expired_lot_is_422(client, world, session):
    response = post(client, world, "supply", "/receipts", {
        "depot": "SC-D", "item": "MASK", "lot_number": "OLD",
        "expiry": (TODAY - dt.timedelta(days=1)).isoformat(), "quantity": 5})
    assert_error(response, 422, "lot_expired", "expiry")
    assert movement_count(session) == 0
    assert session.scalar(sa.select(Lot).where(Lot.lot_number == "OLD")) is None


@pytest.mark.parametrize("change,field", [
    ({"quantity": -5}, "quantity"),
    ({"quantity": 0}, "quantity"),
    ({"quantity": "5"}, "quantity"),
    ({"quantity": 2.5}, "quantity"),
    ({"quantity": 10**20}, "quantity"),
    ({"quantity": True}, "quantity"),
    ({"expiry": "31.12.2030"}, "expiry"),
    ({"expiry": "2030-02-30"}, "expiry"),
    ({"occurred_at": "2026-01-05T10:00:00"}, "occurred_at"),  # no offset
    ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"occurred_at": "2999-01-01T00:00:00+00:00"}, "occurred_at"),  # future
    ({"lot_number": "L" * 41}, "lot_number"),
    ({"lot_number": "L\x00"}, "lot_number"),
    ({"lot_number": "   "}, "lot_number"),
    ({"reference": "R" * 201}, "reference"),
    ({"pool": "reserve"}, "pool"),
    ({"depot": ["SC-D"]}, "depot"),
    ({"extra": 1}, "extra"),
])
def test_invalid_receipt_is_400(client, world, session, change, field):
    body = {"depot": "SC-D", "item": "MASK", "lot_number": "L-1",
            "expiry": NEXT_YEAR.isoformat(), "quantity": 5, **change}
    assert_error(post(client, world, "supply", "/receipts", body), 400, "invalid", field)
    assert movement_count(session) == 0


def test_receipt_without_expiry_for_item_with_shelf_life_is_400(client, world):
    body = {"depot": "SC-D", "item": "MASK", "lot_number": "L-1", "expiry": None, "quantity": 5}
    assert_error(post(client, world, "supply", "/receipts", body), 400, "invalid", "expiry")


@pytest.mark.parametrize("change,field", [({"depot": "NOPE"}, "depot"), ({"item": "NOPE"}, "item")])
def test_receipt_with_unknown_code_is_404(client, world, change, field):
    body = {"depot": "SC-D", "item": "MASK", "lot_number": "L-1",
            "expiry": NEXT_YEAR.isoformat(), "quantity": 5, **change}
    assert_error(post(client, world, "supply", "/receipts", body), 404, "not_found", field)


def test_receipt_with_other_expiry_for_known_lot_is_409(client, stocked):
    body = {"depot": "SC-D", "item": "MASK", "lot_number": "A", "expiry": LATER.isoformat(), "quantity": 1}
    assert_error(post(client, stocked, "supply", "/receipts", body), 409, "lot_expiry_mismatch", "expiry")


# --- issues --------------------------------------------------------------------------------

def test_issue_takes_lots_first_expired_first_out(client, stocked):
    response = post(client, stocked, "supply", "/issues", {
        "depot": "SC-D", "pool": "operational", "item": "MASK", "quantity": 40,
        "recipient": "MUN", "flag": "surge", "reference": "REQ-1"})
    assert response.status_code == 201
    movements = response.get_json()["movements"]
    assert [(m["lot_number"], m["quantity"]) for m in movements] == [("A", -30), ("B", -10)]
    for m in movements:
        assert set(m) == MOVEMENT_FIELDS
        assert (m["kind"], m["flag"], m["recipient"], m["fefo_override"], m["reference"]) == (
            "issue", "surge", "MUN", False, "REQ-1")


def test_issue_refused_says_how_much_is_available(client, stocked, session):
    before = movement_count(session)
    response = post(client, stocked, "supply", "/issues",
                    {"depot": "SC-D", "item": "MASK", "quantity": 81})
    error = assert_error(response, 422, "insufficient_stock", "quantity")
    assert "Only 80 usable, 81 requested" in error["message"]
    assert error["details"]["available"] == 80
    assert [lot["lot_number"] for lot in error["details"]["lots"]] == ["A", "B"]
    assert movement_count(session) == before


def test_issue_of_named_lot_records_the_override(client, stocked):
    response = post(client, stocked, "supply", "/issues", {
        "depot": "SC-D", "item": "MASK", "quantity": 5, "lot_number": "B",
        "override_reason": "Recipient needs long shelf life"})
    assert response.status_code == 201
    [movement] = response.get_json()["movements"]
    assert (movement["lot_number"], movement["quantity"], movement["fefo_override"], movement["reason"]) == (
        "B", -5, True, "Recipient needs long shelf life")


def test_issue_named_lot_needs_a_reason(client, stocked):
    response = post(client, stocked, "supply", "/issues",
                    {"depot": "SC-D", "item": "MASK", "quantity": 5, "lot_number": "B"})
    assert_error(response, 400, "invalid", "override_reason")


def test_issue_of_expired_lot_is_422(client, world, session):
    expired = TODAY - dt.timedelta(days=1)
    factories.receive(session, world.centre_depot, world.mask, "EXP", expired, 10,
                      today=expired - dt.timedelta(days=30))
    response = post(client, world, "supply", "/issues", {
        "depot": "SC-D", "item": "MASK", "quantity": 1, "lot_number": "EXP", "override_reason": "x"})
    assert_error(response, 422, "lot_expired", "lot_number")
    response = post(client, world, "supply", "/issues", {"depot": "SC-D", "item": "MASK", "quantity": 1})
    error = assert_error(response, 422, "insufficient_stock")
    assert error["details"]["available"] == 0


def test_issue_of_quarantined_lot_is_lot_not_usable(client, stocked):
    assert post(client, stocked, "supply", "/lots/MASK/A/status",
                {"status": "quarantined", "reason": "Torn packaging"}).status_code == 200
    response = post(client, stocked, "supply", "/issues", {
        "depot": "SC-D", "item": "MASK", "quantity": 1, "lot_number": "A", "override_reason": "x"})
    assert_error(response, 422, "lot_not_usable", "lot_number")


def test_issue_with_minimum_remaining_shelf_life(client, stocked):
    days = (LATER - TODAY).days - 1
    response = post(client, stocked, "supply", "/issues",
                    {"depot": "SC-D", "item": "MASK", "quantity": 10, "min_remaining_days": days})
    assert [m["lot_number"] for m in response.get_json()["movements"]] == ["B"]
    response = post(client, stocked, "supply", "/issues",
                    {"depot": "SC-D", "item": "MASK", "quantity": 1, "min_remaining_days": 10**6})
    assert_error(response, 400, "invalid", "min_remaining_days")


# --- transfers, counts, disposals, reversals ---------------------------------------------------

def test_transfer_between_organisations_posts_both_legs(client, stocked):
    response = post(client, stocked, "admin", "/transfers", {
        "from_depot": "SC-D", "from_pool": "operational", "to_depot": "MUN-D",
        "to_pool": "emergency", "item": "MASK", "quantity": 35})
    assert response.status_code == 201
    legs = [(m["depot"], m["pool"], m["lot_number"], m["quantity"], m["kind"])
            for m in response.get_json()["movements"]]
    assert legs == [("SC-D", "operational", "A", -30, "transfer"), ("MUN-D", "emergency", "A", 30, "transfer"),
                    ("SC-D", "operational", "B", -5, "transfer"), ("MUN-D", "emergency", "B", 5, "transfer")]


def test_transfer_between_pools_of_own_depot(client, stocked):
    response = post(client, stocked, "supply", "/transfers", {
        "from_depot": "SC-D", "to_depot": "SC-D", "to_pool": "emergency", "item": "MASK",
        "quantity": 10, "lot_number": "B"})
    assert response.status_code == 201
    assert [(m["pool"], m["quantity"]) for m in response.get_json()["movements"]] == [
        ("operational", -10), ("emergency", 10)]


def test_transfer_to_the_same_place_is_400(client, stocked):
    response = post(client, stocked, "supply", "/transfers",
                    {"from_depot": "SC-D", "to_depot": "SC-D", "item": "MASK", "quantity": 1})
    assert_error(response, 400, "invalid", "to_pool")


def test_adjustment_posts_the_signed_difference(client, stocked):
    response = post(client, stocked, "supply", "/adjustments", {
        "depot": "SC-D", "pool": "operational", "item": "MASK", "lot_number": "A",
        "counted_quantity": 27, "reason": "Stock count"})
    assert response.status_code == 201
    [movement] = response.get_json()["movements"]
    assert (movement["kind"], movement["quantity"], movement["reason"]) == ("adjustment", -3, "Stock count")


def test_adjustment_matching_the_books_records_nothing(client, stocked, session):
    before = movement_count(session)
    response = post(client, stocked, "supply", "/adjustments", {
        "depot": "SC-D", "item": "MASK", "lot_number": "A", "counted_quantity": 30, "reason": "Count"})
    assert response.status_code == 200
    assert response.get_json() == {"movements": []}
    assert movement_count(session) == before


def test_adjustment_of_unknown_lot_is_404(client, stocked):
    response = post(client, stocked, "supply", "/adjustments", {
        "depot": "SC-D", "item": "MASK", "lot_number": "NOPE", "counted_quantity": 3, "reason": "Count"})
    assert_error(response, 404, "not_found", "lot_number")


def test_disposal(client, stocked):
    response = post(client, stocked, "supply", "/disposals", {
        "depot": "SC-D", "pool": "operational", "item": "MASK", "lot_number": "A",
        "quantity": 4, "reason": "damaged", "reference": "Water damage"})
    assert response.status_code == 201
    [movement] = response.get_json()["movements"]
    assert (movement["kind"], movement["quantity"], movement["reason"], movement["reference"]) == (
        "disposal", -4, "damaged", "Water damage")


def test_disposal_refusals(client, stocked):
    body = {"depot": "SC-D", "item": "MASK", "lot_number": "A", "quantity": 4, "reason": "lost"}
    assert_error(post(client, stocked, "supply", "/disposals", body), 400, "invalid", "reason")
    body = {**body, "reason": "expired", "quantity": 31}
    error = assert_error(post(client, stocked, "supply", "/disposals", body), 422, "insufficient_stock")
    assert error["details"]["available"] == 30


def test_reverse_a_movement(client, stocked):
    issued = post(client, stocked, "supply", "/issues",
                  {"depot": "SC-D", "item": "MASK", "quantity": 3}).get_json()["movements"][0]
    response = post(client, stocked, "supply", f"/movements/{issued['id']}/reverse",
                    {"reason": "Keyed twice"})
    assert response.status_code == 201
    [reversal] = response.get_json()["movements"]
    assert (reversal["kind"], reversal["quantity"], reversal["reversal_of"], reversal["reason"]) == (
        "issue", 3, issued["id"], "Keyed twice")

    again = post(client, stocked, "supply", f"/movements/{issued['id']}/reverse", {"reason": "Again"})
    assert_error(again, 409, "already_reversed")
    of_reversal = post(client, stocked, "supply", f"/movements/{reversal['id']}/reverse", {"reason": "x"})
    assert_error(of_reversal, 409, "is_reversal")


def test_reverse_a_transfer_reverses_both_legs(client, stocked):
    legs = post(client, stocked, "supply", "/transfers", {
        "from_depot": "SC-D", "to_depot": "SC-D", "to_pool": "emergency", "item": "MASK",
        "quantity": 2}).get_json()["movements"]
    response = post(client, stocked, "supply", f"/movements/{legs[1]['id']}/reverse", {"reason": "Wrong pool"})
    assert response.status_code == 201
    assert sorted(m["reversal_of"] for m in response.get_json()["movements"]) == sorted(m["id"] for m in legs)


def test_reverse_unknown_movement(client, world):
    assert_error(post(client, world, "supply", "/movements/999999/reverse", {"reason": "x"}), 404, "not_found")
    assert_error(post(client, world, "supply", f"/movements/{10**30}/reverse", {"reason": "x"}), 404, "not_found")
    assert_error(post(client, world, "supply", "/movements/abc/reverse", {"reason": "x"}), 404, "not_found")


def test_reverse_needs_a_reason(client, stocked, session):
    movement_id = session.scalar(sa.select(Movement.id).limit(1))
    assert_error(post(client, stocked, "supply", f"/movements/{movement_id}/reverse", {}), 400, "invalid", "reason")


# --- reading the ledger and stock ----------------------------------------------------------

def test_movements_newest_first_with_filters(client, stocked, session):
    factories.receive(session, stocked.municipal_depot, stocked.glove, "G", NEXT_YEAR, 7, today=TODAY,
                      occurred_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))
    post(client, stocked, "supply", "/issues", {"depot": "SC-D", "item": "MASK", "quantity": 1})

    rows = get(client, stocked, "admin", "/movements").get_json()
    assert rows["total"] == 4
    assert [m["kind"] for m in rows["items"]][0] == "issue"
    times = [parse_time(m["occurred_at"]) for m in rows["items"]]
    assert times == sorted(times, reverse=True)
    assert set(rows["items"][0]) == MOVEMENT_FIELDS

    def lots(**params):
        return [m["lot_number"] for m in get(client, stocked, "admin", "/movements", **params).get_json()["items"]]

    assert lots(kind="receipt", depot="SC-D") == ["B", "A"]
    assert lots(item="GLOVE") == ["G"]
    assert lots(organisation="MUN") == ["G"]
    assert sorted(lots(since=TODAY.isoformat())) == ["A", "A", "B"]
    assert lots(until=(TODAY - dt.timedelta(days=1)).isoformat()) == ["G"]
    two_days_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    assert lots(until=two_days_ago.isoformat()) == ["G"]
    # An unencoded '+' in the offset arrives as a space.
    assert lots(until=two_days_ago.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat()
                .replace("+", " ")) == ["G"]
    assert sorted(lots(since="0001-01-01", until="9999-12-31")) == ["A", "A", "B", "G"]


@pytest.mark.parametrize("params,status,code,field", [
    ({"kind": "theft"}, 400, "invalid", "kind"),
    ({"since": "23.11.2026"}, 400, "invalid", "since"),
    ({"since": "2026-11-23T10:00:00"}, 400, "invalid", "since"),
    ({"until": "2026-13-01"}, 400, "invalid", "until"),
    ({"colour": "red"}, 400, "invalid", "colour"),
    ({"item": "NOPE"}, 404, "not_found", "item"),
    ({"depot": "NOPE"}, 404, "not_found", "depot"),
    ({"organisation": "NOPE"}, 404, "not_found", "organisation"),
    ({"item": "X" * 41}, 400, "invalid", "item"),
])
def test_movement_filters_refuse_bad_values(client, world, params, status, code, field):
    assert_error(get(client, world, "admin", "/movements", **params), status, code, field)


def test_stock_by_lot(client, stocked, session):
    factories.receive(session, stocked.centre_depot, stocked.glove, "G", None if not stocked.glove.has_expiry
                      else NEXT_YEAR, 9, pool="emergency", today=TODAY)
    body = get(client, stocked, "supply", "/stock", item="MASK").get_json()
    assert body["total"] == 2
    assert body["items"] == [
        {"item": "MASK", "lot_number": "A", "expiry": NEXT_YEAR.isoformat(), "status": "available",
         "depot": "SC-D", "pool": "operational", "quantity": 30},
        {"item": "MASK", "lot_number": "B", "expiry": LATER.isoformat(), "status": "available",
         "depot": "SC-D", "pool": "operational", "quantity": 50},
    ]
    emergency = get(client, stocked, "supply", "/stock", pool="emergency").get_json()["items"]
    assert [(s["item"], s["quantity"]) for s in emergency] == [("GLOVE", 9)]
    assert get(client, stocked, "supply", "/stock", organisation="SC", depot="SC-D").get_json()["total"] == 3
    assert_error(get(client, stocked, "supply", "/stock", pool="spare"), 400, "invalid", "pool")


def test_stock_omits_empty_balances(client, stocked):
    post(client, stocked, "supply", "/disposals",
         {"depot": "SC-D", "item": "MASK", "lot_number": "A", "quantity": 30, "reason": "expired"})
    lots = [s["lot_number"] for s in get(client, stocked, "supply", "/stock").get_json()["items"]]
    assert lots == ["B"]


# --- lots ----------------------------------------------------------------------------------

def test_lot_status_change(client, stocked):
    response = post(client, stocked, "supply", "/lots/MASK/A/status",
                    {"status": "recalled", "reason": "Manufacturer recall 2026-14"})
    assert response.status_code == 200
    body = response.get_json()
    event = body.pop("event")
    assert body == {"item": "MASK", "lot_number": "A", "expiry": NEXT_YEAR.isoformat(),
                    "original_expiry": None, "status": "recalled"}
    assert (event["kind"], event["old_value"], event["new_value"], event["recorded_by"]) == (
        "status", "available", "recalled", "supply@example.org")
    parse_time(event["recorded_at"])
    stock = get(client, stocked, "supply", "/stock", item="MASK").get_json()["items"]
    assert [s["status"] for s in stock] == ["recalled", "available"]

    same = post(client, stocked, "supply", "/lots/MASK/A/status", {"status": "recalled", "reason": "again"})
    assert_error(same, 409, "no_change", "status")
    assert_error(post(client, stocked, "supply", "/lots/MASK/A/status", {"status": "lost", "reason": "x"}),
                 400, "invalid", "status")


def test_lot_numbers_with_a_slash_are_addressable(client, world, session):
    factories.receive(session, world.centre_depot, world.mask, "2026/11", NEXT_YEAR, 4, today=TODAY)
    response = post(client, world, "supply", "/lots/MASK/2026/11/status",
                    {"status": "quarantined", "reason": "Check"})
    assert response.status_code == 200
    assert response.get_json()["lot_number"] == "2026/11"


def test_shelf_life_extension_keeps_the_original_expiry(client, stocked):
    new_expiry = LATER + dt.timedelta(days=30)
    response = post(client, stocked, "supply", "/lots/MASK/A/extend",
                    {"new_expiry": new_expiry.isoformat(), "reason": "Stability test passed"})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["expiry"], body["original_expiry"]) == (new_expiry.isoformat(), NEXT_YEAR.isoformat())
    assert (body["event"]["kind"], body["event"]["old_value"], body["event"]["new_value"]) == (
        "extension", NEXT_YEAR.isoformat(), new_expiry.isoformat())

    earlier = post(client, stocked, "supply", "/lots/MASK/A/extend",
                   {"new_expiry": TODAY.isoformat(), "reason": "x"})
    assert_error(earlier, 400, "invalid", "new_expiry")
    assert_error(post(client, stocked, "supply", "/lots/MASK/A/extend", {"new_expiry": "soon", "reason": "x"}),
                 400, "invalid", "new_expiry")


def test_unknown_lot_is_404(client, stocked):
    assert_error(post(client, stocked, "supply", "/lots/MASK/NOPE/status",
                      {"status": "quarantined", "reason": "x"}), 404, "not_found", "lot_number")
    assert_error(post(client, stocked, "supply", "/lots/NOPE/A/status",
                      {"status": "quarantined", "reason": "x"}), 404, "not_found", "item")


# --- idempotency ---------------------------------------------------------------------------

def test_idempotent_retry_returns_the_first_answer(client, world, session):
    body = {"depot": "SC-D", "item": "MASK", "lot_number": "IDEM", "expiry": NEXT_YEAR.isoformat(),
            "quantity": 10}
    first = post(client, world, "supply", "/receipts", body, **{"Idempotency-Key": "scan-0001"})
    assert first.status_code == 201
    count = movement_count(session)

    retry = post(client, world, "supply", "/receipts", body, **{"Idempotency-Key": "scan-0001"})
    assert retry.status_code == 201
    assert retry.get_json() == first.get_json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert movement_count(session) == count

    other = post(client, world, "supply", "/receipts", {**body, "quantity": 11},
                 **{"Idempotency-Key": "scan-0001"})
    assert_error(other, 409, "idempotency_key_reused", "Idempotency-Key")
    assert movement_count(session) == count

    fresh = post(client, world, "supply", "/receipts", body, **{"Idempotency-Key": "scan-0002"})
    assert fresh.status_code == 201
    assert movement_count(session) == count + 1
    stock = get(client, world, "supply", "/stock", item="MASK").get_json()["items"]
    assert [s["quantity"] for s in stock] == [20]


def test_refused_request_is_not_remembered_under_its_key(client, stocked, session):
    body = {"depot": "SC-D", "item": "MASK", "quantity": 100}
    refused = post(client, stocked, "supply", "/issues", body, **{"Idempotency-Key": "k-1"})
    assert_error(refused, 422, "insufficient_stock")
    post(client, stocked, "supply", "/receipts", {"depot": "SC-D", "item": "MASK", "lot_number": "C",
                                                  "expiry": LATER.isoformat(), "quantity": 20})
    assert post(client, stocked, "supply", "/issues", body, **{"Idempotency-Key": "k-1"}).status_code == 201


# --- pagination ----------------------------------------------------------------------------

def test_pagination(client, world, session):
    for n in range(5):
        factories.item(session, f"P-{n}", "consumable")
    page = get(client, world, "viewer", "/items", page=2, per_page=3).get_json()
    assert (page["page"], page["per_page"], page["total"]) == (2, 3, 7)
    assert [i["code"] for i in page["items"]] == ["P-1", "P-2", "P-3"]
    beyond = get(client, world, "viewer", "/items", page=9, per_page=3).get_json()
    assert (beyond["items"], beyond["total"]) == ([], 7)
    default = get(client, world, "viewer", "/items").get_json()
    assert (default["page"], default["per_page"], len(default["items"])) == (1, 50, 7)
    assert get(client, world, "viewer", "/items", per_page=500).status_code == 200


@pytest.mark.parametrize("path", ["/items", "/organisations", "/depots", "/movements", "/stock"])
@pytest.mark.parametrize("params,field", [
    ({"per_page": 501}, "per_page"),
    ({"per_page": 0}, "per_page"),
    ({"page": 0}, "page"),
    ({"page": "two"}, "page"),
    ({"page": 10**12}, "page"),
])
def test_bad_page_arguments_are_400(client, world, path, params, field):
    assert_error(get(client, world, "admin", path, **params), 400, "invalid", field)


# --- CSRF does not apply to token-authenticated API calls ----------------------------------

class TestWithCsrfProtectionOn:
    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "WTF_CSRF_ENABLED": True}

    def test_api_post_needs_no_csrf_token(self, client, world):
        response = post(client, world, "supply", "/receipts", {
            "depot": "SC-D", "item": "MASK", "lot_number": "L", "expiry": NEXT_YEAR.isoformat(),
            "quantity": 1})
        assert response.status_code == 201, response.get_data(as_text=True)
