"""Sign-in, sign-out, lockout, safe redirects and the user administration pages."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from stockpile.auth import services as auth_services
from stockpile.auth.models import ApiToken, Membership, User
from tests import factories


def signed_in(client) -> bool:
    response = client.get("/items")
    return response.status_code == 200


# --- signing in and out -------------------------------------------------------------------

def test_sign_in_lands_on_coverage_and_shows_who(client, auth, world):
    response = auth.login("supply@example.org")
    assert response.status_code == 200
    assert response.request.path == "/coverage"  # supply staff start on their centre's coverage
    assert "supply@example.org" in response.text
    assert "Organisation SC" in response.text  # the user's organisation in the navigation


def test_sign_out_needs_post_and_ends_the_session(client, auth, world):
    auth.login("supply@example.org")
    assert client.get("/logout").status_code == 405  # a link or an image cannot sign anyone out
    assert signed_in(client)
    response = auth.logout()
    assert response.request.path == "/login"
    assert "You are signed out." in response.text
    assert not signed_in(client)


def test_wrong_password_is_refused_with_a_generic_message(client, auth, world):
    response = auth.login("supply@example.org", "not the password")
    assert "The e-mail address or the password is wrong." in response.text
    assert not signed_in(client)
    unknown = auth.login("nobody@example.org", "whatever it is")
    assert "The e-mail address or the password is wrong." in unknown.text


def test_lockout_after_repeated_failures(client, auth, world, app, session):
    assert app.config["LOGIN_MAX_FAILURES"] == 5
    for _ in range(4):
        response = auth.login("municipal@example.org", "wrong password")
        assert "wrong" in response.text and "locked" not in response.text
    response = auth.login("municipal@example.org", "wrong password")
    assert "temporarily locked" in response.text
    # Even the right password is refused while the account is locked.
    response = auth.login("municipal@example.org")
    assert "temporarily locked" in response.text
    assert not signed_in(client)
    user = session.scalar(sa.select(User).where(User.email == "municipal@example.org"))
    assert auth_services.is_locked(user)


def test_anonymous_page_redirects_to_sign_in_and_back(client, world):
    response = client.get("/items/MASK?depot=SC-D")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": ["/items/MASK?depot=SC-D"]}
    response = client.post("/login?next=%2Fitems%2FMASK", data={
        "email": "supply@example.org", "password": factories.PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/items/MASK"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example",
                                    "javascript:alert(1)", "http:/items"])
def test_next_only_follows_local_paths(client, world, target):
    response = client.post("/login", query_string={"next": target}, data={
        "email": "supply@example.org", "password": factories.PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_home_redirects_to_the_roles_start_page(client, auth, world):
    # The viewer belongs to a supply centre: its coverage (the full table by role is in
    # tests/coverage/test_views.py).
    auth.login("viewer@example.org")
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/coverage"


def test_session_cookie_is_httponly_and_samesite(client, world):
    response = client.post("/login", data={"email": "supply@example.org",
                                           "password": factories.PASSWORD, "remember": "y"})
    cookies = response.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("session="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    remember = next(c for c in cookies if c.startswith("remember_token="))
    assert "HttpOnly" in remember


def test_deactivated_user_loses_the_session(client, auth, world, session):
    auth.login("viewer@example.org")
    assert signed_in(client)
    world.users["viewer"].active = False
    session.commit()
    assert not signed_in(client)
    assert "wrong" in auth.login("viewer@example.org").text


# --- user administration ------------------------------------------------------------------

ADMIN_ONLY = [
    ("get", "/admin/users", None),
    ("post", "/admin/users", {"email": "x@example.org", "password": "long enough pw", "role": "admin"}),
    ("post", "/admin/users/{admin}/memberships", {"role": "viewer", "organisation": "SC"}),
    ("post", "/admin/users/{admin}/active", {"active": "0"}),
    ("post", "/admin/users/{admin}/tokens", {}),
]


@pytest.mark.parametrize("who", ["coordinator", "supply", "municipal", "pharmacist", "viewer", "outsider"])
def test_user_administration_is_for_admins_only(client, auth, world, session, who):
    auth.login(f"{who}@example.org")
    users_before = session.scalar(sa.select(sa.func.count(User.id)))
    tokens_before = session.scalar(sa.select(sa.func.count(ApiToken.id)))
    for method, url, data in ADMIN_ONLY:
        response = getattr(client, method)(url.format(admin=world.users["admin"].id), data=data)
        assert response.status_code == 403, (method, url)
        assert "Only administrators" in response.text
    assert session.scalar(sa.select(sa.func.count(User.id))) == users_before
    assert session.scalar(sa.select(sa.func.count(ApiToken.id))) == tokens_before
    assert session.scalar(sa.select(User.active).where(User.id == world.users["admin"].id)) is True
    assert "Users" not in client.get("/items").text.split("<main", 1)[0]  # not offered either


def test_admin_lists_users_with_memberships(client, auth, world):
    auth.login("admin@example.org")
    response = client.get("/admin/users")
    assert response.status_code == 200
    assert "municipal@example.org" in response.text
    assert "Municipal staff · Organisation MUN" in response.text


def test_admin_creates_a_user_who_can_sign_in(client, auth, world, session):
    auth.login("admin@example.org")
    response = client.post("/admin/users", data={
        "email": "New.Person@Example.org", "name": "New Person", "password": "a long password",
        "role": "supply_staff", "organisation": "SC"}, follow_redirects=True)
    assert response.status_code == 200
    assert "User new.person@example.org created as Supply staff." in response.text
    user = session.scalar(sa.select(User).where(User.email == "new.person@example.org"))
    assert [(m.role, m.organisation.code) for m in user.memberships] == [("supply_staff", "SC")]
    client.post("/logout")
    assert "New Person" in auth.login("new.person@example.org", "a long password").text


def test_refused_user_creation_shows_the_reason(client, auth, world, session):
    auth.login("admin@example.org")
    before = session.scalar(sa.select(sa.func.count(User.id)))
    response = client.post("/admin/users", data={
        "email": "supply@example.org", "password": "a long password", "role": "viewer",
        "organisation": "SC"})
    assert response.status_code == 422
    assert "already exists" in response.text
    response = client.post("/admin/users", data={
        "email": "fresh@example.org", "password": "a long password", "role": "viewer",
        "organisation": ""})
    assert response.status_code == 422
    assert "The role viewer needs an organisation." in response.text
    assert session.scalar(sa.select(sa.func.count(User.id))) == before


def test_admin_adds_a_membership(client, auth, world, session):
    auth.login("admin@example.org")
    viewer = world.users["viewer"]
    response = client.post(f"/admin/users/{viewer.id}/memberships",
                           data={"role": "municipal_staff", "organisation": "MUN"}, follow_redirects=True)
    assert "is now Municipal staff at Organisation MUN" in response.text
    roles = set(session.execute(sa.select(Membership.role, Membership.organisation_id)
                                .where(Membership.user_id == viewer.id)))
    assert ("municipal_staff", world.municipality.id) in roles


def test_admin_deactivates_and_reactivates(client, auth, world, session):
    auth.login("admin@example.org")
    viewer = world.users["viewer"]
    response = client.post(f"/admin/users/{viewer.id}/active", data={"active": "0"}, follow_redirects=True)
    assert "is deactivated" in response.text
    assert session.scalar(sa.select(User.active).where(User.id == viewer.id)) is False
    assert auth_services.user_for_token(session, world.tokens["viewer"]) is None
    client.post(f"/admin/users/{viewer.id}/active", data={"active": "1"})
    assert session.scalar(sa.select(User.active).where(User.id == viewer.id)) is True
    # An administrator cannot lock themselves out.
    response = client.post(f"/admin/users/{world.users['admin'].id}/active", data={"active": "0"})
    assert response.status_code == 403
    assert world.users["admin"].active


def test_admin_creates_a_token_shown_once(client, auth, world, session):
    auth.login("admin@example.org")
    supply = world.users["supply"]
    response = client.post(f"/admin/users/{supply.id}/tokens", data={"name": "scanner"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    token = re.search(r'<code class="token" id="new-token">([^<]+)</code>', response.text).group(1)
    assert auth_services.user_for_token(session, token) == supply
    assert token not in client.get("/admin/users").text


def test_unknown_pages_get_the_styled_error_page(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Not found" in page and "Sign in" in page
