"""The national benchmark data set (bench/national.py), built small into a throwaway SQLite file."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.db import make_engine
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Movement

TODAY = dt.date(2026, 11, 23)
SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "national.py"


def _national():
    spec = importlib.util.spec_from_file_location("bench_national", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    url = f"sqlite:///{tmp_path_factory.mktemp('national') / 'national.sqlite3'}"
    result = _national().build(url, years=2, scale=0.01, today=TODAY, seed=7, progress=False)
    engine = make_engine(url)
    yield engine, result
    engine.dispose()


def _scalar(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(sql)).scalar() or 0)


def test_ledger_and_balances_agree(built) -> None:
    engine, result = built
    with so.Session(engine) as session:
        assert inventory.verify(session) == []
    assert _scalar(engine, "SELECT count(*) FROM balances WHERE quantity < 0") == 0
    assert _scalar(engine, "SELECT count(*) FROM movements WHERE recorded_at < occurred_at") == 0
    assert _scalar(engine, "SELECT count(*) FROM movements WHERE occurred_at >= '2026-11-23'") == 0
    assert result["counts"]["movements"] > 10_000


def test_the_fixed_codes_exist(built) -> None:
    engine, _ = built
    codes = {"NO", "SF", "K-0001", "SA-01", "SA-33"}
    codes |= {f"RHF-{n}" for n in range(1, 5)} | {f"FS-{n}" for n in range(1, 5)}
    codes |= {f"HF-{n}-{k}" for n in range(1, 5) for k in range(1, 6)}
    with engine.connect() as connection:
        found = set(connection.scalars(sa.text("SELECT code FROM organisations")))
        depots = set(connection.scalars(sa.text("SELECT code FROM depots")))
        kinds = dict(connection.execute(sa.text("SELECT code, kind FROM organisations")).all())
    assert codes <= found
    assert {"FS-1-D", "HF-4-5-D", "SA-33-D", "K-0001-D"} <= depots
    assert kinds["FS-1"] == "supply_centre" and kinds["SA-01"] == "hospital_pharmacy"
    assert kinds["HF-2-3"] == "health_trust" and kinds["K-0001"] == "municipality"
    assert _scalar(engine, "SELECT count(*) FROM items WHERE code = 'I-00001'") == 1
    assert _scalar(engine, "SELECT count(DISTINCT ppe_group) FROM items") == 5
    assert _scalar(engine, "SELECT count(*) FROM items WHERE category = 'drug' AND atc IS NULL") == 0
    # FS-1 holds every item.
    assert _scalar(engine, "SELECT count(DISTINCT l.item_id) FROM balances b JOIN lots l ON l.id = b.lot_id "
                           "JOIN depots d ON d.id = b.depot_id WHERE d.code = 'FS-1-D'") == \
        _scalar(engine, "SELECT count(*) FROM items")


def test_the_history_has_every_kind_of_posting(built) -> None:
    engine, _ = built
    # Reversals point at an issue and carry the opposite quantity.
    assert _scalar(engine, "SELECT count(*) FROM movements WHERE reversal_of_id IS NOT NULL") > 0
    assert _scalar(engine, "SELECT count(*) FROM movements r JOIN movements o ON o.id = r.reversal_of_id "
                           "WHERE r.quantity <> -o.quantity OR r.kind <> o.kind OR r.id < o.id") == 0
    # Transfers: both legs in one posting, summing to zero.
    assert _scalar(engine, "SELECT count(*) FROM movements WHERE kind = 'transfer'") > 0
    assert _scalar(engine, "SELECT count(*) FROM (SELECT posting_id FROM movements WHERE kind = 'transfer' "
                           "GROUP BY posting_id HAVING count(*) < 2 OR sum(quantity) <> 0) AS t") == 0
    assert _scalar(engine, "SELECT count(*) FROM movements WHERE flag = 'surge' AND kind = 'issue'") > 0
    assert _scalar(engine, "SELECT count(*) FROM movements WHERE flag IS NOT NULL AND kind <> 'issue'") == 0
    assert _scalar(engine, "SELECT count(*) FROM movements WHERE kind = 'adjustment' AND reason IS NULL") == 0
    assert _scalar(engine, "SELECT count(*) FROM movements WHERE kind = 'disposal' "
                           "AND reason NOT IN ('expired', 'damaged', 'recalled', 'other')") == 0
    with so.Session(engine) as session:
        kinds = set(session.scalars(sa.select(Movement.kind).distinct()))
    assert kinds == {"receipt", "issue", "transfer", "adjustment", "disposal"}


def test_lots_quarantined_and_recalled(built) -> None:
    engine, _ = built
    assert _scalar(engine, "SELECT count(*) FROM lots WHERE status = 'quarantined'") > 0
    assert _scalar(engine, "SELECT count(*) FROM lots WHERE status = 'recalled'") > 0
    assert _scalar(engine, "SELECT count(*) FROM lot_events WHERE new_value = 'recalled'") > 0
    # The last status event of each lot is its status.
    assert _scalar(engine, "SELECT count(*) FROM lots l JOIN lot_events e ON e.lot_id = l.id "
                           "WHERE e.id = (SELECT max(id) FROM lot_events WHERE lot_id = l.id) "
                           "AND e.new_value <> l.status") == 0


def test_baselines_of_every_stored_source(built) -> None:
    engine, _ = built
    assert _scalar(engine, "SELECT count(*) FROM baselines WHERE source = 'manual'") > 0
    assert _scalar(engine, "SELECT count(*) FROM baselines WHERE source = 'annual_3y' "
                           "AND years_used IS NOT NULL AND annual_use IS NOT NULL") > 0
    assert _scalar(engine, "SELECT count(*) FROM item_lists WHERE code = 'emergency'") == 4
    assert _scalar(engine, "SELECT count(*) FROM item_lists WHERE code = 'critical-drugs'") == 33
    # The seeded policies of the migrations are still there.
    assert _scalar(engine, "SELECT count(*) FROM policies WHERE name = 'PPE duty'") == 1


def test_refuses_a_database_that_holds_data(built) -> None:
    engine, _ = built
    with pytest.raises(RuntimeError, match="already holds organisations"):
        _national().build(engine.url.render_as_string(hide_password=False), years=1, scale=0.01,
                          today=TODAY, progress=False)
