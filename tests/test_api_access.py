"""Who may read and record what through the API: every endpoint, reads included."""

import datetime as dt

import pytest
import sqlalchemy as sa

from stockpile.extensions import db
from stockpile.inventory.models import Lot, Movement
from tests import factories

TODAY = factories.TODAY
EXPIRY = TODAY + dt.timedelta(days=365)


def call(client, world, who, method, path, body=None):
    # What the test arranged is committed first, as it would be before a real request.
    db.fixed_session.commit()
    return client.open(f"/api/v1{path}", method=method, json=body, headers=world.headers(who))


@pytest.fixture
def centre_stock(world, session):
    """Lot A of MASK in the supply centre's depot, and the id of its receipt."""
    [receipt] = factories.receive(session, world.centre_depot, world.mask, "A", EXPIRY, 40, today=TODAY)
    return receipt.id


def ledger_size(session):
    return session.scalar(sa.select(sa.func.count(Movement.id)))


# Every endpoint, aimed at the supply centre's data. "{own}" is the caller's own depot, so
# a transfer is refused for the centre's side even where the caller may write the other.
CENTRE_ENDPOINTS = [
    ("GET", "/organisations/SC", None),
    ("GET", "/depots/SC-D", None),
    ("GET", "/depots?organisation=SC", None),
    ("GET", "/movements?depot=SC-D", None),
    ("GET", "/movements?organisation=SC", None),
    ("GET", "/stock?depot=SC-D", None),
    ("GET", "/stock?organisation=SC", None),
    ("POST", "/organisations", {"code": "SC-SUB", "name": "Sub", "kind": "supply_centre", "parent": "SC"}),
    ("POST", "/depots", {"code": "SC-D2", "name": "Second", "organisation": "SC"}),
    ("POST", "/items", {"code": "NEW-ITEM", "name": "New", "category": "ppe", "unit": "piece"}),
    ("POST", "/receipts", {"depot": "SC-D", "item": "MASK", "lot_number": "B",
                           "expiry": EXPIRY.isoformat(), "quantity": 5}),
    ("POST", "/issues", {"depot": "SC-D", "item": "MASK", "quantity": 5}),
    ("POST", "/transfers", {"from_depot": "SC-D", "to_depot": "{own}", "item": "MASK", "quantity": 5}),
    ("POST", "/transfers", {"from_depot": "{own}", "to_depot": "SC-D", "item": "MASK", "quantity": 5,
                            "lot_number": "A"}),
    ("POST", "/adjustments", {"depot": "SC-D", "item": "MASK", "lot_number": "A",
                              "counted_quantity": 0, "reason": "Count"}),
    ("POST", "/disposals", {"depot": "SC-D", "item": "MASK", "lot_number": "A", "quantity": 5,
                            "reason": "damaged"}),
    ("POST", "/movements/{receipt}/reverse", {"reason": "Mistake"}),
    ("POST", "/lots/MASK/A/status", {"status": "recalled", "reason": "Recall"}),
    ("POST", "/lots/MASK/A/extend", {"new_expiry": (EXPIRY + dt.timedelta(days=90)).isoformat(),
                                     "reason": "Stability test"}),
]


def _fill(value, **names):
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {key: _fill(item, **names) for key, item in value.items()}
    return value


@pytest.mark.parametrize("who,own_depot", [("outsider", "OTHER-D"), ("municipal", "MUN-D")])
@pytest.mark.parametrize("method,path,body", CENTRE_ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, _ in CENTRE_ENDPOINTS])
def test_users_of_other_organisations_cannot_reach_the_centre(client, world, session, centre_stock,
                                                              who, own_depot, method, path, body):
    before = ledger_size(session)
    names = {"own": own_depot, "receipt": centre_stock}
    response = call(client, world, who, method, _fill(path, **names), _fill(body, **names))
    assert response.status_code in (403, 404), response.get_json()
    assert response.get_json()["error"]["code"] in ("forbidden", "not_found")
    assert ledger_size(session) == before
    lot = session.scalar(sa.select(Lot).where(Lot.lot_number == "A"))
    session.refresh(lot)
    assert (lot.status, lot.expiry) == ("available", EXPIRY)


@pytest.mark.parametrize("method,path,body", CENTRE_ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, _ in CENTRE_ENDPOINTS])
def test_the_same_calls_succeed_for_an_administrator(client, world, session, centre_stock, method, path, body):
    # The refusals above are about access, not about the requests themselves.
    names = {"own": "MUN-D", "receipt": centre_stock}
    if "{own}" in str(body) and body["from_depot"] == "{own}":
        call(client, world, "admin", "POST", "/transfers",
             {"from_depot": "SC-D", "to_depot": "MUN-D", "item": "MASK", "quantity": 5})
    response = call(client, world, "admin", method, _fill(path, **names), _fill(body, **names))
    assert response.status_code in (200, 201), response.get_json()


def test_lists_show_only_the_callers_organisations(client, world, session, centre_stock):
    factories.receive(session, world.municipal_depot, world.glove, "G", EXPIRY, 3, today=TODAY)

    def codes(path, key="code"):
        return sorted(row[key] for row in call(client, world, "municipal", "GET", path).get_json()["items"])

    assert codes("/organisations") == ["MUN"]
    assert codes("/depots") == ["MUN-D"]
    assert codes("/stock", "depot") == ["MUN-D"]
    assert codes("/movements", "depot") == ["MUN-D"]
    assert call(client, world, "outsider", "GET", "/stock").get_json()["total"] == 0
    assert call(client, world, "outsider", "GET", "/movements").get_json()["total"] == 0


def test_item_catalogue_is_global_but_only_admins_and_supply_staff_extend_it(client, world):
    for who in ("outsider", "municipal", "viewer", "coordinator", "pharmacist"):
        assert call(client, world, who, "GET", "/items").get_json()["total"] == 2
        assert call(client, world, who, "GET", "/items/MASK").status_code == 200
        body = {"code": f"ITEM-{who}", "name": "X", "category": "ppe", "unit": "piece"}
        assert call(client, world, who, "POST", "/items", body).status_code == 403
    body = {"code": "ITEM-SUPPLY", "name": "X", "category": "ppe", "unit": "piece"}
    assert call(client, world, "supply", "POST", "/items", body).status_code == 201


@pytest.mark.parametrize("who", ["supply", "municipal", "coordinator", "pharmacist", "viewer"])
def test_only_administrators_create_organisations_and_depots(client, world, who):
    organisation = {"code": "NEW-ORG", "name": "New", "kind": "municipality"}
    assert call(client, world, who, "POST", "/organisations", organisation).status_code == 403
    depot = {"code": "NEW-D", "name": "New", "organisation": "SC"}
    assert call(client, world, who, "POST", "/depots", depot).status_code == 403
    assert call(client, world, "admin", "POST", "/organisations", organisation).status_code == 201
    assert call(client, world, "admin", "POST", "/depots", depot).status_code == 201


def test_coordinator_reads_the_region_but_not_beyond(client, world, centre_stock):
    def status(path):
        return call(client, world, "coordinator", "GET", path).status_code

    for path in ("/organisations/REG", "/organisations/SC", "/organisations/MUN", "/depots/SC-D",
                 "/stock?organisation=SC", "/stock?depot=MUN-D", "/movements?organisation=SC",
                 "/depots?organisation=MUN"):
        assert status(path) == 200, path
    for path in ("/organisations/OTHER", "/depots/OTHER-D", "/stock?organisation=OTHER",
                 "/movements?depot=OTHER-D", "/depots?organisation=OTHER"):
        assert status(path) == 403, path
    listed = call(client, world, "coordinator", "GET", "/organisations").get_json()["items"]
    assert sorted(o["code"] for o in listed) == ["MUN", "REG", "SC"]
    stock = call(client, world, "coordinator", "GET", "/stock").get_json()["items"]
    assert [(s["depot"], s["quantity"]) for s in stock] == [("SC-D", 40)]


@pytest.mark.parametrize("who", ["coordinator", "viewer"])
@pytest.mark.parametrize("method,path,body", [row for row in CENTRE_ENDPOINTS if row[0] == "POST"],
                         ids=[f"{m} {p}" for m, p, _ in CENTRE_ENDPOINTS if m == "POST"])
def test_readers_cannot_record(client, world, session, centre_stock, who, method, path, body):
    names = {"own": "MUN-D", "receipt": centre_stock}
    before = ledger_size(session)
    response = call(client, world, who, method, _fill(path, **names), _fill(body, **names))
    assert response.status_code == 403, response.get_json()
    assert ledger_size(session) == before


@pytest.mark.parametrize("who", ["supply", "pharmacist"])
def test_stock_roles_record_for_their_own_organisation(client, world, who):
    body = {"depot": "SC-D", "item": "MASK", "lot_number": "OWN", "expiry": EXPIRY.isoformat(), "quantity": 2}
    assert call(client, world, who, "POST", "/receipts", body).status_code == 201
    issue = {"depot": "SC-D", "item": "MASK", "quantity": 1}
    assert call(client, world, who, "POST", "/issues", issue).status_code == 201


def test_a_transfer_needs_both_organisations(client, world, session, centre_stock):
    body = {"from_depot": "SC-D", "to_depot": "MUN-D", "item": "MASK", "quantity": 5}
    assert call(client, world, "supply", "POST", "/transfers", body).status_code == 403
    legs = call(client, world, "admin", "POST", "/transfers", body).get_json()["movements"]
    # Reversing it touches both organisations too.
    for who in ("supply", "municipal"):
        response = call(client, world, who, "POST", f"/movements/{legs[0]['id']}/reverse", {"reason": "x"})
        assert response.status_code == 403, who


def test_lot_changes_where_the_caller_holds_stock(client, world, session, centre_stock):
    change = {"status": "quarantined", "reason": "Suspect batch"}
    assert call(client, world, "municipal", "POST", "/lots/MASK/A/status", change).status_code == 403
    call(client, world, "admin", "POST", "/transfers",
         {"from_depot": "SC-D", "to_depot": "MUN-D", "item": "MASK", "quantity": 5})
    assert call(client, world, "municipal", "POST", "/lots/MASK/A/status", change).status_code == 200
    assert call(client, world, "outsider", "POST", "/lots/MASK/A/status",
                {"status": "available", "reason": "x"}).status_code == 403
