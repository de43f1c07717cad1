"""The alerts API: fields on a worked example, filters, pagination, who sees and acknowledges
what, 409 on an alert that is no longer open, and Idempotency-Key replay."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from stockpile.alerts.models import Alert, AlertEvent
from tests import factories
from tests.alerts.conftest import days

URL = "/api/v1/alerts"


def listed(client, alerted, who: str, query: str = "") -> dict:
    response = client.get(f"{URL}{query}", headers=alerted.headers(who))
    assert response.status_code == 200, response.json
    return response.json


def acknowledgements(session, alert: Alert) -> list[AlertEvent]:
    return list(session.scalars(sa.select(AlertEvent).where(AlertEvent.alert_id == alert.id,
                                                            AlertEvent.kind == "acknowledged")))


# --- reading ------------------------------------------------------------------------------------

def test_an_alert_has_the_fields_of_the_contract(client, alerted):
    body = listed(client, alerted, "supply")
    assert (body["page"], body["per_page"], body["total"]) == (1, 50, 1)
    [alert] = body["items"]
    assert set(alert) == {"id", "rule", "severity", "state", "organisation", "item", "lot_number", "message",
                          "first_seen", "last_seen", "resolved_at"}
    assert alert["id"] == alerted.below_min.id
    assert (alert["rule"], alert["severity"], alert["state"], alert["organisation"], alert["item"],
            alert["lot_number"], alert["resolved_at"]) == (
        "coverage_below_min", "critical", "open", "SC", "GLOVE", None, None)
    # 150 units at 10 a day: 15 days, below the minimum of 21; 28 days' target is 280, 130 short.
    assert "15 days of coverage, below the minimum of 21 days; 130 units short of the target." in alert["message"]
    first_seen = dt.datetime.fromisoformat(alert["first_seen"])
    assert first_seen.utcoffset() == dt.timedelta(0)
    assert dt.datetime.fromisoformat(alert["last_seen"]) >= first_seen


def test_a_lot_alert_names_its_lot(client, alerted):
    body = listed(client, alerted, "municipal", "?rule=expired_on_hand")
    assert [(a["organisation"], a["item"], a["lot_number"]) for a in body["items"]] == [("MUN", "MASK", "OLD")]
    assert "expired on" in body["items"][0]["message"] and "5 units" in body["items"][0]["message"]


def test_one_alert_with_its_history(client, alerted):
    response = client.get(f"{URL}/{alerted.expired.id}", headers=alerted.headers("municipal"))
    assert response.status_code == 200
    assert response.json["lot_number"] == "OLD"
    assert [(e["kind"], e["user"], e["comment"]) for e in response.json["events"]] == [("opened", None, None)]


@pytest.mark.parametrize("query,expected", [
    ("", {("SC", "coverage_below_min"), ("MUN", "expired_on_hand"), ("MUN", "no_baseline"),
          ("OTHER", "expired_on_hand"), ("OTHER", "no_baseline")}),
    ("?severity=info", {("MUN", "no_baseline"), ("OTHER", "no_baseline")}),
    ("?severity=critical&organisation=MUN", {("MUN", "expired_on_hand")}),
    ("?organisation=OTHER", {("OTHER", "expired_on_hand"), ("OTHER", "no_baseline")}),
    ("?rule=coverage_below_min", {("SC", "coverage_below_min")}),
    ("?state=open", {("SC", "coverage_below_min"), ("MUN", "expired_on_hand"), ("MUN", "no_baseline"),
                     ("OTHER", "expired_on_hand"), ("OTHER", "no_baseline")}),
    ("?state=resolved", set()),
    ("?state=acknowledged", set()),
])
def test_filters(client, alerted, query, expected):
    body = listed(client, alerted, "admin", query + ("&" if "?" in query else "?") + "per_page=500")
    assert {(a["organisation"], a["rule"]) for a in body["items"]} == expected
    assert body["total"] == len(expected)


@pytest.mark.parametrize("query,field", [
    ("?state=closed", "state"), ("?severity=high", "severity"), ("?rule=no_such_rule", "rule"),
    ("?page=0", "page"), ("?per_page=501", "per_page"), ("?colour=red", "colour"),
])
def test_bad_filters_are_400_naming_the_field(client, alerted, query, field):
    response = client.get(URL + query, headers=alerted.headers("admin"))
    assert response.status_code == 400
    assert field in response.json["error"]["fields"]


def test_an_unknown_organisation_is_404(client, alerted):
    response = client.get(f"{URL}?organisation=NOPE", headers=alerted.headers("admin"))
    assert response.status_code == 404
    assert "organisation" in response.json["error"]["fields"]


def test_pagination(client, alerted):
    pages = [listed(client, alerted, "admin", f"?per_page=2&page={n}") for n in (1, 2, 3, 4)]
    assert [len(p["items"]) for p in pages] == [2, 2, 1, 0]
    assert {p["total"] for p in pages} == {5}
    ids = [a["id"] for p in pages for a in p["items"]]
    assert len(set(ids)) == 5


def test_most_recently_seen_first(client, alerted, session):
    before = [a["id"] for a in listed(client, alerted, "admin")["items"]]
    # The alert listed last is seen again later (a later scan): it heads the list.
    last = session.get(Alert, before[-1])
    last.last_seen = last.last_seen + dt.timedelta(minutes=5)
    session.commit()
    assert [a["id"] for a in listed(client, alerted, "admin")["items"]] == [before[-1], *before[:-1]]


# --- who sees what -----------------------------------------------------------------------------

@pytest.mark.parametrize("who,organisations", [
    ("admin", {"SC", "MUN", "OTHER"}),
    ("coordinator", {"SC", "MUN"}),     # the region's subtree
    ("supply", {"SC"}),
    ("pharmacist", {"SC"}),
    ("viewer", {"SC"}),
    ("municipal", {"MUN"}),             # their municipality's alerts only
    ("outsider", {"OTHER"}),
])
def test_each_user_sees_the_alerts_of_the_organisations_they_may_read(client, alerted, who, organisations):
    body = listed(client, alerted, who, "?per_page=500")
    assert {a["organisation"] for a in body["items"]} == organisations


@pytest.mark.parametrize("who,organisation", [
    ("outsider", "SC"), ("municipal", "SC"), ("supply", "MUN"), ("coordinator", "OTHER"),
])
def test_an_organisation_filter_outside_ones_reach_is_403(client, alerted, who, organisation):
    response = client.get(f"{URL}?organisation={organisation}", headers=alerted.headers(who))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


@pytest.mark.parametrize("who", ["outsider", "municipal", "coordinator"])
def test_an_alert_outside_ones_reach_is_not_found(client, alerted, who):
    target = alerted.other_expired if who != "outsider" else alerted.below_min
    assert client.get(f"{URL}/{target.id}", headers=alerted.headers(who)).status_code == 404
    response = client.post(f"{URL}/{target.id}/acknowledge", headers=alerted.headers(who), json={})
    assert response.status_code == 404


def test_no_token_is_401(client, alerted):
    assert client.get(URL).status_code == 401
    assert client.post(f"{URL}/{alerted.below_min.id}/acknowledge").status_code == 401


def test_unknown_and_impossible_ids_are_404(client, alerted):
    for alert_id in (999_999, 2**40):
        assert client.get(f"{URL}/{alert_id}", headers=alerted.headers("admin")).status_code == 404


# --- acknowledging ------------------------------------------------------------------------------

def test_acknowledge_then_409_when_no_longer_open(client, alerted, session):
    alert = alerted.below_min
    response = client.post(f"{URL}/{alert.id}/acknowledge", headers=alerted.headers("supply"),
                           json={"comment": "Order placed, arrives Friday"})
    assert response.status_code == 200
    assert response.json["state"] == "acknowledged"
    assert [(e["kind"], e["user"], e["comment"]) for e in response.json["events"]] == [
        ("opened", None, None), ("acknowledged", "supply@example.org", "Order placed, arrives Friday")]
    session.refresh(alert)
    assert alert.state == "acknowledged"

    again = client.post(f"{URL}/{alert.id}/acknowledge", headers=alerted.headers("pharmacist"), json={})
    assert again.status_code == 409
    assert again.json["error"]["code"] == "not_open"
    assert len(acknowledgements(session, alert)) == 1
    # Still listed (it is not resolved), as acknowledged.
    body = listed(client, alerted, "supply", "?state=acknowledged")
    assert [a["id"] for a in body["items"]] == [alert.id]


def test_the_body_is_optional(client, alerted, session):
    response = client.post(f"{URL}/{alerted.expired.id}/acknowledge", headers=alerted.headers("municipal"))
    assert response.status_code == 200
    assert response.json["events"][-1]["comment"] is None


@pytest.mark.parametrize("body,field", [
    ({"comment": "x" * 2001}, "comment"), ({"comment": 5}, "comment"), ({"comment": "a\x00b"}, "comment"),
    ({"note": "hi"}, "note"),
])
def test_a_bad_body_is_400_and_acknowledges_nothing(client, alerted, session, body, field):
    response = client.post(f"{URL}/{alerted.below_min.id}/acknowledge", headers=alerted.headers("supply"), json=body)
    assert response.status_code == 400
    assert field in response.json["error"]["fields"]
    session.refresh(alerted.below_min)
    assert alerted.below_min.state == "open"


def test_a_body_that_is_not_json_is_400(client, alerted):
    response = client.post(f"{URL}/{alerted.below_min.id}/acknowledge", headers=alerted.headers("supply"),
                           data="comment=hi", content_type="text/plain")
    assert response.status_code == 400


def test_a_retry_with_the_same_idempotency_key_answers_the_same_and_acknowledges_once(client, alerted, session):
    headers = {**alerted.headers("supply"), "Idempotency-Key": "ack-1"}
    url = f"{URL}/{alerted.below_min.id}/acknowledge"
    first = client.post(url, headers=headers, json={"comment": "on it"})
    retry = client.post(url, headers=headers, json={"comment": "on it"})
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json == first.json
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert len(acknowledgements(session, alerted.below_min)) == 1
    other_body = client.post(url, headers=headers, json={"comment": "something else"})
    assert other_body.status_code == 409
    assert other_body.json["error"]["code"] == "idempotency_key_reused"


@pytest.mark.parametrize("who,status", [
    ("supply", 200), ("pharmacist", 200), ("admin", 200),   # record stock for SC, or administrator
    ("viewer", 403), ("coordinator", 403),                   # read only
])
def test_who_may_acknowledge(client, alerted, session, who, status):
    response = client.post(f"{URL}/{alerted.below_min.id}/acknowledge", headers=alerted.headers(who), json={})
    assert response.status_code == status
    session.refresh(alerted.below_min)
    assert alerted.below_min.state == ("acknowledged" if status == 200 else "open")
    if status == 403:
        assert "acknowledge" in response.json["error"]["message"]


def test_a_resolved_alert_shows_when_and_cannot_be_acknowledged(client, alerted, session):
    # Stock put right: 150 + 200 = 350 units = 35 days; the commit's evaluation resolves it.
    factories.receive(session, alerted.world.centre_depot, alerted.world.glove, "G2", days(400), 200)
    session.commit()
    response = client.get(f"{URL}/{alerted.below_min.id}", headers=alerted.headers("supply"))
    assert response.json["state"] == "resolved"
    assert dt.datetime.fromisoformat(response.json["resolved_at"]) >= dt.datetime.fromisoformat(
        response.json["first_seen"])
    assert [e["kind"] for e in response.json["events"]] == ["opened", "resolved"]
    ack = client.post(f"{URL}/{alerted.below_min.id}/acknowledge", headers=alerted.headers("supply"), json={})
    assert ack.status_code == 409
