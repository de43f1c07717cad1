"""The alert pages: the list of what each user is responsible for, the count in the navigation,
acknowledging from the list and the detail page, the history, the coordinator's summary, the
rule and webhook administration with its validation, the digest settings, and CSRF."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from stockpile.coverage import services as coverage
from stockpile.alerts import services as alerts
from stockpile.alerts.forms import parse_rule_params
from stockpile.alerts.models import Alert, AlertEvent, AlertRule, DigestSetting, Webhook
from stockpile.inventory.models import Organisation
from stockpile.rotation import services as rotation
from tests import factories
from tests.alerts.conftest import TODAY, days
from tests.conftest import csrf_token


def main_html(response) -> str:
    """The page without the navigation."""
    return response.text.split('<main id="main"', 1)[1]


def nav_count(response) -> int | None:
    found = re.search(r'class="nav-count"[^>]*>(\d+)<', response.text)
    return int(found.group(1)) if found else None


def listed_ids(response) -> set[int]:
    return {int(n) for n in re.findall(r'class="alert-title" href="/alerts/(\d+)"', response.text)}


def events(session, alert: Alert) -> list[tuple[str, str | None]]:
    rows = session.scalars(sa.select(AlertEvent).where(AlertEvent.alert_id == alert.id).order_by(AlertEvent.id))
    return [(e.kind, e.comment) for e in rows]


# --- the list and the count ----------------------------------------------------------------------

@pytest.mark.parametrize("who,organisations", [
    ("supply", {"SC"}),
    ("viewer", {"SC"}),
    ("municipal", {"MUN"}),
    ("coordinator", {"SC", "MUN"}),
    ("admin", {"SC", "MUN", "OTHER"}),
])
def test_the_list_shows_what_the_user_is_responsible_for_with_the_count_in_the_nav(
        client, auth, alerted, session, who, organisations):
    expected = set(session.scalars(sa.select(Alert.id).join(Alert.organisation)
                                   .where(Organisation.code.in_(organisations))))
    auth.login(f"{who}@example.org")
    response = client.get("/alerts")
    assert response.status_code == 200
    assert listed_ids(response) == expected
    assert nav_count(response) == len(expected)
    # The count is on every page, not only this one.
    assert nav_count(client.get("/items")) == len(expected)


def test_the_list_shows_the_message_severity_and_where_to_act(client, auth, alerted):
    auth.login("municipal@example.org")
    page = main_html(client.get("/alerts"))
    assert "Lot OLD of Item MASK (MASK), 5 units: expired on" in page
    assert 'class="badge sev sev-critical"' in page and 'class="badge sev sev-info"' in page
    assert 'href="/items/MASK"' in page                 # the lot alert: the item's lots
    assert 'href="/coverage/MUN/MASK"' in page          # the missing baseline: the item's coverage


def test_no_count_when_nothing_is_open_and_no_nav_for_anonymous(client, auth, alerted, session):
    auth.login("supply@example.org")
    client.post(f"/alerts/{alerted.below_min.id}/acknowledge", data={})
    assert nav_count(client.get("/alerts")) is None  # acknowledged is no longer "open"
    client.post("/logout")
    assert "nav-count" not in client.get("/login").text


@pytest.mark.parametrize("query,expected", [
    ("?severity=info", {"mun_no_baseline"}),
    ("?severity=critical", {"below_min", "expired"}),
    ("?organisation=MUN", {"expired", "mun_no_baseline"}),
    ("?rule=expired_on_hand", {"expired"}),
    ("?state=resolved", set()),
    ("?state=bogus&severity=bogus&rule=bogus&page=x", {"below_min", "expired", "mun_no_baseline"}),
])
def test_filters(client, auth, alerted, query, expected):
    auth.login("coordinator@example.org")
    response = client.get("/alerts" + query)
    assert response.status_code == 200
    assert listed_ids(response) == {getattr(alerted, name).id for name in expected}


def test_resolved_alerts_leave_the_default_list(client, auth, alerted, session):
    factories.receive(session, alerted.world.centre_depot, alerted.world.glove, "G2", days(400), 200)
    session.commit()
    auth.login("supply@example.org")
    assert listed_ids(client.get("/alerts")) == set()
    assert "No alerts to act on" in client.get("/alerts").text
    assert listed_ids(client.get("/alerts?state=resolved")) == {alerted.below_min.id}
    assert listed_ids(client.get("/alerts?state=all")) == {alerted.below_min.id}


def test_an_organisation_outside_ones_reach_is_403(client, auth, alerted):
    auth.login("municipal@example.org")
    assert client.get("/alerts?organisation=SC").status_code == 403
    assert client.get("/alerts?organisation=NOPE").status_code == 404


def test_the_list_is_paged(client, auth, alerted, session, monkeypatch):
    monkeypatch.setattr("stockpile.alerts.views.PER_PAGE", 2)
    auth.login("admin@example.org")
    first, second, third = (client.get(f"/alerts?page={n}") for n in (1, 2, 3))
    assert [len(listed_ids(p)) for p in (first, second, third)] == [2, 2, 1]
    assert "Page 1 of 3" in first.text and 'href="/alerts?page=2' in first.text
    assert len(listed_ids(first) | listed_ids(second) | listed_ids(third)) == 5
    assert listed_ids(client.get("/alerts?page=99")) == listed_ids(third)  # beyond the end: the last page


def test_a_rotation_alert_links_to_the_rotation_list(client, auth, world, session):
    ctx = factories.ctx(today=TODAY)
    coverage.set_manual_baseline(session, ctx, organisation=world.centre, item=world.glove, weekly_use=70,
                                  valid_from=days(-30))
    # 1000 units at 10 a day need 100 days of use, but the lot expires in 60: overdue at once.
    factories.receive(session, world.centre_depot, world.glove, "EM", days(60), 1000, pool="emergency")
    rotation.sync_tasks(session, today=TODAY, organisations=[world.centre])
    alerts.evaluate(session, [world.centre], today=TODAY)
    session.commit()
    overdue = session.scalars(sa.select(Alert).where(Alert.rule == "rotation_overdue")).one()
    auth.login("supply@example.org")
    page = client.get(f"/alerts/{overdue.id}").text
    assert 'href="/rotation?organisation=SC"' in page


# --- the regional summary ----------------------------------------------------------------------------

def test_coordinators_see_a_summary_per_member_and_severity(client, auth, alerted):
    auth.login("coordinator@example.org")
    page = main_html(client.get("/alerts"))
    assert "Regional summary" in page
    summary = page.split("Regional summary", 1)[1].split("</section>", 1)[0]
    rows = {m.group(1): [int(n) for n in re.findall(r"<td class=\"num[^\"]*\">(?:<span[^>]*>)?(\d+)", m.group(2))]
            for m in re.finditer(r'organisation=(\w+)">.*?</td>(.*?)</tr>', summary, re.DOTALL)}
    # critical, warning, info, total, not yet acknowledged
    assert rows == {"SC": [1, 0, 0, 1, 1], "MUN": [1, 0, 1, 2, 2]}
    assert "OTHER" not in summary
    assert "more organisation has no unresolved alerts" in summary  # REG itself


def test_staff_see_no_summary(client, auth, alerted):
    auth.login("supply@example.org")
    assert "Regional summary" not in client.get("/alerts").text


# --- acknowledging --------------------------------------------------------------------------------

def test_acknowledge_from_the_list_with_a_comment_returns_to_the_list(client, auth, alerted, session):
    auth.login("municipal@example.org")
    listing = client.get("/alerts?severity=critical")
    assert f'action="/alerts/{alerted.expired.id}/acknowledge"' in listing.text
    response = client.post(f"/alerts/{alerted.expired.id}/acknowledge",
                           data={"comment": "Disposal booked for Monday", "next": "/alerts?severity=critical"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/alerts?severity=critical"
    session.refresh(alerted.expired)
    assert alerted.expired.state == "acknowledged"
    assert events(session, alerted.expired)[-1] == ("acknowledged", "Disposal booked for Monday")
    page = client.get(response.headers["Location"]).text
    assert f"Alert {alerted.expired.id} acknowledged" in page
    assert nav_count(client.get("/items")) == 1


def test_acknowledging_twice_says_so_and_records_once(client, auth, alerted, session):
    auth.login("supply@example.org")
    client.post(f"/alerts/{alerted.below_min.id}/acknowledge", data={"comment": "first"})
    response = client.post(f"/alerts/{alerted.below_min.id}/acknowledge", data={"comment": "second"},
                           follow_redirects=True)
    assert response.status_code == 200
    assert "already acknowledged; only open alerts can be acknowledged" in response.text
    assert events(session, alerted.below_min) == [("opened", None), ("acknowledged", "first")]


def test_a_next_page_elsewhere_is_not_followed(client, auth, alerted):
    auth.login("supply@example.org")
    response = client.post(f"/alerts/{alerted.below_min.id}/acknowledge",
                           data={"next": "https://evil.example/alerts"})
    assert response.headers["Location"] == f"/alerts/{alerted.below_min.id}"


def test_a_comment_too_long_is_refused_on_the_page(client, auth, alerted, session):
    auth.login("supply@example.org")
    response = client.post(f"/alerts/{alerted.below_min.id}/acknowledge", data={"comment": "x" * 2001})
    assert response.status_code == 422
    assert "has-error" in response.text
    session.refresh(alerted.below_min)
    assert alerted.below_min.state == "open"


@pytest.mark.parametrize("who", ["coordinator", "viewer"])
def test_read_only_users_see_no_form_and_are_refused(client, auth, alerted, session, who):
    auth.login(f"{who}@example.org")
    assert "Acknowledge…" not in client.get("/alerts").text
    detail = client.get(f"/alerts/{alerted.below_min.id}").text
    assert f'action="/alerts/{alerted.below_min.id}/acknowledge"' not in detail
    assert "acknowledge its alerts; you can read them" in detail
    response = client.post(f"/alerts/{alerted.below_min.id}/acknowledge", data={"comment": "seen"})
    assert response.status_code == 403
    session.refresh(alerted.below_min)
    assert alerted.below_min.state == "open"


def test_alerts_of_others_are_not_found(client, auth, alerted):
    auth.login("outsider@example.org")
    assert client.get(f"/alerts/{alerted.below_min.id}").status_code == 404
    assert client.post(f"/alerts/{alerted.below_min.id}/acknowledge", data={}).status_code == 404
    assert client.get("/alerts/99999999999").status_code == 404


def test_the_detail_page_shows_the_history(client, auth, alerted, session):
    auth.login("supply@example.org")
    client.post(f"/alerts/{alerted.below_min.id}/acknowledge", data={"comment": "Order placed, arrives Friday"})
    factories.receive(session, alerted.world.centre_depot, alerted.world.glove, "G2", days(400), 200)
    session.commit()  # 35 days: resolved by the evaluation before this commit
    page = main_html(client.get(f"/alerts/{alerted.below_min.id}"))
    history = page.split("History", 1)[1]
    kinds = re.findall(r'<td class="strong">([^<]+)</td>', history)
    assert kinds == ["Resolved", "Acknowledged", "Opened"]  # newest first
    assert "Order placed, arrives Friday" in history and "supply@example.org" in history
    assert "The condition no longer holds." in history
    assert 'href="/coverage/SC/GLOVE"' in page


# --- digest settings ----------------------------------------------------------------------------------

def test_digest_settings_are_saved_on_first_save(client, auth, alerted, session):
    user = alerted.world.users["supply"]
    auth.login("supply@example.org")
    page = client.get("/alerts/settings").text
    assert "You have not saved a choice yet" in page
    assert re.search(r'<input[^>]* checked [^>]*id="enabled"', page)  # on by default for staff
    assert session.get(DigestSetting, user.id) is None
    response = client.post("/alerts/settings", data={"enabled": "y", "min_severity": "critical"})
    assert response.status_code == 302
    setting = session.get(DigestSetting, user.id)
    assert (setting.enabled, setting.min_severity) == (True, "critical")
    client.post("/alerts/settings", data={"min_severity": "info"})  # unchecked: off
    session.refresh(setting)
    assert (setting.enabled, setting.min_severity) == (False, "info")
    assert re.search(r'<option selected value="info">', client.get("/alerts/settings").text)


def test_viewers_start_with_the_digest_off(client, auth, alerted):
    auth.login("viewer@example.org")
    assert not re.search(r'<input[^>]* checked [^>]*id="enabled"', client.get("/alerts/settings").text)


def test_a_bad_severity_is_refused(client, auth, alerted, session):
    auth.login("supply@example.org")
    response = client.post("/alerts/settings", data={"enabled": "y", "min_severity": "urgent"})
    assert response.status_code == 422
    assert session.get(DigestSetting, alerted.world.users["supply"].id) is None


# --- rule administration ----------------------------------------------------------------------------

ADMIN_PAGES = ["/admin/alert-rules", "/admin/alert-rules/coverage_falling", "/admin/webhooks"]


@pytest.mark.parametrize("who", ["supply", "coordinator", "viewer", "municipal"])
def test_administration_is_for_administrators_only(client, auth, world, who):
    auth.login(f"{who}@example.org")
    for url in ADMIN_PAGES:
        assert client.get(url).status_code == 403
    assert client.post("/admin/alert-rules/coverage_falling",
                       data={"severity": "info", "params": "{}"}).status_code == 403
    assert client.post("/admin/webhooks", data={"organisation": "SC", "url": "http://x.test/"}).status_code == 403


def test_the_rules_page_lists_every_rule_with_its_open_alerts(client, auth, alerted):
    auth.login("admin@example.org")
    response = client.get("/admin/alert-rules")
    assert response.status_code == 200
    for code in ("coverage_below_min", "coverage_falling", "lot_expiring", "count_discrepancy",
                 "critical_drug_below_min"):
        assert f'href="/admin/alert-rules/{code}"' in response.text
    assert 'href="/alerts?rule=expired_on_hand">2</a>' in response.text


def test_an_administrator_edits_a_rule(client, auth, world, session):
    auth.login("admin@example.org")
    page = client.get("/admin/alert-rules/count_discrepancy").text
    assert "threshold_percent" in page and "min_units" in page
    response = client.post("/admin/alert-rules/count_discrepancy", data={
        "enabled": "y", "severity": "critical",
        "params": '{"threshold_percent": 2.5, "min_units": 10, "within_days": 60}'})
    assert response.status_code == 302
    rule = session.get(AlertRule, "count_discrepancy")
    session.refresh(rule)
    assert (rule.enabled, rule.severity, rule.params) == (
        True, "critical", {"threshold_percent": 2.5, "min_units": 10, "within_days": 60})


def test_horizons_are_kept_largest_first(client, auth, world, session):
    auth.login("admin@example.org")
    client.post("/admin/alert-rules/lot_expiring", data={
        "enabled": "y", "severity": "warning", "params": '{"horizons": [30, 365, 90]}'})
    rule = session.get(AlertRule, "lot_expiring")
    session.refresh(rule)
    assert rule.params == {"horizons": [365, 90, 30]}


def test_disabling_a_rule_resolves_its_alerts_at_the_next_evaluation(client, auth, alerted, session):
    auth.login("admin@example.org")
    response = client.post("/admin/alert-rules/coverage_below_min", data={"severity": "critical", "params": "{}"})
    assert response.status_code == 302
    assert not session.get(AlertRule, "coverage_below_min").enabled
    alerts.evaluate(session, [alerted.world.centre], today=TODAY)
    assert alerted.below_min.state == "resolved"


@pytest.mark.parametrize("code,params,message", [
    ("coverage_falling", '{"within_days": -1}', "within_days must be a whole number of days from 1 to 3650."),
    ("coverage_falling", '{"within_days": 2.5}', "within_days must be a whole number of days"),
    ("coverage_falling", '{"within_days": "14"}', "within_days must be a whole number of days"),
    ("coverage_falling", '{"within_days": true}', "within_days must be a whole number of days"),
    ("coverage_falling", '{"within_days": 14,}', "Not valid JSON"),
    ("coverage_falling", "[14]", "Write the parameters as a JSON object"),
    ("coverage_falling", '{"days": 14}', "Unknown parameter &#34;days&#34;: this rule takes within_days."),
    ("coverage_below_min", '{"min_days": 7}', "this rule takes no parameters"),
    ("lot_expiring", '{"horizons": []}', "horizons must be a list of 1 to 10 numbers of days"),
    ("lot_expiring", '{"horizons": [90, 90]}', "horizons lists a number of days twice."),
    ("lot_expiring", '{"horizons": [90, 0]}', "Each of horizons must be a whole number of days"),
    ("count_discrepancy", '{"threshold_percent": 0}', "threshold_percent must be a number above 0"),
    ("count_discrepancy", '{"min_units": 0.5}', "min_units must be a whole number of units"),
])
def test_rule_parameters_are_validated(client, auth, world, session, code, params, message):
    rule = session.get(AlertRule, code)
    before = (rule.enabled, rule.severity, dict(rule.params))
    auth.login("admin@example.org")
    response = client.post(f"/admin/alert-rules/{code}", data={"severity": "info", "params": params})
    assert response.status_code == 422
    assert message in response.text
    assert "Nothing was saved" in response.text
    session.refresh(rule)
    assert (rule.enabled, rule.severity, rule.params) == before


def test_every_error_of_the_parameters_is_reported():
    params, errors = parse_rule_params("count_discrepancy", json.dumps(
        {"threshold_percent": -1, "min_units": 0, "within_days": 30, "colour": "red"}))
    assert params == {"within_days": 30}
    assert len(errors) == 3


def test_an_unknown_rule_is_404(client, auth, world):
    auth.login("admin@example.org")
    assert client.get("/admin/alert-rules/no_such_rule").status_code == 404


# --- webhook administration ----------------------------------------------------------------------------

def new_secret(response) -> str:
    return re.search(r'id="new-secret">([0-9a-f]+)<', response.text).group(1)


def test_a_webhook_is_created_with_a_secret_shown_once(client, auth, world, session):
    auth.login("admin@example.org")
    response = client.post("/admin/webhooks", data={"organisation": "SC", "url": "https://ops.example/hook",
                                                   "active": "y"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    secret = new_secret(response)
    assert len(secret) == 64
    hook = session.scalars(sa.select(Webhook)).one()
    assert (hook.organisation.code, hook.url, hook.secret, hook.active) == ("SC", "https://ops.example/hook",
                                                                          secret, True)
    later = client.get("/admin/webhooks").text
    assert secret not in later and "https://ops.example/hook" in later
    # One per organisation: SC is no longer offered, and a second one is refused.
    assert 'value="SC"' not in later
    again = client.post("/admin/webhooks", data={"organisation": "SC", "url": "https://other.example/"})
    assert again.status_code == 409
    assert "already has a webhook" in again.text
    assert session.scalar(sa.select(sa.func.count(Webhook.id))) == 1


@pytest.mark.parametrize("url", ["ftp://ops.example/hook", "not a url", "", "https://" + "a" * 500 + ".example/"])
def test_a_webhook_needs_an_http_url(client, auth, world, session, url):
    auth.login("admin@example.org")
    response = client.post("/admin/webhooks", data={"organisation": "SC", "url": url, "active": "y"})
    assert response.status_code == 422
    assert session.scalar(sa.select(sa.func.count(Webhook.id))) == 0


def test_a_webhook_is_edited_given_a_new_secret_and_deleted(client, auth, world, session):
    auth.login("admin@example.org")
    first = new_secret(client.post("/admin/webhooks", data={"organisation": "MUN", "url": "http://hooks.internal:8080/a",
                                                           "active": "y"}))
    hook = session.scalars(sa.select(Webhook)).one()
    response = client.post(f"/admin/webhooks/{hook.id}", data={"url": "http://hooks.internal:8080/b"})
    assert response.status_code == 302
    session.refresh(hook)
    assert (hook.url, hook.active) == ("http://hooks.internal:8080/b", False)
    renewed = client.post(f"/admin/webhooks/{hook.id}/secret")
    second = new_secret(renewed)
    session.refresh(hook)
    assert second != first and hook.secret == second
    assert client.post(f"/admin/webhooks/{hook.id}/delete").status_code == 302
    assert session.scalar(sa.select(sa.func.count(Webhook.id))) == 0
    assert client.get(f"/admin/webhooks/{hook.id}").status_code == 404


# --- CSRF ------------------------------------------------------------------------------------------------

class TestCsrf:
    def test_acknowledging_needs_the_token(self, csrf_client, auth, alerted, session):
        auth.login(alerted.world.users["supply"].email)
        url = f"/alerts/{alerted.below_min.id}/acknowledge"
        assert csrf_client.post(url, data={"comment": "forged"}).status_code == 400
        assert csrf_client.post(url, data={"comment": "forged", "csrf_token": "forged"}).status_code == 400
        session.refresh(alerted.below_min)
        assert alerted.below_min.state == "open"
        token = csrf_token(csrf_client.get(f"/alerts/{alerted.below_min.id}").text)
        assert csrf_client.post(url, data={"comment": "real", "csrf_token": token}).status_code == 302
        session.refresh(alerted.below_min)
        assert alerted.below_min.state == "acknowledged"

    def test_rules_and_settings_need_the_token(self, csrf_client, auth, alerted, session):
        auth.login(alerted.world.users["admin"].email)
        data = {"enabled": "y", "severity": "info", "params": "{}"}
        assert csrf_client.post("/admin/alert-rules/no_baseline", data=data).status_code == 400
        assert csrf_client.post("/alerts/settings", data={"enabled": "y", "min_severity": "info"}).status_code == 400
        assert session.get(DigestSetting, alerted.world.users["admin"].id) is None
        token = csrf_token(csrf_client.get("/alerts/settings").text)
        assert csrf_client.post("/alerts/settings", data={"min_severity": "info", "csrf_token": token}).status_code == 302
