"""The demo data set, loaded once for this module through ``flask --app stockpile demo``.

Loading takes a while (a year of postings), so one module-scoped transaction holds it and is
rolled back at the end, like the per-test transactions of ``conftest``. The tests here only
read, apart from the refused second ``demo`` run, and use this module's fixtures only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so
import time_machine
from click.testing import Result
from flask import Flask

from stockpile.coverage import arithmetic
from stockpile import create_app, demo
from stockpile.auth import services as auth
from stockpile.auth.models import Membership, Role, User
from stockpile.db import utcnow
from stockpile.extensions import db
from stockpile.inventory import services as inventory
from stockpile.inventory.models import (Balance, Depot, Item, Lot, LotEvent, Movement, Organisation,
                                        PPEGroup)
from tests import factories

# Straight from the issue, so the test does not just repeat the module's own lists.
TRUSTS = {"Akershus universitetssykehus", "Oslo universitetssykehus", "Sykehuset i Vestfold",
          "Sykehuset Innlandet", "Sykehuset Telemark", "Sykehuset Østfold", "Sørlandet sykehus",
          "Vestre Viken", "Diakonhjemmet Sykehus", "Lovisenberg Diakonale sykehus"}
MUNICIPALITIES = {
    "Tromsø", "Harstad", "Kvæfjord", "Tjeldsund", "Ibestad", "Gratangen", "Lavangen", "Bardu",
    "Salangen", "Målselv", "Sørreisa", "Dyrøy", "Senja", "Balsfjord", "Karlsøy", "Lyngen",
    "Storfjord", "Kåfjord", "Skjervøy", "Nordreisa", "Kvænangen", "Alta", "Hammerfest", "Vadsø",
    "Vardø", "Sør-Varanger", "Nordkapp", "Porsanger", "Karasjok", "Kautokeino", "Måsøy", "Loppa",
    "Hasvik", "Lebesby", "Gamvik", "Berlevåg", "Tana", "Nesseby", "Båtsfjord"}


@dataclass
class Loaded:
    app: Flask
    session: so.Session
    result: Result
    today: dt.date


@pytest.fixture(scope="module")
def loaded(engine: sa.Engine, database_url: str) -> Iterator[Loaded]:
    # Loaded once for the module, before the per-test clock starts: on the tests' clock too.
    with time_machine.travel(factories.NOW, tick=True), engine.connect() as connection:
        outer = connection.begin()
        session = so.Session(bind=connection, join_transaction_mode="create_savepoint",
                             expire_on_commit=False)
        app = create_app({"TESTING": True, "DATABASE_URL": database_url, "SECRET_KEY": "test-secret",
                          "WTF_CSRF_ENABLED": False})
        db.fixed_session = session
        try:
            today = inventory.local_today()
            result = app.test_cli_runner().invoke(args=["demo"])
            assert result.exit_code == 0, (result.output, result.exception)
            yield Loaded(app, session, result, today)
        finally:
            db.fixed_session = None
            with app.app_context():
                db.engine.dispose()
            session.close()
            outer.rollback()


@pytest.fixture
def session(loaded: Loaded) -> so.Session:
    return loaded.session


def count(session: so.Session, model: type) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model))


def held(session: so.Session, *conditions: sa.ColumnElement[bool]) -> list[Balance]:
    """Balances above zero matching ``conditions`` (on Balance, Lot, Item, Depot, Organisation)."""
    return list(session.scalars(
        sa.select(Balance).join(Balance.lot).join(Lot.item).join(Balance.depot)
        .join(Depot.organisation).where(Balance.quantity > 0, *conditions)))


def normal_weekly_use(session: so.Session, org: Organisation, item: str, today: dt.date,
                      weeks: int) -> float:
    since = dt.datetime.combine(today - dt.timedelta(weeks=weeks), dt.time(), tzinfo=dt.timezone.utc)
    issued = session.scalar(
        sa.select(sa.func.coalesce(-sa.func.sum(Movement.quantity), 0))
        .join(Movement.depot).join(Movement.lot).join(Lot.item)
        .where(Depot.organisation_id == org.id, Item.code == item, Movement.kind == "issue",
               Movement.flag == "normal", Movement.occurred_at >= since))
    return int(issued) / weeks


def test_the_ledger_agrees_with_the_balances(session):
    assert inventory.verify(session) == []
    assert count(session, Movement) > 2000


def test_every_posting_is_back_dated_within_the_year_before_the_load(loaded, session):
    first, last = session.execute(
        sa.select(sa.func.min(Movement.occurred_at), sa.func.max(Movement.occurred_at))).one()
    assert first.date() >= loaded.today - dt.timedelta(days=366)
    assert first.date() <= loaded.today - dt.timedelta(days=360)
    assert last <= utcnow()
    assert last.date() >= loaded.today - dt.timedelta(days=3)


def test_the_command_prints_every_demo_user_with_a_password_that_signs_in(loaded, session):
    assert "invented quantities" in loaded.result.output
    roles = set()
    for email, password, role, org_code in demo.USERS:
        assert email in loaded.result.output and password in loaded.result.output
        assert len(password) >= 10
        user = auth.authenticate(session, email, password)
        assert user is not None, email
        assert role in user.roles
        if org_code is not None:
            membership = session.scalar(sa.select(Membership).where(Membership.user_id == user.id,
                                                                    Membership.role == role))
            assert membership.organisation.code == org_code
        roles.add(role)
    assert roles == {r.value for r in Role}
    assert count(session, User) == len(Role)


def test_the_municipalities_of_troms_and_finnmark_each_hold_ppe_of_every_group(session):
    governor = inventory.by_code(session, Organisation, "SF-TF")
    assert governor.kind == "region" and governor.name == "Statsforvalteren i Troms og Finnmark"
    municipalities = list(session.scalars(sa.select(Organisation).where(Organisation.kind == "municipality")))
    assert {m.name.removesuffix(" kommune") for m in municipalities} == MUNICIPALITIES
    assert all(m.parent_id == governor.id and m.depots and m.population for m in municipalities)
    assert inventory.by_code(session, Organisation, "KOMMUNE-5501").name == "Tromsø kommune"
    groups = session.execute(
        sa.select(Organisation.code, Item.ppe_group).distinct()
        .select_from(Balance).join(Balance.lot).join(Lot.item).join(Balance.depot).join(Depot.organisation)
        .where(Organisation.kind == "municipality", Balance.quantity > 0)).all()
    by_municipality: dict[str, set[str]] = {}
    for code, group in groups:
        by_municipality.setdefault(code, set()).add(group)
    assert len(by_municipality) == 39
    assert all(found == {g.value for g in PPEGroup} for found in by_municipality.values())


def test_some_municipalities_meet_the_three_month_duty_and_some_do_not(loaded, session):
    meets, short = 0, 0
    for org in session.scalars(sa.select(Organisation).where(Organisation.kind == "municipality")):
        usable = sum(s.usable for s in inventory.usable_by_item(
            session, organisation_ids=[org.id], today=loaded.today) if s.item.code == "GLOVE-NIT-M")
        quarter = normal_weekly_use(session, org, "GLOVE-NIT-M", loaded.today, 52) * 52 / 4
        assert quarter > 0
        assert 0 <= usable / quarter < 2.5
        if usable >= quarter:
            meets += 1
        else:
            short += 1
    assert meets >= 5 and short >= 5


def test_the_health_trusts_and_the_pharmacy_sit_under_the_regional_health_authority(session):
    region = inventory.by_code(session, Organisation, "HSO")
    trusts = list(session.scalars(sa.select(Organisation).where(Organisation.kind == "health_trust")))
    assert {t.name for t in trusts} == TRUSTS
    assert all(t.parent_id == region.id and t.depots for t in trusts)
    for code, kind in (("HSO-FS", "supply_centre"), ("SAP", "hospital_pharmacy")):
        org = inventory.by_code(session, Organisation, code)
        assert (org.kind, org.parent_id, len(org.depots)) == (kind, region.id, 1)
    # Stock was placed at every trust by transfers from the supply centre.
    assert {b.depot.organisation.code for b in held(session, Organisation.kind == "health_trust")} == {
        t.code for t in trusts}


def test_the_catalogue_covers_ppe_icu_consumables_drugs_and_equipment(session):
    items = list(session.scalars(sa.select(Item)))
    assert {i.ppe_group for i in items if i.category == "ppe"} == {g.value for g in PPEGroup}
    assert len([i for i in items if i.category == "consumable"]) >= 5
    atc = {i.atc for i in items if i.category == "drug"}
    assert {"N01AX10", "C01CA03", "N05CD08", "N01AH01", "M03AC09", "B01AB01", "J01DH02"} <= atc
    equipment = [i for i in items if i.category == "equipment"]
    assert equipment and not any(i.has_expiry for i in equipment)
    assert all(i.unit and i.pack_size for i in items)
    for item in items:
        if item.gtin:
            assert inventory.normalise_gtin(item.gtin) == item.gtin


def test_the_supply_centre_holds_weeks_of_normal_use_in_both_pools(loaded, session):
    centre = inventory.by_code(session, Organisation, "HSO-FS")
    usable = {(s.item.code, s.pool): s.usable
              for s in inventory.usable_by_item(session, organisation_ids=[centre.id], today=loaded.today)}
    assert {pool for _item, pool in usable} == {"operational", "emergency"}
    for item, pool in usable:
        weekly = normal_weekly_use(session, centre, item, loaded.today, 13)
        if item in {"INF-PUMP", "TEST-LUNG"}:
            continue  # a handful of units a week: weeks of use say little
        weeks = usable[(item, pool)] / weekly
        if pool == "operational":
            assert 1 <= weeks <= 8, (item, weeks)
        else:
            assert 6 <= weeks <= 30, (item, weeks)


def test_expired_and_soon_expiring_lots_are_on_hand(loaded, session):
    today = loaded.today
    expired = held(session, Lot.expiry < today)
    within_30 = held(session, Lot.expiry >= today, Lot.expiry <= today + dt.timedelta(days=30))
    within_90 = held(session, Lot.expiry > today + dt.timedelta(days=30),
                     Lot.expiry <= today + dt.timedelta(days=90))
    within_180 = held(session, Lot.expiry > today + dt.timedelta(days=90),
                      Lot.expiry <= today + dt.timedelta(days=180))
    assert expired and within_30 and within_90 and within_180
    assert any(b.depot.organisation.code == "HSO-FS" and b.pool == "emergency" for b in expired)
    assert any(b.depot.organisation.kind == "municipality" for b in expired)
    # Most stock is far from expiry.
    far = held(session, Lot.expiry > today + dt.timedelta(days=365))
    assert len(far) > 3 * (len(expired) + len(within_30) + len(within_90) + len(within_180))


def test_the_year_holds_surges_rotations_counts_disposals_a_reversal_and_lot_events(session):
    kinds = dict(session.execute(sa.select(Movement.kind, sa.func.count()).group_by(Movement.kind)).all())
    assert kinds["receipt"] > 500 and kinds["issue"] > 1000
    assert kinds["adjustment"] >= 12 and kinds["disposal"] >= 2
    surge = list(session.scalars(sa.select(Movement).where(Movement.kind == "issue",
                                                             Movement.flag == "surge")))
    assert surge and {m.pool for m in surge} == {"operational", "emergency"}
    assert all(m.recipient_organisation is not None for m in surge)
    transfers = list(session.scalars(sa.select(Movement).where(Movement.kind == "transfer",
                                                                 Movement.quantity > 0)))
    assert any(m.pool == "operational" and "Rotation" in (m.reason or "") for m in transfers)
    assert any(m.depot.organisation.kind == "health_trust" for m in transfers)
    reversals = list(session.scalars(sa.select(Movement).where(Movement.reversal_of_id.is_not(None))))
    assert len(reversals) >= 1
    assert all(r.reversal_of.kind == "issue" and r.quantity == -r.reversal_of.quantity for r in reversals)
    events = {(e.kind, e.new_value) for e in session.scalars(sa.select(LotEvent))}
    assert ("status", "quarantined") in events
    extended = session.scalars(sa.select(Lot).where(Lot.original_expiry.is_not(None))).all()
    assert len(extended) == 1 and extended[0].expiry > extended[0].original_expiry
    assert session.scalar(sa.select(sa.func.count()).select_from(Lot).where(Lot.status == "quarantined")) == 1


def test_a_second_demo_run_is_refused_and_changes_nothing(loaded, session):
    before = [count(session, model) for model in (Organisation, Item, Movement, User)]
    refused = loaded.app.test_cli_runner().invoke(args=["demo"])
    assert refused.exit_code != 0
    assert "already holds organisations" in refused.output
    skipped = loaded.app.test_cli_runner().invoke(args=["demo", "--if-empty"])
    assert skipped.exit_code == 0 and "not loaded" in skipped.output
    assert [count(session, model) for model in (Organisation, Item, Movement, User)] == before


def test_coverage_has_baselines_lists_and_targets_to_measure_by(loaded, session):
    from stockpile.coverage import services as coverage

    region = session.scalar(sa.select(Organisation).where(Organisation.code == "SF-TF"))
    rows = coverage.evaluate(session, coverage.members_of(session, region), today=loaded.today)
    assert len(rows) == 39 * 5 and {r.baseline.source for r in rows} == {"annual_3y"}
    assert any(r.baseline.years_replaced for r in rows), "some municipality had a deviating year"
    summaries = coverage.summarise(rows)
    meeting = sum(s.meets_target for s in summaries)
    assert 0 < meeting < 39

    pharmacy = session.scalar(sa.select(Organisation).where(Organisation.code == "SAP"))
    drugs = coverage.evaluate(session, [pharmacy], today=loaded.today)
    assert len(drugs) == 7 and all(r.baseline.source == "manual" for r in drugs)
    midazolam = next(r for r in drugs if r.item.code == "MIDAZOLAM")
    assert midazolam.min_days == 100 and midazolam.status is arithmetic.Status.BELOW_MIN

    centre = session.scalar(sa.select(Organisation).where(Organisation.code == "HSO-FS"))
    centre_rows = coverage.evaluate(session, [centre], today=loaded.today)
    assert {r.pool for r in centre_rows} == {"operational", "emergency"}
    assert {r.baseline.source for r in centre_rows if r.baseline} == {"computed", "manual"}
    visor = next(r for r in centre_rows if r.item.code == "VISOR" and r.pool == "emergency")
    assert visor.policy.name == "Supply centre emergency stock: visors 24 weeks"
