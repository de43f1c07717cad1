#!/usr/bin/env python3
"""The national data set: a country's stockpile over several years, bulk-loaded in minutes.

    .venv/bin/python bench/national.py --url sqlite:////tmp/national_3y.sqlite3
    .venv/bin/python bench/national.py --url postgresql://postgres@127.0.0.1:5432/national_3y
    .venv/bin/python bench/national.py --url postgresql://postgres@127.0.0.1:5432/national_6y --years 6
    .venv/bin/python bench/national.py --url sqlite:////tmp/small.sqlite3 --scale 0.02   # seconds

Options: ``--years N`` of history (default 3) ending the day before ``--today`` (default today in
Europe/Oslo); ``--scale F`` (default 1.0) shrinks items, municipalities and so every pair, lot and
movement, keeping the shape and the codes; ``--seed`` (default 7) makes it reproducible (the same
arguments give the same data); ``--skip-jobs`` leaves out the rotation sync and the alerts scan.

The database must be empty: the script runs the Alembic migrations itself and refuses one that
already holds organisations. The seeded policies, scenario and alert rules of the migrations are
kept. On PostgreSQL the rows go in with ``COPY``, on SQLite with ``executemany``
(``PRAGMA synchronous=OFF``), from a writer thread while the history is generated, all in one
transaction. The ledger tables' plain indexes (and on PostgreSQL their foreign keys) are dropped
for the load and re-created after it with the same names and definitions, so every row is still
checked; lots are written ahead of the movements that name them.

The shape (codes are relied on by the benchmarks — keep them):

- ``NO`` (region, "Norge"), the root;
- ``RHF-1``..``RHF-4`` (region): the regional health authorities, each with a supply centre
  ``FS-<n>`` (depot ``FS-<n>-D``), five health trusts ``HF-<n>-<k>`` (depot ``HF-<n>-<k>-D``) and
  hospital pharmacies ``SA-01``..``SA-33`` (depot ``SA-<nn>-D``; 11, 9, 7 and 6 per authority);
- ``SF`` (region, "Statsforvalteren") with municipalities ``K-0001``..``K-0357`` (depot
  ``K-<nnnn>-D``, with a population; ``K-0001`` is the largest). Fewer at a smaller ``--scale``;
- items ``I-00001``..``I-03000`` (fewer at a smaller scale): consumables, PPE over all five PPE
  groups, drugs with ATC codes, equipment (two thirds of it without shelf life).

Who holds what: ``FS-1`` holds every item in the operational pool and its emergency list
(``emergency``: all PPE and some others) in the emergency pool; ``FS-2``..``FS-4`` hold two thirds
to a half of the items, with emergency lists of their own. Health trusts hold a few hundred items,
replenished by transfers from their supply centre, and issue them to wards; pharmacies hold a
few hundred drugs with a ``critical-drugs`` list each (minimum days, criticality, some
alternatives); municipalities hold tens of PPE items.

The history, posted exactly as the posting path would have posted it (movements with their
posting ids, both legs of a transfer in one posting, FEFO issues split over lots, balances equal
to the sum of the movements and never negative at any moment): receipts (new lots, 1–5 years of
shelf life), FEFO issues (``normal``; ``surge`` in a few weeks of respiratory waves each winter,
partly from the emergency pool), transfers from supply centres to their trusts' depots and
between pools (rotation of emergency lots into daily use), stock counts (adjustments, some more
than 5 % off), disposals (``expired``, ``recalled``, ``damaged``), reversals of a few mistaken
issues, a few FEFO overrides with a reason, quarantined lots (most released again) and recalled
lots with their ``lot_events``. Some expired stock is left on the shelf; some lots expire soon.

Baselines: § 8a ``annual_3y`` baselines for most municipality PPE pairs (stored as
``set_annual_baseline`` stores them), ``manual`` ones for the pharmacies' critical drugs and for
equipment at the supply centres, and the ``computed`` source (no stored row) for the rest. Users
(password ``bench-password``): ``admin@national.test``; ``supply.fs1@national.test`` ..
``supply.fs4@national.test`` (supply staff at FS-1..FS-4), ``municipal.k0001@national.test``,
``coordinator@national.test`` (SF) and ``pharmacist.sa01@national.test``. Last, rotation tasks
and alerts as the scheduler would leave them (``rotation.sync_tasks`` and ``alerts.full_scan``).

At ``--scale 1 --years 3`` that is about 420 organisations, 3,000 items, 490,000 lots and
5 million movements; ``--years 6`` doubles the history. Times are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import gc
import math
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Imported up front (not when the jobs run) so that one build runs one version of the code.
from stockpile.alerts import services as alerts  # noqa: E402
from stockpile.auth import services as auth  # noqa: E402
from stockpile.db import begin_write, make_engine, upgrade  # noqa: E402
from stockpile.coverage import arithmetic
from stockpile.coverage import services as coverage  # noqa: E402
from stockpile.inventory import services as inventory  # noqa: E402
from stockpile.rotation import services as rotation  # noqa: E402
from stockpile.coverage.models import Baseline, BaselineSource
from stockpile.inventory.models import (Category, Depot, DisposalReason, IssueFlag, Item,
                                        LotEventKind, LotStatus, MovementKind, Organisation,
                                        OrganisationKind, PPEGroup, Pool)

OSLO = ZoneInfo(inventory.DEFAULT_TIMEZONE)
PASSWORD = "bench-password"
OP, EM = Pool.OPERATIONAL.value, Pool.EMERGENCY.value
RECEIPT, ISSUE, TRANSFER = MovementKind.RECEIPT.value, MovementKind.ISSUE.value, MovementKind.TRANSFER.value
ADJUSTMENT, DISPOSAL = MovementKind.ADJUSTMENT.value, MovementKind.DISPOSAL.value
NORMAL, SURGE = IssueFlag.NORMAL.value, IssueFlag.SURGE.value
AVAILABLE, QUARANTINED, RECALLED = 0, 1, 2
STATUS_TEXT = {AVAILABLE: LotStatus.AVAILABLE.value, QUARANTINED: LotStatus.QUARANTINED.value,
               RECALLED: LotStatus.RECALLED.value}
VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # RFC 4122 variant bits
NO_EXPIRY = 10**7  # an ordinal after every real date: lots without expiry go last in FEFO order

# (number, name, share of the hospitals' demand, pharmacies)
REGIONS = [(1, "Helse Sør-Øst RHF", 0.56, 11), (2, "Helse Vest RHF", 0.20, 9),
           (3, "Helse Midt-Norge RHF", 0.14, 7), (4, "Helse Nord RHF", 0.10, 6)]
TRUSTS_PER_REGION = 5
MUNICIPALITIES = 357
ITEMS = 3000
# Share of the items each supply centre holds (FS-1 holds them all).
CENTRE_ASSORTMENT = {1: 1.0, 2: 0.67, 3: 0.57, 4: 0.5}
EMERGENCY_LIST = "emergency"
CRITICAL_DRUGS = "critical-drugs"

# (email, role, organisation code)
USERS: list[tuple[str, str, str | None]] = [
    ("admin@national.test", "admin", None),
    ("supply.fs1@national.test", "supply_staff", "FS-1"),
    ("supply.fs2@national.test", "supply_staff", "FS-2"),
    ("supply.fs3@national.test", "supply_staff", "FS-3"),
    ("supply.fs4@national.test", "supply_staff", "FS-4"),
    ("municipal.k0001@national.test", "municipal_staff", "K-0001"),
    ("coordinator@national.test", "coordinator", "SF"),
    ("pharmacist.sa01@national.test", "pharmacist", "SA-01"),
]

CONSUMABLES = ["Peripheral IV cannula", "Infusion set", "Syringe, Luer lock", "Hypodermic needle",
               "Closed suction catheter", "Endotracheal tube, cuffed", "Urinary catheter", "Foam dressing",
               "Gauze swab", "Absorbable suture", "HME filter", "Oxygen mask", "Nasal oxygen cannula",
               "Blood collection tube", "Three-way stopcock", "Extension line", "Alcohol swab",
               "Surgical drape", "ECG electrode", "Tracheostomy tube", "Arterial line set",
               "Central venous catheter", "Feeding tube", "Wound drain", "Sterile gloves liner"]
SIZES = ["size XS", "size S", "size M", "size L", "size XL", "paediatric", "adult", "10 ml", "20 ml",
         "50 ml", "14 Fr", "16 Fr", "18G", "20G", "22G", "7.0 mm", "7.5 mm", "8.0 mm", "sterile", "non-sterile"]
PPE_NAMES = {
    PPEGroup.GLOVES: ["Examination gloves, nitrile", "Examination gloves, vinyl", "Surgical gloves, latex-free",
                      "Chemotherapy gloves, nitrile"],
    PPEGroup.FACE_MASKS: ["Surgical face mask, type II", "Surgical face mask, type IIR", "Procedure mask, ear loops"],
    PPEGroup.RESPIRATORS: ["Respirator FFP2, without valve", "Respirator FFP3, without valve",
                           "Respirator FFP3, with valve", "Respirator FFP2, duckbill"],
    PPEGroup.GOWNS: ["Isolation gown, fluid-resistant", "Coverall, type 4/5/6", "Surgical gown, reinforced",
                     "Plastic apron"],
    PPEGroup.EYE_PROTECTION: ["Face shield, full face", "Protective goggles, indirect vent", "Safety spectacles"],
}
# Use per inhabitant and year of a municipality, per PPE group (invented).
PER_INHABITANT = {PPEGroup.GLOVES: 18.0, PPEGroup.FACE_MASKS: 3.0, PPEGroup.RESPIRATORS: 0.4,
                  PPEGroup.GOWNS: 1.2, PPEGroup.EYE_PROTECTION: 0.15}
PPE_SHARE = {PPEGroup.GLOVES: 0.30, PPEGroup.FACE_MASKS: 0.20, PPEGroup.RESPIRATORS: 0.17,
             PPEGroup.GOWNS: 0.20, PPEGroup.EYE_PROTECTION: 0.13}
DRUGS = [("Propofol", "N01AX10"), ("Noradrenaline", "C01CA03"), ("Midazolam", "N05CD08"),
         ("Fentanyl", "N01AH01"), ("Rocuronium", "M03AC09"), ("Heparin", "B01AB01"),
         ("Meropenem", "J01DH02"), ("Piperacillin/tazobactam", "J01CR05"), ("Cefotaxime", "J01DD01"),
         ("Benzylpenicillin", "J01CE01"), ("Gentamicin", "J01GB03"), ("Vancomycin", "J01XA01"),
         ("Paracetamol", "N02BE01"), ("Morphine", "N02AA01"), ("Oxycodone", "N02AA05"),
         ("Ketamine", "N01AX03"), ("Dexmedetomidine", "N05CM18"), ("Suxamethonium", "M03AB01"),
         ("Adrenaline", "C01CA24"), ("Amiodarone", "C01BD01"), ("Furosemide", "C03CA01"),
         ("Insulin aspart", "A10AB05"), ("Enoxaparin", "B01AB05"), ("Tranexamic acid", "B02AA02"),
         ("Ondansetron", "A04AA01"), ("Pantoprazole", "A02BC02"), ("Dexamethasone", "H02AB02"),
         ("Hydrocortisone", "H02AB09"), ("Salbutamol", "R03AC02"), ("Ipratropium", "R03BB01"),
         ("Metoprolol", "C07AB02"), ("Nitroglycerin", "C01DA02"), ("Atropine", "A03BA01"),
         ("Naloxone", "V03AB15"), ("Sodium chloride 0.9 %", "B05XA03"), ("Glucose 50 mg/ml", "B05BA03"),
         ("Ringer-acetat", "B05BB01"), ("Albumin", "B05AA01"), ("Levetiracetam", "N03AX14"),
         ("Diazepam", "N05BA01")]
FORMS = ["1 mg/ml, 10 ml vial", "5 mg/ml, 2 ml ampoule", "10 mg/ml, 50 ml vial", "500 mg tablet",
         "1 g powder for injection", "2 g powder for injection", "20 mg/ml oral solution", "infusion bag, 1000 ml",
         "100 mg capsule", "inhalation solution"]
EQUIPMENT = ["Syringe infusion pump", "Volumetric infusion pump", "Patient monitor", "Pulse oximeter",
             "Suction unit, portable", "Ventilator circuit, adult", "Resuscitation bag, adult",
             "Laryngoscope handle", "Stretcher", "Field bed", "Oxygen concentrator", "Defibrillator pads"]
WARDS = ["Intensivavdelingen", "Akuttmottaket", "Operasjonsavdelingen", "Medisinsk avdeling",
         "Kirurgisk avdeling", "Barneavdelingen", "Infeksjonsavdelingen", "Poliklinikken"]
OVERRIDE_REASONS = ["The first lot to expire is packed in another ward's kit.",
                    "The recipient needs at least 12 months of shelf life.",
                    "The first-expiring lot is held for a count."]
MUNICIPAL_RECIPIENTS = ["Hjemmetjenesten", "Sykehjemmet", "Legevakten", "Helsestasjonen", "Bofellesskapet"]


class Holding:
    """One balance row in the making: a lot in one depot and pool, and its quantity."""

    __slots__ = ("key", "exp", "lot", "pair", "qty", "bid", "live")

    def __init__(self, key: tuple[int, int, int], pair: Pair, bid: int) -> None:
        self.key = key          # FEFO order: (expiry ordinal, received at, lot id)
        self.exp = key[0]
        self.lot = key[2]
        self.pair = pair
        self.qty = 0
        self.bid = bid          # the balance row's id
        self.live = False       # in pair.hold (quantity above zero)


def _fefo_key(holding: Holding) -> tuple[int, int, int]:
    return holding.key


class Pair:
    """One item in one depot and pool: its lots on hand in FEFO order and how it moves."""

    __slots__ = ("depot", "pool", "item", "hold", "rate", "draw", "gap", "rop", "cover", "source", "sensitive",
                 "twin", "recipients", "flag_neglect", "target", "municipal", "use_by_year")

    def __init__(self, depot: Depot_, pool: str, item: Item_, rate: float) -> None:
        self.depot = depot
        self.pool = pool
        self.item = item
        self.hold: list[Holding] = []
        self.rate = rate            # normal use, units per day
        self.draw = 0.0             # what the trusts' stores draw from it besides, units per day
        self.gap = 7.0              # days between issues, on average
        self.rop = 0.0              # reorder point, days of use
        self.cover = 0.0            # order up to, days of use
        self.source: Pair | None = None   # where a trust's store is replenished from
        self.sensitive = False      # demand rises in a surge
        self.twin: Pair | None = None  # the same item and depot in the other pool
        self.recipients: Sequence[tuple[str, int | None]] = ()
        self.flag_neglect = False   # an emergency pair nobody rotates
        self.target = 0.0           # emergency stock held, units
        self.municipal = depot.kind == OrganisationKind.MUNICIPALITY
        self.use_by_year: dict[int, int] = {}


class Depot_:
    __slots__ = ("id", "code", "org", "org_code", "kind", "user", "pairs", "weekday", "population", "region")

    def __init__(self, id: int, code: str, org: int, org_code: str, kind: str, user: int | None) -> None:
        self.id, self.code, self.org, self.org_code, self.kind, self.user = id, code, org, org_code, kind, user
        self.pairs: list[Pair] = []
        self.weekday = 0
        self.population = 0
        self.region = 0


class Item_:
    __slots__ = ("id", "code", "category", "group", "shelf", "pack", "weekly", "has_expiry", "lot_seq")

    def __init__(self, id: int, code: str, category: str, group: str | None, shelf: int, pack: int,
                 weekly: float) -> None:
        self.id, self.code, self.category, self.group = id, code, category, group
        self.shelf, self.pack, self.weekly = shelf, pack, weekly
        self.has_expiry = shelf > 0
        self.lot_seq = 0


# --- the shape ------------------------------------------------------------------------------

def _counts(scale: float) -> tuple[int, int]:
    """(items, municipalities) at ``scale``: enough items for every category and PPE group."""
    return max(60, round(ITEMS * scale)), max(4, min(MUNICIPALITIES, round(MUNICIPALITIES * scale)))


def _catalogue(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Item rows (without ids): a realistic mix of categories, PPE groups, shelf lives and use."""
    n_ppe = max(10, round(n * 0.10))
    n_drug = round(n * 0.33)
    n_equipment = max(3, round(n * 0.07))
    categories = ([Category.PPE.value] * n_ppe + [Category.DRUG.value] * n_drug
                  + [Category.EQUIPMENT.value] * n_equipment)
    categories += [Category.CONSUMABLE.value] * (n - len(categories))
    rng.shuffle(categories)
    groups = list(PPEGroup)
    group_cycle = [g for g in groups for _ in range(round(PPE_SHARE[g] * 100))]
    rows = []
    ppe_seen = 0
    for index, category in enumerate(categories, start=1):
        group = atc = None
        if category == Category.PPE:
            # Every group at least once, then by share.
            group = groups[ppe_seen] if ppe_seen < len(groups) else rng.choice(group_cycle)
            ppe_seen += 1
            base = rng.choice(PPE_NAMES[group])
            name, unit = f"{base}, {rng.choice(SIZES[:5])}", "piece"
            pack = rng.choice([10, 20, 50, 100, 200])
            shelf = rng.randint(3, 5) * 365
            weekly = rng.lognormvariate(math.log(1500), 1.2)
        elif category == Category.DRUG:
            substance, atc = rng.choice(DRUGS)
            name, unit = f"{substance} {rng.choice(FORMS)}", rng.choice(["vial", "ampoule", "tablet", "bag"])
            pack = rng.choice([1, 5, 10, 20, 100])
            shelf = rng.randint(12, 36) * 30
            weekly = rng.lognormvariate(math.log(150), 1.3)
        elif category == Category.EQUIPMENT:
            name, unit, pack = rng.choice(EQUIPMENT), "piece", 1
            shelf = 0 if rng.random() < 2 / 3 else rng.randint(2, 5) * 365
            weekly = rng.lognormvariate(math.log(3), 1.0)
        else:
            name, unit = f"{rng.choice(CONSUMABLES)}, {rng.choice(SIZES)}", "piece"
            pack = rng.choice([1, 10, 20, 25, 50, 100])
            shelf = rng.randint(3, 5) * 365
            weekly = rng.lognormvariate(math.log(300), 1.3)
        rows.append({"code": f"I-{index:05d}", "name": name, "category": category, "unit": unit,
                     "pack_size": pack, "atc": atc, "ppe_group": group and group.value,
                     "has_expiry": shelf > 0, "shelf": shelf, "weekly": weekly})
    return rows


def _populations(rng: random.Random, n: int) -> list[int]:
    """Municipal populations, largest first (K-0001 is the capital)."""
    rest = sorted((max(200, min(300_000, round(rng.lognormvariate(math.log(5200), 1.1))))
                   for _ in range(n - 1)), reverse=True)
    return [717_000] + rest


# --- writing rows -------------------------------------------------------------------------------

MOVEMENT_COLUMNS = ("id", "posting_id", "kind", "lot_id", "depot_id", "pool", "quantity", "occurred_at",
                    "recorded_at", "recorded_by_id", "reference", "reason", "flag", "recipient",
                    "recipient_organisation_id", "fefo_override", "reversal_of_id")
LOT_COLUMNS = ("id", "item_id", "lot_number", "expiry", "original_expiry", "status", "received_at")
BALANCE_COLUMNS = ("id", "lot_id", "depot_id", "pool", "quantity")
LEDGER_TABLES = ("lots", "movements", "balances", "lot_events")
LOT_EVENT_COLUMNS = ("id", "lot_id", "kind", "old_value", "new_value", "reason", "recorded_by_id", "recorded_at")


class Writer:
    """Rows into tables on the session's own connection (same transaction): ``COPY`` on
    PostgreSQL, ``executemany`` on SQLite. Values are already in the database's text forms.

    Batches are written by a thread of their own, so the database works on one batch while the
    next is generated (both drivers let go of the GIL while the database works); ``drain`` waits
    for the writes so far and raises the first error one of them met.
    """

    def __init__(self, session: so.Session) -> None:
        self.dbapi = session.connection().connection.dbapi_connection
        self.postgres = session.get_bind().dialect.name == "postgresql"
        self.rows = 0
        self.foreign_keys: list[tuple[str, str, str]] = []
        self.indexes: list[tuple[str, str]] = []
        self.queue: queue.Queue[tuple[str, Sequence[str], Sequence[Sequence[Any]]] | None] = queue.Queue(maxsize=3)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="national-writer", daemon=True)
        self.thread.start()

    def set_aside(self, tables: Sequence[str]) -> None:
        """Drop the plain indexes of ``tables`` (and on PostgreSQL their foreign keys) for the
        load and remember them; ``restore`` puts them back with the same names and definitions,
        checking every row. (The PostgreSQL manual's advice for populating a database: building
        an index or checking a foreign key for the whole table at once is far cheaper than row
        by row.) SQLite cannot drop a foreign key; it checks them row by row, cheaply."""
        cursor = self.dbapi.cursor()
        if not self.postgres:
            marks = ", ".join("?" * len(tables))
            cursor.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                           f"AND tbl_name IN ({marks}) ORDER BY name", list(tables))
            self.indexes = cursor.fetchall()
            for name, _definition in self.indexes:
                cursor.execute(f'DROP INDEX "{name}"')
            cursor.close()
            return
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s) ORDER BY conrelid::regclass::text, conname",
            (list(tables),))
        self.foreign_keys = cursor.fetchall()
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid::regclass::text = ANY(%s) AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) ORDER BY 1", (list(tables),))
        self.indexes = cursor.fetchall()
        for table, name, _definition in self.foreign_keys:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _definition in self.indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.close()

    def restore(self) -> None:
        cursor = self.dbapi.cursor()
        if self.postgres:
            cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
        for _name, definition in self.indexes:
            cursor.execute(definition)
        for table, name, definition in self.foreign_keys:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        cursor.close()

    def write(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.error is not None:
            raise RuntimeError("writing to the database failed") from self.error
        if rows:
            self.queue.put((table, columns, rows))

    def drain(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise RuntimeError("writing to the database failed") from self.error
        self.thread = threading.Thread(target=self._work, name="national-writer", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise RuntimeError("writing to the database failed") from self.error

    def _work(self) -> None:
        while (job := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self._write(*job)
                except BaseException as error:  # noqa: BLE001 - handed to the main thread
                    self.error = error

    def _write(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cursor = self.dbapi.cursor()
        try:
            if self.postgres:
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(columns))
                cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        finally:
            cursor.close()
        self.rows += len(rows)


def _formats(postgres: bool) -> tuple[Callable[[int], str], Callable[[int | None], str | None], Any, Any]:
    """(timestamp from POSIX seconds, date from an ordinal, false, true) as the database stores them.

    SQLAlchemy keeps SQLite timestamps as naive UTC text with microseconds, dates as ISO text and
    booleans as 0/1; on PostgreSQL the text forms of timestamptz, date and boolean go into COPY.
    """
    epoch = dt.date(1970, 1, 1).toordinal()
    suffix = "+00" if postgres else ".000000"
    dates: dict[int, str] = {}
    two = [f"{i:02d}" for i in range(60)]

    def timestamp(t: int) -> str:
        day, sec = divmod(t, 86400)
        text = dates.get(day)
        if text is None:
            text = dates[day] = dt.date.fromordinal(epoch + day).isoformat()
        hours, rest = divmod(sec, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{text} {two[hours]}:{two[minutes]}:{two[seconds]}{suffix}"

    def date(ordinal: int | None) -> str | None:
        if ordinal is None or ordinal >= NO_EXPIRY:
            return None
        return dt.date.fromordinal(ordinal).isoformat()

    return timestamp, date, (False if postgres else 0), (True if postgres else 1)


# --- the simulation -----------------------------------------------------------------------------

class Ledger:
    """Posts the history day by day, like the posting path, and streams the rows out.

    Events (an issue, a delivery check, a count …) are kept in one bucket per day and run in
    time order; each posting checks stock exactly as the services do (FEFO over available lots
    not past expiry, never below zero) and writes its movements with one posting id.
    """

    FLUSH_ROWS = 50_000

    def __init__(self, writer: Writer, rng: random.Random, start: dt.date, days: int, progress: bool) -> None:
        self.w = writer
        self.rng = rng
        self.start = start
        self.start_ord = start.toordinal()
        self.days = days
        self.progress = progress
        self.ts, self.date, self.false, self.true = _formats(writer.postgres)
        # POSIX seconds of each day's local midnight (Europe/Oslo), so local times become UTC.
        self.midnight = [int(dt.datetime.combine(start + dt.timedelta(days=d), dt.time(), OSLO).timestamp())
                         for d in range(days + 2)]
        self.end_t = self.midnight[days] - 1  # the last second of the history (local)
        self.buckets: list[list[tuple] | None] = [[] for _ in range(days)]
        self.weekdays = [(self.start_ord + d - 1) % 7 for d in range(days + 8)]  # 0 = Monday
        self.year_of_day = [(start + dt.timedelta(days=d)).year for d in range(days + 1)]
        self.day_text = [f"{start + dt.timedelta(days=d):%y%m%d}" for d in range(days + 1)]
        self.random = rng.random
        self.seq = 0
        self.next_movement = 1
        self.next_balance = 1
        self.next_lot_event = 1
        self.lot_key: list[tuple[int, int, int] | None] = [None]   # by lot id
        self.lot_status: list[int] = [AVAILABLE]
        self.lot_rows: list[list[Any]] = [[]]                     # by lot id; written in batches
        self.lots_written = 1
        self.lot_holdings: list[list[Holding]] = [[]]
        self.balances: dict[tuple[int, int, str], Holding] = {}
        self.pending: list[tuple] = []
        self.lot_events: list[tuple] = []
        self.surge = bytearray(days)
        self.stats = {"reversals": 0, "overrides": 0, "surge": 0, "quarantined": 0,
                      "recalled": 0, "released": 0}
        self.ref = 0
        self.hex = ""
        self.hex_left = 0

    # --- infrastructure --------------------------------------------------------------------

    def at(self, day: int, sec: int, fn: Callable[..., None], *args: Any) -> None:
        if 0 <= day < self.days:
            self.seq += 1
            self.buckets[day].append((sec, self.seq, fn, args))  # type: ignore[union-attr]

    def working(self, day: int) -> int:
        """``day`` or the next working day (Monday to Friday)."""
        if day >= self.days:
            return day
        weekday = self.weekdays[day]
        return day + (7 - weekday if weekday >= 5 else 0)

    def clock(self) -> int:
        """A moment of the working day, seconds after local midnight."""
        return 27000 + int(self.random() * 28800)

    def uuid(self) -> str:
        """A random (version 4) UUID from the seeded generator, so the data set is reproducible."""
        if not self.hex_left:
            self.hex = self.rng.randbytes(16 * 4096).hex()
            self.hex_left = 4096
        self.hex_left -= 1
        h = self.hex[self.hex_left * 32:self.hex_left * 32 + 32]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{VARIANT[h[16]]}{h[17:20]}-{h[20:]}"

    def reference(self, prefix: str, day: int) -> str:
        self.ref += 1
        return f"{prefix}-{self.day_text[day]}-{self.ref:07d}"

    def run(self) -> None:
        from tqdm import tqdm

        bar = tqdm(total=self.days, unit="day", disable=not self.progress, desc="ledger",
                   mininterval=1.0, dynamic_ncols=True)
        for day in range(self.days):
            events = self.buckets[day]
            self.buckets[day] = None
            assert events is not None
            events.sort()  # by time of day, then order of scheduling (unique: never compares further)
            for sec, _seq, fn, args in events:
                fn(day, sec, *args)
            if len(self.pending) >= self.FLUSH_ROWS:
                self.flush()
            bar.update(1)
            if day % 30 == 0:
                bar.set_postfix(movements=f"{self.next_movement - 1:,}", lots=f"{len(self.lot_key) - 1:,}",
                                refresh=False)
        bar.close()
        self.flush()

    def flush(self) -> None:
        """Lots before the movements that name them, then the movements."""
        end = len(self.lot_rows)
        self.w.write("lots", LOT_COLUMNS, [self.lot_row(i) for i in range(self.lots_written, end)])
        self.lots_written = end
        self.w.write("movements", MOVEMENT_COLUMNS, self.pending)
        self.pending = []

    def lot_row(self, lot_id: int) -> tuple:
        item_id, number, expiry, received = self.lot_rows[lot_id]
        # The status as it ends up: lots are written as they are created, their status changes
        # later, so the rows of changed lots are written once the history is done.
        return (lot_id, item_id, number, self.date(expiry), None, STATUS_TEXT[AVAILABLE], self.ts(received))

    def finish(self) -> tuple[int, int]:
        """Correct the status of the lots that changed it, write balances and lot events."""
        self.w.drain()
        changed = [i for i, status in enumerate(self.lot_status) if i and status != AVAILABLE]
        update = "UPDATE lots SET status = %s WHERE id = %s" if self.w.postgres else \
            "UPDATE lots SET status = ? WHERE id = ?"
        cursor = self.w.dbapi.cursor()
        cursor.executemany(update, [(STATUS_TEXT[self.lot_status[i]], i) for i in changed])
        cursor.close()
        rows = sorted(((h.bid, h.lot, h.pair.depot.id, h.pair.pool, h.qty) for h in self.balances.values()))
        for start in range(0, len(rows), 200_000):
            self.w.write("balances", BALANCE_COLUMNS, rows[start:start + 200_000])
        self.w.write("lot_events", LOT_EVENT_COLUMNS, self.lot_events)
        return len(rows), len(self.lot_events)

    # --- postings --------------------------------------------------------------------------

    def holding(self, lot: int, pair: Pair) -> Holding:
        key = (lot, pair.depot.id, pair.pool)
        found = self.balances.get(key)
        if found is None:
            found = self.balances[key] = Holding(self.lot_key[lot], pair, self.next_balance)  # type: ignore[arg-type]
            self.next_balance += 1
            self.lot_holdings[lot].append(found)
        return found

    def post(self, kind: str, legs: Sequence[tuple[Holding, int]], t: int, user: int | None, *,
             reference: str | None = None, reason: str | None = None, flag: str | None = None,
             recipient: str | None = None, recipient_org: int | None = None, override: bool = False,
             reversal_of: int | None = None, delay: int | None = None) -> list[int]:
        """Apply ``legs`` and write them as one posting; returns the movement ids."""
        posting = self.uuid()
        recorded = t + (delay if delay is not None else 15 + int(self.random() * 900))
        if recorded > self.end_t:
            recorded = max(t, self.end_t)
        ts = self.ts
        occurred_text, recorded_text = ts(t), ts(recorded)
        fefo_override = self.true if override else self.false
        append = self.pending.append
        mid = self.next_movement
        ids = []
        for holding, quantity in legs:
            holding.qty += quantity
            if holding.qty < 0:
                raise AssertionError(f"lot {holding.lot} would go below zero in depot {holding.pair.depot.code}")
            if not holding.live and holding.qty:
                bisect.insort(holding.pair.hold, holding, key=_fefo_key)
                holding.live = True
            pair = holding.pair
            append((mid, posting, kind, holding.lot, pair.depot.id, pair.pool, quantity, occurred_text,
                    recorded_text, user, reference, reason, flag, recipient, recipient_org, fefo_override,
                    reversal_of))
            ids.append(mid)
            mid += 1
        self.next_movement = mid
        for holding, _ in legs:
            if not holding.qty and holding.live:
                holding.pair.hold.remove(holding)
                holding.live = False
        return ids

    def usable(self, pair: Pair, day: int) -> int:
        today = self.start_ord + day
        status = self.lot_status
        total = 0
        for h in pair.hold:
            if h.exp >= today and not status[h.lot]:
                total += h.qty
        return total

    def fefo(self, pair: Pair, quantity: int, day: int) -> list[tuple[Holding, int]]:
        """The lots an issue of ``quantity`` takes (the caller has checked it is usable)."""
        today = self.start_ord + day
        status = self.lot_status
        picks = []
        for h in pair.hold:
            if h.exp < today or status[h.lot]:
                continue
            take = h.qty if h.qty < quantity else quantity
            picks.append((h, -take))
            quantity -= take
            if not quantity:
                break
        assert not quantity
        return picks

    def new_lot(self, item: Item_, day: int, t: int, expiry: int | None) -> int:
        lot = len(self.lot_key)
        item.lot_seq += 1
        when = self.start + dt.timedelta(days=day)
        number = f"{item.code[2:]}-{when:%y%m}-{item.lot_seq:04d}"
        ordinal = NO_EXPIRY if expiry is None else expiry
        self.lot_key.append((ordinal, t, lot))
        self.lot_status.append(AVAILABLE)
        self.lot_rows.append([item.id, number, expiry, t])
        self.lot_holdings.append([])
        return lot

    def expiry(self, item: Item_, day: int, low: float, high: float) -> int | None:
        """An expiry ordinal for a lot of ``item`` received on ``day``, never before that day."""
        if not item.has_expiry:
            return None
        return self.start_ord + day + max(30, int(item.shelf * self.rng.uniform(low, high)))

    def receive(self, pair: Pair, quantity: int, day: int, sec: int, *, expiry: int | None = None,
                reference: str | None = None, low: float = 0.6, high: float = 0.97) -> Holding:
        t = self.midnight[day] + sec
        if expiry is None:
            expiry = self.expiry(pair.item, day, low, high)
        lot = self.new_lot(pair.item, day, t, expiry)
        holding = self.holding(lot, pair)
        self.post(RECEIPT, [(holding, quantity)], t, pair.depot.user,
                  reference=reference or self.reference("DN", day))
        return holding

    def packs(self, item: Item_, quantity: float) -> int:
        return max(1, math.ceil(quantity / item.pack)) * item.pack

    # --- streams of events -------------------------------------------------------------------

    def issue_event(self, day: int, sec: int, pair: Pair) -> None:
        """A requisition: FEFO issue of about ``gap`` days of use; a surge adds surge issues."""
        rng = self.rng
        rnd = self.random
        following = day + (int(pair.gap * (0.6 + 0.8 * rnd()) + 0.5) or 1)
        if following < self.days:
            weekday = self.weekdays[following]
            if weekday >= 5:
                following += 7 - weekday
            if following < self.days:
                self.seq += 1
                self.buckets[following].append(  # type: ignore[union-attr]
                    (27000 + int(rnd() * 28800), self.seq, self.issue_event, (pair,)))
        wanted = int(pair.rate * pair.gap * (0.7 + 0.6 * rnd()) + 0.5) or 1
        t = self.midnight[day] + sec
        recipients = pair.recipients
        recipient, recipient_org = recipients[int(rnd() * len(recipients))]
        delay = 3600 + int(rnd() * 3 * 86400) if pair.municipal else None
        issued = self.issue(pair, wanted, day, t, recipient, recipient_org, NORMAL, delay)
        if issued is not None and rng.random() < 0.0012 and pair.depot.kind in ("supply_centre", "health_trust"):
            self.at(day + rng.randint(1, 3), self.clock(), self.reverse_event, pair, issued, recipient, recipient_org)
        if pair.sensitive and self.surge[day]:
            source = pair.twin if pair.twin is not None and rng.random() < 0.3 else pair
            extra = int(wanted * (0.5 + 1.5 * rnd()) + 0.5) or 1
            self.issue(source, extra, day, t + 60 + int(rnd() * 1800), recipient, recipient_org, SURGE, delay)

    def issue(self, pair: Pair, wanted: int, day: int, t: int, recipient: str, recipient_org: int | None,
              flag: str, delay: int | None = None) -> tuple[list[int], list[tuple[Holding, int]], str] | None:
        """Issue ``wanted``, or what is usable if less, FEFO (as ``fefo.allocate`` picks); returns
        (movement ids, legs, reference), or None when nothing is usable."""
        today = self.start_ord + day
        status = self.lot_status
        legs = []
        need = wanted
        for h in pair.hold:
            if h.exp >= today and not status[h.lot]:
                take = h.qty if h.qty < need else need
                legs.append((h, -take))
                need -= take
                if not need:
                    break
        if not legs:
            return None
        self.ref += 1
        reference = f"REQ-{self.day_text[day]}-{self.ref:07d}"
        user = pair.depot.user
        if flag == NORMAL and self.random() < 0.0008:
            # Now and then a named lot instead of the first to expire, with the reason recorded.
            quantity = wanted - need
            candidates = [h for h in pair.hold if h.exp >= today and not status[h.lot]]
            if len(candidates) > 1 and candidates[1].qty >= quantity:
                self.stats["overrides"] += 1
                legs = [(candidates[1], -quantity)]
                ids = self.post(ISSUE, legs, t, user, reference=reference, flag=flag, recipient=recipient,
                                recipient_org=recipient_org, override=True, delay=delay,
                                reason=self.rng.choice(OVERRIDE_REASONS))
                return ids, legs, reference
        ids = self.post(ISSUE, legs, t, user, reference=reference, flag=flag, recipient=recipient,
                        recipient_org=recipient_org, delay=delay)
        if flag == SURGE:
            self.stats["surge"] += 1
        if pair.municipal:  # what the municipality used per calendar year, for its § 8a figures
            per_year = pair.use_by_year
            year = self.year_of_day[day]
            per_year[year] = per_year.get(year, 0) + wanted - need
        return ids, legs, reference

    def reverse_event(self, day: int, sec: int, pair: Pair,
                      issued: tuple[list[int], list[tuple[Holding, int]], str],
                      recipient: str, recipient_org: int | None) -> None:
        """A mistaken issue (wrong recipient) reversed leg by leg, then issued to the right one."""
        t = self.midnight[day] + sec
        others = [r for r in pair.recipients if r[0] != recipient] or list(pair.recipients)
        right = self.rng.choice(others)
        reason = f"Issued to the wrong recipient: the requisition came from {right[0]}"
        total = 0
        ids, legs, reference = issued
        for mid, (holding, taken) in zip(ids, legs):
            quantity = -taken
            # One posting per movement reversed, repeating its reference, flag and recipient, as
            # services.reverse does.
            self.post(ISSUE, [(holding, quantity)], t, pair.depot.user, reference=reference, reason=reason,
                      flag=NORMAL, recipient=recipient, recipient_org=recipient_org, reversal_of=mid)
            self.stats["reversals"] += 1
            total += quantity
            t += 1
        self.issue(pair, total, day, t + 60, right[0], right[1], NORMAL)

    def replenish_event(self, day: int, sec: int, depot: Depot_, every: int) -> None:
        """The depot's delivery day: every pair below its reorder point gets a new lot."""
        self.at(self.working(day + every), sec, self.replenish_event, depot, every)
        reference = self.reference("DN", day)
        for pair in depot.pairs:
            if pair.pool != OP or pair.source is not None:
                continue
            usable = self.usable(pair, day)
            rate = pair.rate + pair.draw
            if usable < rate * pair.rop:
                self.receive(pair, self.packs(pair.item, rate * pair.cover - usable), day, sec,
                             reference=reference)
                sec += self.rng.randint(20, 120)

    def transfer_event(self, day: int, sec: int, depot: Depot_) -> None:
        """A trust's store is topped up from its supply centre (FEFO, both legs one posting)."""
        self.at(self.working(day + 7), sec, self.transfer_event, depot)
        t = self.midnight[day] + sec
        for pair in depot.pairs:
            source = pair.source
            if source is None:
                continue
            usable = self.usable(pair, day)
            if usable >= pair.rate * pair.rop:
                continue
            quantity = min(self.packs(pair.item, pair.rate * pair.cover - usable), self.usable(source, day))
            if quantity <= 0:
                continue
            legs = []
            for holding, taken in self.fefo(source, quantity, day):
                legs.append((holding, taken))
                legs.append((self.holding(holding.lot, pair), -taken))
            self.post(TRANSFER, legs, t, source.depot.user, reference=self.reference("TR", day),
                      reason="Replenishment of the hospital store")
            t += self.rng.randint(20, 90)

    def rotation_event(self, day: int, sec: int, depot: Depot_) -> None:
        """Every eight weeks: the next emergency lot into daily use, and fresh stock bought for it."""
        self.at(self.working(day + 56), sec, self.rotation_event, depot)
        today = self.start_ord + day
        t = self.midnight[day] + sec
        for pair in depot.pairs:
            if pair.pool != EM or not pair.item.has_expiry:
                continue
            operational = pair.twin
            assert operational is not None
            if not pair.flag_neglect:
                for holding in list(pair.hold):
                    if holding.exp < today or self.lot_status[holding.lot]:
                        continue
                    days_left = holding.exp - today
                    if days_left <= 450:
                        quantity = holding.qty if days_left <= 150 else min(
                            holding.qty, self.packs(pair.item, pair.rate * 28))
                        self.post(TRANSFER, [(holding, -quantity), (self.holding(holding.lot, operational), quantity)],
                                  t, depot.user, reference=self.reference("ROT", day),
                                  reason="Rotation: emergency stock into daily use before it expires")
                        t += 30
                    break
            usable = self.usable(pair, day)
            if usable < 0.95 * pair.target:
                self.receive(pair, self.packs(pair.item, pair.target - usable), day, sec + 600,
                             reference=self.reference("BER", day), low=0.75, high=0.97)

    def count_event(self, day: int, sec: int, depot: Depot_, lots: int, every: int, reason: str) -> None:
        """A cycle count of a few lots: most agree with the books, some are off, a few by >5 %."""
        self.at(self.working(day + every), sec, self.count_event, depot, lots, every, reason)
        rng = self.rng
        t = self.midnight[day] + sec
        reference = f"COUNT-{self.start + dt.timedelta(days=day):%Y-%m}-{depot.code}"
        seen = set()
        for _ in range(lots):
            pair = rng.choice(depot.pairs)
            if not pair.hold:
                continue
            holding = rng.choice(pair.hold)
            if holding.bid in seen:
                continue
            seen.add(holding.bid)
            roll = rng.random()
            if roll < 0.55:
                continue  # the count agrees: nothing is posted
            if roll < 0.9:
                delta = rng.choice([-2, -1, -1, 1, 2, -pair.item.pack, pair.item.pack])
            else:
                delta = -max(1, round(holding.qty * rng.uniform(0.06, 0.25)))
            counted = max(0, holding.qty + delta)
            if counted == holding.qty:
                continue
            self.post(ADJUSTMENT, [(holding, counted - holding.qty)], t, depot.user, reason=reason,
                      reference=reference)
            t += rng.randint(60, 300)

    def dispose_event(self, day: int, sec: int, depot: Depot_, every: int, after: int, keep: float) -> None:
        """Expired stock written off ``after`` days past its expiry; a share ``keep`` is left on the shelf."""
        self.at(self.working(day + every), sec, self.dispose_event, depot, every, after, keep)
        limit = self.start_ord + day - after
        t = self.midnight[day] + sec
        for pair in depot.pairs:
            for holding in [h for h in pair.hold if h.exp < limit]:
                if (holding.lot * 2654435761 + holding.bid) % 1000 < keep * 1000:
                    continue  # overlooked: still on the shelf
                self.post(DISPOSAL, [(holding, -holding.qty)], t, depot.user, reason=DisposalReason.EXPIRED.value,
                          reference=self.reference("DISP", day))
                t += 20
        if self.random() < 0.06 and depot.pairs:
            pair = self.rng.choice(depot.pairs)
            if pair.hold:
                holding = self.rng.choice(pair.hold)
                quantity = min(holding.qty, max(1, round(holding.qty * self.rng.uniform(0.01, 0.1))))
                self.post(DISPOSAL, [(holding, -quantity)], t + 60, depot.user,
                          reason=DisposalReason.DAMAGED.value, reference=self.reference("DISP", day))

    def status_event(self, day: int, sec: int, centre: Depot_, outcome: str) -> None:
        """Quarantine a lot of the supply centre that has also gone out to its trusts."""
        rng = self.rng
        t = self.midnight[day] + sec
        candidates = [h for pair in rng.sample(centre.pairs, min(60, len(centre.pairs))) for h in pair.hold
                      if not self.lot_status[h.lot] and h.exp > self.start_ord + day + 60]
        if not candidates:
            return
        lot = max(candidates, key=lambda h: (len(self.lot_holdings[h.lot]), h.qty, h.lot)).lot
        user = centre.user
        if outcome == "recall":
            self.set_status(lot, RECALLED, t, user, "Manufacturer's recall: sterility cannot be assured")
            self.at(day + rng.randint(1, 4), self.clock(), self.recall_disposal_event, lot)
            return
        self.set_status(lot, QUARANTINED, t, user,
                        "Supplier field safety notice: held pending investigation")
        if outcome == "release":
            self.at(day + rng.randint(7, 35), self.clock(), self.release_event, lot, user)
        elif outcome == "recall-later":
            self.at(day + rng.randint(5, 20), self.clock(), self.recall_after_quarantine_event, lot, user)

    def set_status(self, lot: int, status: int, t: int, user: int | None, reason: str) -> None:
        old = self.lot_status[lot]
        self.lot_status[lot] = status
        self.lot_events.append((self.next_lot_event, lot, LotEventKind.STATUS.value, STATUS_TEXT[old],
                                STATUS_TEXT[status], reason, user, self.ts(t + self.rng.randint(10, 300))))
        self.next_lot_event += 1
        self.stats[{QUARANTINED: "quarantined", RECALLED: "recalled", AVAILABLE: "released"}[status]] += 1

    def release_event(self, day: int, sec: int, lot: int, user: int | None) -> None:
        if self.lot_status[lot] == QUARANTINED:
            self.set_status(lot, AVAILABLE, self.midnight[day] + sec, user,
                            "Investigation closed: the lot meets its specification")

    def recall_after_quarantine_event(self, day: int, sec: int, lot: int, user: int | None) -> None:
        self.set_status(lot, RECALLED, self.midnight[day] + sec, user,
                        "Investigation confirmed the defect: the manufacturer recalls the lot")
        self.at(day + self.rng.randint(1, 4), self.clock(), self.recall_disposal_event, lot)

    def recall_disposal_event(self, day: int, sec: int, lot: int) -> None:
        t = self.midnight[day] + sec
        for holding in self.lot_holdings[lot]:
            if holding.qty:
                self.post(DISPOSAL, [(holding, -holding.qty)], t, holding.pair.depot.user,
                          reason=DisposalReason.RECALLED.value, reference=self.reference("RECALL", day))
                t += 60


# --- the build ----------------------------------------------------------------------------------

class Build:
    def __init__(self, session: so.Session, *, years: int, scale: float, today: dt.date, seed: int,
                 progress: bool) -> None:
        self.s = session
        self.years = years
        self.scale = scale
        self.today = today
        self.rng = random.Random(seed)
        self.progress = progress
        try:
            self.start = today.replace(year=today.year - years)
        except ValueError:  # 29 February
            self.start = today.replace(year=today.year - years, day=28)
        self.days = (today - self.start).days
        self.start_t = dt.datetime.combine(self.start, dt.time(7), OSLO)
        self.orgs: dict[str, Organisation] = {}
        self.depots: dict[str, Depot_] = {}
        self.items: list[Item_] = []
        self.users: dict[str, int] = {}
        self.emergency_items: dict[str, list[Item_]] = {}
        self.critical: dict[str, list[Pair]] = {}
        self.municipal_pairs: list[Pair] = []
        self.timings: dict[str, float] = {}

    # --- master data ----------------------------------------------------------------------

    def master_data(self) -> None:
        s, rng = self.s, self.rng
        n_items, n_municipalities = _counts(self.scale)
        created = self.start_t.astimezone(dt.timezone.utc)

        def org(code: str, name: str, kind: str, parent: str | None = None, population: int | None = None) -> None:
            o = Organisation(code=code, name=name, kind=kind, parent=self.orgs.get(parent) if parent else None,
                             population=population, created_at=created)
            s.add(o)
            self.orgs[code] = o

        org("NO", "Norge", OrganisationKind.REGION.value)
        pharmacy = 0
        for number, name, _share, pharmacies in REGIONS:
            org(f"RHF-{number}", name, OrganisationKind.REGION.value, "NO")
            org(f"FS-{number}", f"{name.removesuffix(' RHF')} Forsyningssenter", OrganisationKind.SUPPLY_CENTRE.value,
                f"RHF-{number}")
            for k in range(1, TRUSTS_PER_REGION + 1):
                org(f"HF-{number}-{k}", f"Helseforetak {number}.{k}", OrganisationKind.HEALTH_TRUST.value,
                    f"RHF-{number}")
            for _ in range(pharmacies):
                pharmacy += 1
                org(f"SA-{pharmacy:02d}", f"Sykehusapotek {pharmacy:02d}", OrganisationKind.HOSPITAL_PHARMACY.value,
                    f"RHF-{number}")
        org("SF", "Statsforvalteren", OrganisationKind.REGION.value, "NO")
        populations = _populations(rng, n_municipalities)
        for n, population in enumerate(populations, start=1):
            org(f"K-{n:04d}", f"Kommune {n:04d}", OrganisationKind.MUNICIPALITY.value, "SF", population)
        s.flush()
        depots = []
        for code, o in self.orgs.items():
            if o.kind != OrganisationKind.REGION:
                depots.append(Depot(code=f"{code}-D", name=f"{o.name}, lager", organisation=o, created_at=created))
        s.add_all(depots)
        catalogue = _catalogue(rng, n_items)
        rows = [Item(**{k: v for k, v in row.items() if k not in ("shelf", "weekly")}, created_at=created)
                for row in catalogue]
        s.add_all(rows)
        s.flush()
        for email, role, org_code in USERS:
            user = auth.create_user(s, email=email, password=PASSWORD, name=email.split("@")[0],
                                    role=role, organisation=self.orgs[org_code] if org_code else None)
            self.users[org_code or "admin"] = user.id
        admin = self.users["admin"]
        for depot in depots:
            o = depot.organisation
            d = Depot_(depot.id, depot.code, o.id, o.code, o.kind, self.users.get(o.code, admin))
            d.population = o.population or 0
            self.depots[o.code] = d
        for item, row in zip(rows, catalogue):
            self.items.append(Item_(item.id, item.code, item.category, item.ppe_group, row["shelf"],
                                    item.pack_size or 1, row["weekly"]))

    # --- who holds what, and how it moves -------------------------------------------------

    def plan(self, ledger: Ledger) -> None:
        rng = self.rng
        at = ledger.at
        item_scale = len(self.items) / ITEMS
        trusts = {n: [(f"HF-{n}-{k}", self.orgs[f"HF-{n}-{k}"].id) for k in range(1, TRUSTS_PER_REGION + 1)]
                  for n, *_ in REGIONS}
        wards = [(w, None) for w in WARDS]
        municipal = [(w, None) for w in MUNICIPAL_RECIPIENTS]
        sensitive = {item.id for item in self.items
                     if item.category == Category.PPE
                     or (item.category == Category.CONSUMABLE and rng.random() < 0.1)
                     or (item.category == Category.DRUG and rng.random() < 0.05)}

        def frequency(weekly: float) -> float:
            """Days between issues: busy items several times a week, slow ones every few weeks."""
            per_week = min(3.0, max(0.25, 0.4 + math.log10(1 + weekly) / 1.6))
            return max(7 / per_week, min(42.0, 1 / max(weekly / 7, 1e-6)))

        def pair(depot: Depot_, pool: str, item: Item_, rate: float) -> Pair:
            p = Pair(depot, pool, item, rate)
            depot.pairs.append(p)
            p.sensitive = item.id in sensitive
            return p

        centre_pairs: dict[tuple[int, int], Pair] = {}
        for number, _name, share, _ph in REGIONS:
            depot = self.depots[f"FS-{number}"]
            depot.weekday = number - 1
            held = [i for i in self.items if number == 1 or rng.random() < CENTRE_ASSORTMENT[number]]
            on_list = [i for i in held if i.category == Category.PPE or rng.random() < (0.08 if number == 1 else 0.05)]
            self.emergency_items[depot.org_code] = on_list
            on_list_ids = {i.id for i in on_list}
            for item in held:
                p = pair(depot, OP, item, item.weekly * share / 7)
                p.gap = frequency(item.weekly * share)
                p.recipients = trusts[number]
                cycle = 21 if item.weekly * share >= 200 else 28 if item.weekly * share >= 20 else 56
                p.rop, p.cover = 21 * rng.uniform(0.9, 1.2), 21 + cycle
                centre_pairs[(number, item.id)] = p
                if item.id in on_list_ids:
                    e = pair(depot, EM, item, p.rate)
                    e.target = p.rate * 7 * rng.choice([12, 12, 12, 16, 16, 24])
                    e.flag_neglect = rng.random() < 0.08
                    e.twin, p.twin = p, e
        for number, _name, share, _ph in REGIONS:
            centre = self.depots[f"FS-{number}"]
            choices = [p for p in centre.pairs if p.pool == OP and p.item.category != Category.DRUG]
            for k in range(1, TRUSTS_PER_REGION + 1):
                depot = self.depots[f"HF-{number}-{k}"]
                depot.weekday = k % 5
                count = min(len(choices), max(5, round(rng.uniform(200, 400) * item_scale)))
                for source in rng.sample(choices, count):
                    p = pair(depot, OP, source.item, source.rate * rng.uniform(0.03, 0.1))
                    p.gap = frequency(p.rate * 7)
                    p.recipients = wards
                    p.source = source
                    p.rop, p.cover = 14, 14 + rng.choice([28, 35, 42])
                    source.draw += p.rate
        drugs = [i for i in self.items if i.category == Category.DRUG]
        consumables = [i for i in self.items if i.category == Category.CONSUMABLE]
        for number, _name, _share, pharmacies in REGIONS:
            for code in [c for c, o in self.orgs.items() if o.kind == OrganisationKind.HOSPITAL_PHARMACY
                         and o.parent is not None and o.parent.code == f"RHF-{number}"]:
                depot = self.depots[code]
                depot.weekday = rng.randrange(5)
                count = min(len(drugs), max(5, round(rng.uniform(140, 280) * item_scale)))
                held = rng.sample(drugs, count) + rng.sample(consumables, max(1, count // 10))
                pairs = []
                for item in held:
                    p = pair(depot, OP, item, item.weekly * rng.uniform(0.004, 0.03) / 7)
                    p.gap = frequency(p.rate * 7)
                    p.recipients = wards
                    p.rop, p.cover = 21 * rng.uniform(0.8, 1.3), 21 + rng.choice([28, 35, 42, 56])
                    pairs.append(p)
                self.critical[code] = [p for p in pairs if p.item.category == Category.DRUG][
                    :max(3, round(len(pairs) * rng.uniform(0.15, 0.3)))]
        ppe = {g.value: [i for i in self.items if i.group == g.value] for g in PPEGroup}
        for code, o in self.orgs.items():
            if o.kind != OrganisationKind.MUNICIPALITY:
                continue
            depot = self.depots[code]
            depot.weekday = rng.randrange(5)
            population = o.population or 1000
            per_group = 2 if population < 3000 else 4 if population < 20_000 else 6 if population < 100_000 else 8
            duty = rng.uniform(0.5, 1.3)  # how well the municipality keeps the 3-month duty
            for group, items in ppe.items():
                chosen = rng.sample(items, min(len(items), per_group))
                for item in chosen:
                    yearly = population * PER_INHABITANT[PPEGroup(group)] / len(chosen) * rng.uniform(0.6, 1.4)
                    p = pair(depot, OP, item, yearly / 365.25)
                    p.gap = 7.0 if population >= 50_000 else 14.0 if population >= 10_000 else 30.0
                    p.gap = max(p.gap, min(60.0, 1 / max(p.rate, 1e-6)))
                    p.recipients = municipal
                    p.rop, p.cover = 91.3125 * duty, 91.3125 * duty + rng.choice([45, 70, 91])
                    self.municipal_pairs.append(p)

        # Opening stock, then the streams.
        for depot in self.depots.values():
            for p in depot.pairs:
                if p.pool == EM:
                    for low, high in ((0.15, 0.3), (0.35, 0.55), (0.6, 0.8), (0.85, 0.97)):
                        ledger.receive(p, ledger.packs(p.item, p.target / 4), 0, 7 * 3600 + 900,
                                       reference="OPENING", low=low, high=high)
                    continue
                days = p.cover * rng.uniform(0.5, 1.0) if p.source is None else p.cover * rng.uniform(0.3, 0.6)
                parts = (0.4, 0.6) if days * p.rate > 2 * p.item.pack else (1.0,)
                for part in parts:
                    ledger.receive(p, ledger.packs(p.item, p.rate * days * part), 0, 7 * 3600,
                                   reference="OPENING", low=0.1, high=0.9)
                at(ledger.working(rng.randrange(1, 1 + max(1, int(p.gap)))), ledger.clock(), ledger.issue_event, p)
        for depot in self.depots.values():
            kind = depot.kind
            first = ledger.working(depot.weekday + 1)
            if kind == OrganisationKind.SUPPLY_CENTRE:
                at(first, 6 * 3600 + 1800, ledger.replenish_event, depot, 7)
                at(ledger.working(rng.randrange(20, 56)), 14 * 3600, ledger.rotation_event, depot)
                at(ledger.working(rng.randrange(1, 28)), 15 * 3600, ledger.count_event, depot,
                   max(8, round(40 * item_scale)), 28, "Monthly cycle count")
                at(ledger.working(rng.randrange(1, 28)), 13 * 3600, ledger.dispose_event, depot, 28, 21, 0.04)
            elif kind == OrganisationKind.HEALTH_TRUST:
                at(first, 10 * 3600, ledger.transfer_event, depot)
                at(ledger.working(rng.randrange(1, 28)), 15 * 3600, ledger.count_event, depot,
                   max(4, round(12 * item_scale)), 28, "Monthly cycle count")
                at(ledger.working(rng.randrange(1, 28)), 13 * 3600, ledger.dispose_event, depot, 28, 14, 0.05)
            elif kind == OrganisationKind.HOSPITAL_PHARMACY:
                at(first, 7 * 3600, ledger.replenish_event, depot, 7)
                at(ledger.working(rng.randrange(1, 28)), 15 * 3600, ledger.count_event, depot,
                   max(4, round(12 * item_scale)), 28, "Monthly cycle count")
                at(ledger.working(rng.randrange(1, 28)), 13 * 3600, ledger.dispose_event, depot, 28, 7, 0.03)
            else:
                at(first, 9 * 3600, ledger.replenish_event, depot, 28)
                at(ledger.working(rng.randrange(1, 91)), 14 * 3600, ledger.count_event, depot, 3, 91,
                   "Quarterly stock count")
                at(ledger.working(rng.randrange(30, 182)), 13 * 3600, ledger.dispose_event, depot, 182, 30, 0.35)
        # A respiratory wave each winter: three to five weeks of surge issues.
        for year in range(self.start.year, self.today.year + 1):
            begin = dt.date(year, 11, 20) + dt.timedelta(days=rng.randrange(0, 60))
            first = (begin - self.start).days
            for d in range(max(0, first), min(self.days, first + 7 * rng.randint(3, 5))):
                ledger.surge[d] = 1
        # Quarantines (most released, some recalled, a few still held) and outright recalls.
        centres = [self.depots[f"FS-{n}"] for n, *_ in REGIONS]
        events = max(4, round(12 * self.scale * self.years))
        for i in range(events):
            outcome = ["release", "release", "recall-later", "recall"][i % 4]
            at(rng.randrange(30, max(31, self.days - 45)), ledger.clock(), ledger.status_event, rng.choice(centres), outcome)
        for i in range(max(2, round(4 * self.scale))):  # recent quarantines, still open at the end
            at(self.days - rng.randint(3, 25), ledger.clock(), ledger.status_event, rng.choice(centres), "hold")

    # --- coverage targets ---------------------------------------------------------------------

    def targets(self) -> int:
        """Item lists, manual and § 8a baselines; returns the number of baselines."""
        s, rng = self.s, self.rng
        day_before = self.today - dt.timedelta(days=1)
        when = dt.datetime.combine(day_before, dt.time(15), OSLO).astimezone(dt.timezone.utc)
        items = {i.id: i for i in s.scalars(sa.select(Item))}
        ctx = {code: inventory.Context(uid, when, day_before) for code, uid in self.users.items()}
        admin = ctx["admin"]
        for code, on_list in self.emergency_items.items():
            staff = ctx.get(code, admin)
            item_list = coverage.item_list_for(s, self.orgs[code], EMERGENCY_LIST,
                                                name="Emergency list (beredskapslager)")
            for item in on_list:
                coverage.save_list_entry(s, staff, item_list=item_list, item=items[item.id])
        count = 0
        for code, pairs in self.critical.items():
            staff = ctx.get(code, admin)
            item_list = coverage.item_list_for(s, self.orgs[code], CRITICAL_DRUGS, name="Critical drug list")
            drugs = [p.item for p in pairs]
            for p in pairs:
                alternatives = []
                if rng.random() < 0.3 and len(drugs) > 1:
                    alternatives = [items[a.id] for a in rng.sample([d for d in drugs if d.id != p.item.id], 1)]
                coverage.save_list_entry(
                    s, staff, item_list=item_list, item=items[p.item.id],
                    min_days=rng.choice([None, None, None, 21, 28]),
                    criticality=rng.choice(["high", "high", "medium", "low"]), alternatives=alternatives,
                    note=rng.choice([None, None, "No substitute on the list.", "Supplier shortage notice."]))
                if rng.random() < 0.5:  # daily use entered by the pharmacist; the rest computed
                    coverage.set_manual_baseline(
                        s, staff, organisation=self.orgs[code], item=items[p.item.id],
                        weekly_use=round(Decimal(p.rate * 7 * rng.uniform(0.9, 1.1)), 2), valid_from=self.start,
                        note="Daily use from the pharmacy's consumption statistics")
                    count += 1
        for number, *_ in REGIONS:
            code = f"FS-{number}"
            for p in self.depots[code].pairs:
                if p.pool == OP and (p.item.category == Category.EQUIPMENT or rng.random() < 0.01):
                    coverage.set_manual_baseline(s, ctx.get(code, admin), organisation=self.orgs[code],
                                                  item=items[p.item.id],
                                                  weekly_use=round(Decimal(p.rate * 7), 2), valid_from=self.start,
                                                  note="Replacement rate agreed with the trusts")
                    count += 1
        # § 8a for most municipal PPE pairs, as inventory.set_annual_baseline stores it: annual use
        # of the three calendar years before this one, a deviating (pandemic) year replaced by
        # the year before it. Years the history covers in full are summed from it.
        year = self.today.year
        valid_from = dt.date(year, 1, 1)
        rows = []
        for p in self.municipal_pairs:
            if rng.random() < 0.12:
                continue  # left to the computed baseline
            org = p.depot.org
            deviating = [year - 2] if org % 4 == 1 else []
            use = {}
            for y in range(year - 4, year):
                counted = p.use_by_year.get(y)
                full = dt.date(y, 1, 1) >= self.start and dt.date(y, 12, 31) < self.today
                use[y] = counted if full and counted is not None else round(p.rate * 365.25 * rng.uniform(0.9, 1.1))
            for y in deviating:
                use[y] = round(use[y] * 2.5)  # the deviating year: far above normal
            if not deviating:
                del use[year - 4]
            weekly, used_years, replaced = arithmetic.annual_3y(use, valid_from.year, deviating)
            rows.append(Baseline(organisation_id=org, item_id=p.item.id, source=BaselineSource.ANNUAL_3Y.value,
                                 weekly_use=round(Decimal(weekly.numerator) / Decimal(weekly.denominator), 4),
                                 valid_from=valid_from, annual_use={str(y): int(n) for y, n in sorted(use.items())},
                                 years_used=used_years, years_replaced=replaced, recorded_by_id=admin.user_id,
                                 recorded_at=when))
        s.add_all(rows)
        s.flush()
        return count + len(rows)

    # --- all of it ----------------------------------------------------------------------------

    def run(self, skip_jobs: bool = False) -> dict[str, Any]:
        s = self.s
        began = time.perf_counter()
        self.master_data()
        self.timings["master data and users"] = time.perf_counter() - began

        began = time.perf_counter()
        writer = Writer(s)
        if writer.postgres:
            s.execute(sa.text("SET LOCAL synchronous_commit = off"))
        ledger = Ledger(writer, self.rng, self.start, self.days, self.progress)
        self.plan(ledger)
        gc.disable()  # millions of small tuples and no cycles: the collector would only slow it down
        try:
            writer.set_aside(LEDGER_TABLES)
            ledger.run()
            balances, lot_events = ledger.finish()
            writer.close()
            self.timings["ledger (simulate and load)"] = time.perf_counter() - began
            began = time.perf_counter()
            writer.restore()
            self.timings["indexes and foreign keys" if writer.postgres else "indexes"] = time.perf_counter() - began
        finally:
            gc.enable()
        began = time.perf_counter()
        if writer.postgres:
            for table in ("lots", "movements", "balances", "lot_events"):
                s.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"))
        baselines = self.targets()
        s.commit()
        self.timings["lists and baselines"] = time.perf_counter() - began

        began = time.perf_counter()
        if writer.postgres:
            with s.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(sa.text("VACUUM ANALYZE"))
        else:
            s.execute(sa.text("ANALYZE"))
            s.commit()
        self.timings["analyze"] = time.perf_counter() - began

        if not skip_jobs:
            began = time.perf_counter()
            with so.Session(s.get_bind()) as jobs:
                begin_write(jobs)
                rotation.sync_tasks(jobs, today=self.today)
                self.timings["rotation sync"] = time.perf_counter() - began
                began_scan = time.perf_counter()
                alerts.full_scan(jobs, today=self.today)
                jobs.info.pop(inventory.STOCK_CHANGED, None)
                jobs.commit()
                self.timings["alerts full scan"] = time.perf_counter() - began_scan
        return {"stats": ledger.stats, "balances": balances, "lot_events": lot_events, "baselines": baselines}


def _summary(session: so.Session) -> dict[str, int]:
    tables = ["organisations", "depots", "items", "lots", "movements", "balances", "lot_events", "baselines",
              "item_list_entries", "users", "alerts", "rotation_tasks"]
    counts = {t: int(session.scalar(sa.text(f"SELECT count(*) FROM {t}")) or 0) for t in tables}
    for label, where in (("transfers", "kind = 'transfer'"), ("reversals", "reversal_of_id IS NOT NULL"),
                         ("surge issues", "flag = 'surge'"), ("adjustments", "kind = 'adjustment'"),
                         ("disposals", "kind = 'disposal'")):
        counts[label] = int(session.scalar(sa.text(f"SELECT count(*) FROM movements WHERE {where}")) or 0)
    return counts


def build(url: str, *, years: int = 3, scale: float = 1.0, today: dt.date | None = None, seed: int = 7,
          skip_jobs: bool = False, progress: bool = True) -> dict[str, Any]:
    """Migrate the empty database at ``url`` and build the national data set into it.

    Returns the counts of what is in the database (``counts``) and the seconds each phase took
    (``timings``). Raises ``RuntimeError`` when the database already holds organisations.
    """
    if years < 1:
        raise ValueError("years must be at least 1")
    if scale <= 0:
        raise ValueError("scale must be above zero")
    today = today or inventory.local_today()
    timings: dict[str, float] = {}
    began = time.perf_counter()
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _fast(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous = OFF")     # a bench build: rebuilt if the machine dies
            cursor.execute("PRAGMA cache_size = -1000000")  # 1 GB of page cache
            cursor.close()
    try:
        upgrade(engine)
        timings["migrations"] = time.perf_counter() - began
        with so.Session(engine, expire_on_commit=False) as session:
            if session.scalar(sa.select(sa.func.count()).select_from(Organisation)):
                raise RuntimeError(f"{engine.url.render_as_string(hide_password=True)} already holds organisations; "
                                   "the national data set is built only into an empty database.")
            builder = Build(session, years=years, scale=scale, today=today, seed=seed, progress=progress)
            result = builder.run(skip_jobs=skip_jobs)
            timings.update(builder.timings)
            counts = _summary(session)
    finally:
        engine.dispose()
    timings["total"] = time.perf_counter() - began
    return {"counts": counts, "timings": timings, "stats": result["stats"], "today": today,
            "start": builder.start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="sqlite:////tmp/x.sqlite3 or postgresql://user@host/db")
    parser.add_argument("--years", type=int, default=3, help="years of history (default 3)")
    parser.add_argument("--scale", type=float, default=1.0, help="size relative to the national figures")
    parser.add_argument("--today", type=dt.date.fromisoformat, default=None,
                        help="the load date, YYYY-MM-DD (default: today in Europe/Oslo)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-jobs", action="store_true", help="leave out the rotation sync and alerts scan")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        result = build(args.url, years=args.years, scale=args.scale, today=args.today, seed=args.seed,
                       skip_jobs=args.skip_jobs, progress=not args.quiet)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"National data set: {args.years} year(s) of history {result['start']} – "
          f"{result['today'] - dt.timedelta(days=1)}, scale {args.scale:g}, seed {args.seed}")
    for name, value in result["counts"].items():
        print(f"  {name:<20} {value:>12,}")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in result["stats"].items()))
    print("Time per phase:")
    for name, seconds in result["timings"].items():
        print(f"  {name:<28} {seconds:8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
