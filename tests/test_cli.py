"""The operator commands of API.md, run through Flask's CLI runner."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from stockpile import create_app
from stockpile.auth import services as auth
from stockpile.auth.models import User
from stockpile.inventory.models import Balance
from tests import factories


def test_create_admin_prints_a_working_token_on_its_last_line(runner, session):
    result = runner.invoke(args=["users", "create-admin", "--email", "Chief@Example.org"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    user = auth.user_for_token(session, token)
    assert user is not None and user.email == "chief@example.org" and user.is_admin


def test_create_user_with_role_and_organisation(runner, session):
    factories.org(session, "KOMMUNE-5501", "municipality")
    result = runner.invoke(args=["users", "create", "--email", "kari@tromso.kommune.no", "--password",
                                 "a long enough password", "--role", "municipal_staff",
                                 "--organisation", "KOMMUNE-5501"])
    assert result.exit_code == 0, result.output
    user = session.scalar(sa.select(User).where(User.email == "kari@tromso.kommune.no"))
    assert [(m.organisation.code, m.role) for m in user.memberships] == [("KOMMUNE-5501", "municipal_staff")]
    assert auth.authenticate(session, "kari@tromso.kommune.no", "a long enough password") is user


def test_create_user_refusals_say_what_was_wrong(runner, session):
    factories.org(session, "KOMMUNE-5501", "municipality")
    session.commit()  # a refused command rolls back its own work, not what was there before
    base = ["users", "create", "--email", "x@example.org", "--password", "a long enough password"]
    unknown_org = runner.invoke(args=[*base, "--role", "viewer", "--organisation", "NOPE"])
    assert unknown_org.exit_code == 1 and "NOPE" in unknown_org.output
    bad_role = runner.invoke(args=[*base, "--role", "boss", "--organisation", "KOMMUNE-5501"])
    assert bad_role.exit_code == 1 and "Unknown role" in bad_role.output
    short = runner.invoke(args=["users", "create", "--email", "y@example.org", "--password", "short",
                                "--role", "viewer", "--organisation", "KOMMUNE-5501"])
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_tokens_create(runner, session):
    user = factories.user(session, "viewer", factories.org(session))
    result = runner.invoke(args=["tokens", "create", "--email", user.email])
    assert result.exit_code == 0
    assert auth.user_for_token(session, result.output.strip().splitlines()[-1]) is user
    missing = runner.invoke(args=["tokens", "create", "--email", "nobody@example.org"])
    assert missing.exit_code == 1 and "No user" in missing.output


def test_verify_reports_differences_and_exits_1(runner, session):
    depot = factories.depot(session, factories.org(session))
    item = factories.item(session)
    factories.receive(session, depot, item, "L1", dt.date(2027, 1, 1), 10)
    ok = runner.invoke(args=["verify"])
    assert ok.exit_code == 0 and "agree" in ok.output

    session.execute(sa.update(Balance).values(quantity=11))
    broken = runner.invoke(args=["verify"])
    assert broken.exit_code == 1
    assert f"lot {item.code}/L1 in {depot.code} (operational): balance 11, ledger 10" in broken.output
    session.execute(sa.update(Balance).values(quantity=10))


def test_db_upgrade_creates_the_schema(tmp_path):
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'new.sqlite3'}"})
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        from stockpile.extensions import db

        assert "movements" in sa.inspect(db.engine).get_table_names()
        db.engine.dispose()


def test_production_refuses_to_start_without_a_secret_key(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    try:
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    except RuntimeError as exc:
        assert "SECRET_KEY" in str(exc)
    else:
        raise AssertionError("create_app started without SECRET_KEY")
