"""The demo data set: ``flask --app stockpile demo`` loads it into an empty database.

DEMO DATA — every quantity is invented. The organisations are real Norwegian bodies so the
pages read naturally (Helse Sør-Øst with its supply centre, health trusts and hospital pharmacy;
Statsforvalteren i Troms og Finnmark with the 39 municipalities of Troms and Finnmark, numbered
as from 2024, with approximate populations), but no stock level, lot, delivery, issue, count or
person in here describes anyone's real stock or staff. Lot numbers, references and depot names
carry ``DEMO``. GTINs are GS1 restricted-circulation numbers (prefix 200), so they are valid
(right check digit) yet can never match a real trade item.

What it builds, over the 52 weeks up to the day it is loaded:

- the supply centre ``HSO-FS`` issues consumables and PPE to the ten health trusts most working
  days, is replenished weekly to about 3–4.5 weeks of normal use, and holds 12–24 weeks in the
  ``emergency`` pool for selected items, rotated into daily use every eight weeks; one respiratory
  wave brings surge issues (some from the emergency pool); monthly stock counts find small
  differences; a few transfers place stock at the hospitals; one mistaken issue is reversed;
- the hospital pharmacy ``SAP`` does the same for critical ICU drugs (2–3.5 weeks operational,
  8 weeks emergency for three of them);
- each municipality receives and uses the five PPE groups and ends the year holding roughly half
  to one and a half quarters of its use, so some meet the 3-month duty and some do not;
- on purpose, for the alerts and rotation pages: expired lots still on hand, lots expiring within
  30, 90 and 180 days, two disposals of expired stock, one quarantined lot and one shelf-life
  extension.

Every change of stock goes through the posting services, back-dated with ``occurred_at`` and the
``today`` of that day, so the ledger and balances agree as for real data. The random generator is
seeded: the same load date gives the same data. ``load`` only flushes; the caller commits.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.alerts import services as alerts
from stockpile.auth import services as auth
from stockpile.coverage import services as coverage
from stockpile.coverage.models import CRITICAL_DRUG_LIST, EMERGENCY_LIST
from stockpile.auth.models import User
from stockpile.inventory import services as inventory
from stockpile.inventory.models import (Balance, Depot, IssueFlag, Item, Lot, Movement,
                                        Organisation, Pool)
from stockpile.inventory import fefo
from stockpile.rotation import services as rotation

SEED = 20260101
HISTORY_DAYS = 364  # 52 weeks of movements, ending the day before the load date
OSLO = ZoneInfo(inventory.DEFAULT_TIMEZONE)
OP = Pool.OPERATIONAL.value
EM = Pool.EMERGENCY.value

# (email, password, role, organisation code) — printed by the ``demo`` command.
USERS: list[tuple[str, str, str, str | None]] = [
    ("admin@demo.stockpile.test", "demo-admin", "admin", None),
    ("coordinator@demo.stockpile.test", "demo-coordinator", "coordinator", "SF-TF"),
    ("supply@demo.stockpile.test", "demo-supply", "supply_staff", "HSO-FS"),
    ("municipal@demo.stockpile.test", "demo-municipal", "municipal_staff", "KOMMUNE-5501"),
    ("pharmacist@demo.stockpile.test", "demo-pharmacist", "pharmacist", "SAP"),
    ("viewer@demo.stockpile.test", "demo-viewer", "viewer", "HSO-FS"),
]
USER_NAMES = {
    "admin": "Demo Administrator",
    "coordinator": "Demo Coordinator (Statsforvalteren)",
    "supply_staff": "Demo Supply Worker",
    "municipal_staff": "Demo Municipal Worker (Tromsø)",
    "pharmacist": "Demo Pharmacist",
    "viewer": "Demo Viewer",
}

REGION_HSO = ("HSO", "Helse Sør-Øst RHF")
SUPPLY_CENTRE = ("HSO-FS", "Helse Sør-Øst Forsyningssenter")
PHARMACY = ("SAP", "Sykehusapotekene")
COUNTY_GOVERNOR = ("SF-TF", "Statsforvalteren i Troms og Finnmark")

# (code, name, share of the region's hospital demand — invented, roughly by size)
HEALTH_TRUSTS: list[tuple[str, str, float]] = [
    ("AHUS", "Akershus universitetssykehus", 0.15),
    ("OUS", "Oslo universitetssykehus", 0.22),
    ("SIV", "Sykehuset i Vestfold", 0.08),
    ("SI", "Sykehuset Innlandet", 0.12),
    ("STHF", "Sykehuset Telemark", 0.06),
    ("SOHF", "Sykehuset Østfold", 0.09),
    ("SSHF", "Sørlandet sykehus", 0.10),
    ("VVHF", "Vestre Viken", 0.11),
    ("DIAK", "Diakonhjemmet Sykehus", 0.035),
    ("LDS", "Lovisenberg Diakonale sykehus", 0.035),
]

# (municipality number from 2024, name, approximate population)
MUNICIPALITIES: list[tuple[str, str, int]] = [
    ("5501", "Tromsø", 78_700), ("5503", "Harstad", 24_900), ("5510", "Kvæfjord", 2_850),
    ("5512", "Tjeldsund", 4_200), ("5514", "Ibestad", 1_330), ("5516", "Gratangen", 1_070),
    ("5518", "Lavangen", 1_030), ("5520", "Bardu", 4_000), ("5522", "Salangen", 2_220),
    ("5524", "Målselv", 6_740), ("5526", "Sørreisa", 3_470), ("5528", "Dyrøy", 1_090),
    ("5530", "Senja", 14_850), ("5532", "Balsfjord", 5_580), ("5534", "Karlsøy", 2_150),
    ("5536", "Lyngen", 2_750), ("5538", "Storfjord", 1_820), ("5540", "Kåfjord", 2_010),
    ("5542", "Skjervøy", 2_860), ("5544", "Nordreisa", 4_870), ("5546", "Kvænangen", 1_180),
    ("5601", "Alta", 21_300), ("5603", "Hammerfest", 11_300), ("5605", "Sør-Varanger", 10_100),
    ("5607", "Vadsø", 5_720), ("5610", "Karasjok", 2_620), ("5612", "Kautokeino", 2_880),
    ("5614", "Loppa", 850), ("5616", "Hasvik", 1_010), ("5618", "Måsøy", 1_140),
    ("5620", "Nordkapp", 3_090), ("5622", "Porsanger", 3_820), ("5624", "Lebesby", 1_260),
    ("5626", "Gamvik", 1_110), ("5628", "Tana", 2_820), ("5630", "Berlevåg", 940),
    ("5632", "Båtsfjord", 2_170), ("5634", "Vardø", 2_000), ("5636", "Nesseby", 900),
]


@dataclass(frozen=True)
class ItemSpec:
    code: str
    name: str
    category: str
    unit: str
    pack_size: int
    shelf_years: float | None  # None: no shelf life (equipment)
    gtin_ref: int | None = None
    atc: str | None = None
    ppe_group: str | None = None


ITEMS: list[ItemSpec] = [
    ItemSpec("GLOVE-NIT-M", "Examination gloves, nitrile, powder-free, size M", "ppe", "glove", 200, 5,
             101, ppe_group="gloves"),
    ItemSpec("GLOVE-NIT-L", "Examination gloves, nitrile, powder-free, size L", "ppe", "glove", 200, 5,
             102, ppe_group="gloves"),
    ItemSpec("MASK-IIR", "Surgical face mask, type IIR", "ppe", "mask", 50, 5, 103, ppe_group="face_masks"),
    ItemSpec("RESP-FFP2", "Respirator FFP2, without valve", "ppe", "respirator", 20, 5, 104,
             ppe_group="respirators"),
    ItemSpec("RESP-FFP3", "Respirator FFP3, without valve", "ppe", "respirator", 20, 5, 105,
             ppe_group="respirators"),
    ItemSpec("GOWN-ISO", "Isolation gown, fluid-resistant, long sleeves", "ppe", "gown", 10, 5, 106,
             ppe_group="gowns"),
    ItemSpec("VISOR", "Face shield (visor), full face", "ppe", "visor", 24, 5, 107,
             ppe_group="eye_protection"),
    ItemSpec("GOGGLES", "Protective goggles, indirect vent", "ppe", "pair", 10, 5, 108,
             ppe_group="eye_protection"),
    ItemSpec("ETT-75", "Endotracheal tube, cuffed, ID 7.5 mm", "consumable", "tube", 10, 5, 201),
    ItemSpec("IVC-20G", "Peripheral IV cannula 20G", "consumable", "cannula", 50, 5, 202),
    ItemSpec("INF-SET", "Infusion set, gravity, with roller clamp", "consumable", "set", 50, 5, 203),
    ItemSpec("SUCT-14", "Closed suction catheter 14 Fr, 72 h", "consumable", "catheter", 20, 3, 204),
    ItemSpec("HME-FILT", "HME filter, bacterial/viral, adult", "consumable", "filter", 50, 5, 205),
    ItemSpec("SYR-50", "Syringe 50 ml, Luer lock, for syringe pumps", "consumable", "syringe", 60, 5, 206),
    ItemSpec("PROPOFOL", "Propofol 10 mg/ml emulsion for injection, 50 ml vial", "drug", "vial", 10, 3,
             atc="N01AX10"),
    ItemSpec("NORADR", "Noradrenaline 1 mg/ml concentrate, 4 ml ampoule", "drug", "ampoule", 10, 2,
             atc="C01CA03"),
    ItemSpec("MIDAZOLAM", "Midazolam 5 mg/ml, 10 ml ampoule", "drug", "ampoule", 10, 4, atc="N05CD08"),
    ItemSpec("FENTANYL", "Fentanyl 50 µg/ml, 10 ml ampoule", "drug", "ampoule", 10, 4, atc="N01AH01"),
    ItemSpec("ROCURONIUM", "Rocuronium 10 mg/ml, 5 ml vial", "drug", "vial", 10, 2, atc="M03AC09"),
    ItemSpec("HEPARIN", "Heparin 5000 IU/ml, 5 ml vial", "drug", "vial", 10, 3, atc="B01AB01"),
    ItemSpec("MEROPENEM", "Meropenem 1 g powder for solution for injection, vial", "drug", "vial", 10, 4,
             atc="J01DH02"),
    ItemSpec("INF-PUMP", "Syringe infusion pump", "equipment", "pump", 1, None, 301),
    ItemSpec("TEST-LUNG", "Ventilator test lung (circuit check)", "equipment", "piece", 1, None, 302),
]
SPECS = {spec.code: spec for spec in ITEMS}


@dataclass(frozen=True)
class Flow:
    """How one item moves through a supplying organisation (all figures invented)."""

    item: str
    weekly: int                 # normal use, units per week
    issues_per_week: float      # how many requisitions a week, on average
    emergency_weeks: float | None = None  # emergency pool held, in weeks of normal use


@dataclass(frozen=True)
class Supplier:
    code: str
    user: str                   # the role whose demo user records the movements
    delivery_weekday: int       # 0 = Monday
    reorder_weeks: float        # a delivery is ordered when usable stock falls below this …
    order_up_to_weeks: float    # … and brings it back up to this
    flows: tuple[Flow, ...]
    counts_per_month: int


CENTRE = Supplier("HSO-FS", "supply_staff", 1, 3.0, 5.0, (
    Flow("GLOVE-NIT-M", 180_000, 1.2, 16),
    Flow("GLOVE-NIT-L", 70_000, 1.0),
    Flow("MASK-IIR", 50_000, 1.2, 12),
    Flow("RESP-FFP2", 5_000, 1.0, 16),
    Flow("RESP-FFP3", 2_000, 1.0, 12),
    Flow("GOWN-ISO", 12_000, 1.0, 16),
    Flow("VISOR", 1_200, 0.8, 24),
    Flow("GOGGLES", 240, 0.8),
    Flow("ETT-75", 350, 0.8, 12),
    Flow("IVC-20G", 5_000, 1.0, 12),
    Flow("INF-SET", 4_000, 1.0),
    Flow("SUCT-14", 700, 0.8, 12),
    # Kept below the 12-week minimum on purpose: a replenishment that has not come yet.
    Flow("HME-FILT", 1_800, 0.8, 9),
    Flow("SYR-50", 3_600, 1.0),
    Flow("INF-PUMP", 3, 0.5, 13),
    Flow("TEST-LUNG", 1, 0.3),
), counts_per_month=4)

HOSPITAL_PHARMACY = Supplier("SAP", "pharmacist", 3, 3.0, 4.5, (
    Flow("PROPOFOL", 1_200, 1.0, 8),
    Flow("NORADR", 800, 1.0),
    Flow("MIDAZOLAM", 600, 0.8, 8),
    Flow("FENTANYL", 700, 0.8),
    Flow("ROCURONIUM", 400, 0.8),
    Flow("HEPARIN", 500, 0.8),
    Flow("MEROPENEM", 900, 1.0, 8),
), counts_per_month=2)

# Emergency lots whose fate is the point of the demo; rotation leaves them alone.
# (supplier, item, expiry in days relative to the load date, weeks of normal use)
NEGLECTED_EMERGENCY_LOTS: list[tuple[str, str, int, float]] = [
    ("HSO-FS", "RESP-FFP3", 20, 4),    # expires within 30 days, too much to absorb in time
    ("HSO-FS", "MASK-IIR", 150, 3),    # expires within 180 days
    ("HSO-FS", "GOWN-ISO", -45, 3),    # expired and still on the shelf
    ("HSO-FS", "MASK-IIR", -100, 2),   # expired; disposed 90 days before the load date
    ("HSO-FS", "RESP-FFP2", -15, 3),   # shelf life extended 60 days before it would expire
    ("SAP", "PROPOFOL", 75, 2),        # expires within 90 days
]
EXPIRED_DISPOSAL_DAYS_AGO = 90
EXTENSION_DAYS_AGO = 60
QUARANTINE_DAYS_AGO = 40
REVERSAL_DAYS_AGO = 300
SURGE_DAYS_AGO = (130, 110)  # a respiratory-infection wave, from … to (days before the load date)
SURGE_ITEMS = ("GLOVE-NIT-M", "MASK-IIR", "RESP-FFP2", "RESP-FFP3", "GOWN-ISO", "VISOR")
SURGE_FROM_EMERGENCY = ("GLOVE-NIT-M", "VISOR")
ROTATION_DAYS_AGO = (330, 274, 218, 162, 106, 50)
ROTATION_HORIZON_DAYS = 450  # rotate an emergency lot once it expires within this
ROTATION_ALL_WITHIN_DAYS = 120  # … and all of it once it expires within this

# Stock placed at the hospitals: (days ago, trust, item, from pool, to pool, weeks of normal use)
TRANSFERS: list[tuple[int, str, str, str, str, float]] = [
    (340, "OUS", "GLOVE-NIT-M", EM, EM, 1.0),
    (320, "AHUS", "VISOR", EM, EM, 2.0),
    (290, "SI", "ETT-75", EM, EM, 1.0),
    (255, "VVHF", "MASK-IIR", OP, OP, 0.3),
    (230, "SSHF", "IVC-20G", OP, OP, 0.3),
    (200, "SOHF", "RESP-FFP2", OP, OP, 0.3),
    (170, "SIV", "GOWN-ISO", OP, OP, 0.3),
    (140, "STHF", "HME-FILT", OP, OP, 0.3),
    (75, "DIAK", "MASK-IIR", OP, OP, 0.2),
    (35, "LDS", "GLOVE-NIT-M", OP, OP, 0.2),
]

# Municipal PPE use per inhabitant per year (invented), one item per PPE group.
MUNICIPAL_USE_PER_INHABITANT = {
    "GLOVE-NIT-M": 18.0, "MASK-IIR": 3.0, "RESP-FFP2": 0.4, "GOWN-ISO": 1.2, "VISOR": 0.15,
}
MUNICIPAL_RECIPIENTS = ("Hjemmetjenesten", "Sykehjemmet", "Legevakten", "Helsestasjonen")
# Old stock from the pandemic years, used up first-expired-first-out:
# (municipality number, item, expiry in days relative to the load date)
MUNICIPAL_OLD_LOTS: list[tuple[str, str, int]] = [
    ("5503", "MASK-IIR", -60),     # expired; the remainder is disposed 20 days before the load date
    ("5601", "RESP-FFP2", -30),    # expired, still on the shelf
    ("5612", "GLOVE-NIT-M", -5),   # expired, still on the shelf
    ("5634", "GLOVE-NIT-M", 12),   # expires within 30 days
    ("5530", "GOWN-ISO", 70),      # expires within 90 days
    ("5501", "MASK-IIR", 160),     # expires within 180 days
]
MUNICIPAL_DISPOSAL = ("5503", "MASK-IIR", 20)  # (municipality, item, days before the load date)
QUARTER_DAYS = 365.25 / 4


def gtin13(reference: int) -> str:
    """A restricted-circulation GTIN-13 (prefix 200) for ``reference``, with its check digit."""
    payload = f"200{reference:09d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(payload)))
    return payload + str((10 - total % 10) % 10)


def municipality_code(number: str) -> str:
    return f"KOMMUNE-{number}"


def load(session: so.Session, *, today: dt.date | None = None) -> list[tuple[str, str, str, str | None]]:
    """Load the demo data (the caller checks that the database is empty) and return the demo
    users as (email, password, role, organisation code).

    ``today`` (default: today in Oslo) is the load date; the year of history ends the day
    before it. Everything is flushed into the caller's transaction, nothing is committed.
    """
    builder = _Builder(session, today or inventory.local_today(), random.Random(SEED))
    builder.build()
    return list(USERS)


@dataclass
class _MunicipalPlan:
    daily: float             # normal use per day
    final_quarters: float    # quarters of use held on the load date
    last_issue: dt.date      # use is recorded since this day

    @property
    def quarter(self) -> float:
        return self.daily * QUARTER_DAYS


class _Builder:
    def __init__(self, session: so.Session, today: dt.date, rng: random.Random) -> None:
        self.s = session
        self.today = today
        self.start = today - dt.timedelta(days=HISTORY_DAYS)
        self.rng = rng
        self.orgs: dict[str, Organisation] = {}
        self.depots: dict[str, Depot] = {}
        self.items: dict[str, Item] = {}
        self.users: dict[str, User] = {}
        self.lot_seq: Counter[str] = Counter()
        self.ref_seq: Counter[str] = Counter()
        self.protected: set[int] = set()           # lot ids that rotation leaves alone
        self.scenario_lots: dict[tuple[str, str, int], Lot] = {}
        self.requisition_due: dict[tuple[str, str], float] = {}
        self.municipal_daily: dict[tuple[str, str], float] = {}   # (municipality, item): use a day
        self.clock = dt.datetime.combine(self.start, dt.time(7), tzinfo=OSLO)

    def day(self, days_ago: int) -> dt.date:
        return self.today - dt.timedelta(days=days_ago)

    def open_day(self, day: dt.date, hour: int = 7) -> None:
        self.clock = dt.datetime.combine(day, dt.time(hour, self.rng.randrange(30)), tzinfo=OSLO)

    def tick(self) -> dt.datetime:
        """The next moment of the working day (postings of a day happen in order)."""
        self.clock += dt.timedelta(minutes=self.rng.randint(2, 9))
        return self.clock

    def ctx(self, role: str) -> inventory.Context:
        when = self.tick()
        return inventory.Context(self.users[role].id, when.astimezone(dt.timezone.utc), when.date())

    def reference(self, kind: str, day: dt.date) -> str:
        self.ref_seq[kind] += 1
        return f"DEMO-{kind}-{day:%y%m%d}-{self.ref_seq[kind]:04d}"

    def packs(self, item: Item, quantity: float, *, up: bool = False) -> int:
        """``quantity`` in whole packs of ``item``, at least one pack."""
        size = item.pack_size or 1
        n = math.ceil(quantity / size) if up else round(quantity / size)
        return max(1, n) * size

    def lines(self, depot: Depot, pool: str, item: Item) -> list[Balance]:
        return fefo.stock_lines(self.s, depot_id=depot.id, pool=pool, item_id=item.id)

    def usable_by_item(self, depot: Depot, pool: str, day: dt.date) -> dict[int, int]:
        """What FEFO could issue on ``day``, per item id: available lots not past their expiry."""
        rows = self.s.execute(
            sa.select(Lot.item_id, sa.func.sum(Balance.quantity)).join(Balance.lot)
            .where(Balance.depot_id == depot.id, Balance.pool == pool,
                   Lot.usable_on(day))
            .group_by(Lot.item_id))
        return {item_id: int(quantity) for item_id, quantity in rows}

    def usable(self, depot: Depot, pool: str, item: Item, day: dt.date) -> int:
        return int(self.s.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(Balance.quantity), 0)).join(Balance.lot)
            .where(Balance.depot_id == depot.id, Balance.pool == pool, Lot.item_id == item.id,
                   Lot.usable_on(day))) or 0)

    def expiry_for(self, item: Item, day: dt.date, low: float = 0.55, high: float = 0.95) -> dt.date | None:
        spec = SPECS[item.code]
        if spec.shelf_years is None:
            return None
        return day + dt.timedelta(days=int(spec.shelf_years * 365 * self.rng.uniform(low, high)))

    def receive(self, role: str, depot: Depot, item: Item, quantity: int, pool: str = OP, *,
                expiry: dt.date | None = None, reference: str | None = None) -> Lot:
        ctx = self.ctx(role)
        if expiry is None:
            expiry = self.expiry_for(item, ctx.today)
        self.lot_seq[item.code] += 1
        lot_number = f"DEMO-{ctx.today:%y%m}{self.lot_seq[item.code]:03d}"
        movements = inventory.receive(
            self.s, ctx, depot=depot, item=item, lot_number=lot_number, expiry=expiry,
            quantity=quantity, pool=pool, reference=reference or self.reference("DN", ctx.today))
        return movements[0].lot

    def issue(self, role: str, depot: Depot, item: Item, wanted: int, *, pool: str = OP,
              recipient: str | None = None, flag: str = IssueFlag.NORMAL.value) -> list[Movement]:
        """Issue FEFO, never more than is usable (a demo posting must not be refused)."""
        quantity = min(wanted, self.usable(depot, pool, item, self.clock.date()))
        if quantity <= 0:
            return []
        ctx = self.ctx(role)
        return inventory.issue(self.s, ctx, depot=depot, item=item, quantity=quantity, pool=pool,
                               recipient=recipient, flag=flag,
                               reference=self.reference("REQ", ctx.today))

    def build(self) -> None:
        self.organisations()
        self.catalogue()
        self.people()
        self.supply_year()
        for number, name, population in MUNICIPALITIES:
            self.municipal_year(number, population)
        self.coverage_targets()
        self.current_picture()

    def organisation(self, code: str, name: str, kind: str, parent: str | None = None,
                     population: int | None = None, depot: tuple[str, str] | None = None) -> None:
        self.orgs[code] = inventory.create_organisation(self.s, code=code, name=name, kind=kind,
                                                        parent=parent, population=population)
        if depot is not None:
            self.depots[code] = inventory.create_depot(self.s, code=depot[0], name=depot[1],
                                                       organisation=self.orgs[code])

    def organisations(self) -> None:
        hso_code, hso_name = REGION_HSO
        self.organisation(hso_code, hso_name, "region")
        code, name = SUPPLY_CENTRE
        self.organisation(code, name, "supply_centre", hso_code,
                          depot=(f"{code}-LAGER", "Forsyningssenteret, central warehouse (DEMO)"))
        code, name = PHARMACY
        self.organisation(code, name, "hospital_pharmacy", hso_code,
                          depot=(f"{code}-LAGER", "Sykehusapotekene, central drug store (DEMO)"))
        for code, name, _share in HEALTH_TRUSTS:
            self.organisation(code, name, "health_trust", hso_code,
                              depot=(f"{code}-LAGER", f"{name}, central store (DEMO)"))
        governor_code, governor_name = COUNTY_GOVERNOR
        self.organisation(governor_code, governor_name, "region")
        for number, name, population in MUNICIPALITIES:
            code = municipality_code(number)
            self.organisation(code, f"{name} kommune", "municipality", governor_code, population,
                              depot=(f"{code}-LAGER", f"{name} kommune, PPE store (DEMO)"))

    def catalogue(self) -> None:
        for spec in ITEMS:
            self.items[spec.code] = inventory.create_item(
                self.s, code=spec.code, name=spec.name, category=spec.category, unit=spec.unit,
                pack_size=spec.pack_size, gtin=gtin13(spec.gtin_ref) if spec.gtin_ref else None,
                atc=spec.atc, ppe_group=spec.ppe_group, has_expiry=spec.shelf_years is not None)

    def people(self) -> None:
        for email, password, role, org_code in USERS:
            self.users[role] = auth.create_user(
                self.s, email=email, password=password, name=USER_NAMES[role], role=role,
                organisation=self.orgs[org_code] if org_code else None)

    def supply_year(self) -> None:
        suppliers = (CENTRE, HOSPITAL_PHARMACY)
        rotation_days = {self.day(n) for n in ROTATION_DAYS_AGO}
        surge = (self.day(SURGE_DAYS_AGO[0]), self.day(SURGE_DAYS_AGO[1]))
        events = {
            self.day(REVERSAL_DAYS_AGO): self.mistaken_issue,
            self.day(EXPIRED_DISPOSAL_DAYS_AGO): self.dispose_expired_emergency_lot,
            self.day(EXTENSION_DAYS_AGO): self.extend_shelf_life,
            self.day(QUARANTINE_DAYS_AGO): self.quarantine_lot,
        }
        transfers = {self.day(t[0]): t for t in TRANSFERS}
        counted_months: set[tuple[int, int]] = {(self.start.year, self.start.month)}
        for offset in range(HISTORY_DAYS, 0, -1):
            day = self.day(offset)
            working = day.weekday() < 5
            for supplier in suppliers:
                self.open_day(day)
                if day == self.start:
                    self.opening_stock(supplier)
                if day.weekday() == supplier.delivery_weekday:
                    self.deliveries(supplier, day)
                if day in rotation_days:
                    self.rotate(supplier, day)
                if working:
                    self.requisitions(supplier, day, surge[0] <= day <= surge[1])
            # The afternoon, posted in the order it happens: transfers, one-off events, counts.
            if day in transfers:
                self.open_day(day, 14)
                self.place_at_hospital(*transfers[day][1:])
            if day in events:
                self.open_day(day, 15)
                events[day]()
            if working and (day.year, day.month) not in counted_months:
                counted_months.add((day.year, day.month))
                for supplier in suppliers:
                    self.open_day(day, 16)
                    self.cycle_count(self.depots[supplier.code], supplier.user,
                                     supplier.counts_per_month, "Monthly cycle count")

    def opening_stock(self, supplier: Supplier) -> None:
        depot = self.depots[supplier.code]
        for flow in supplier.flows:
            item = self.items[flow.item]
            total = flow.weekly * self.rng.uniform(3.0, 4.5)
            share = self.rng.uniform(0.3, 0.6)
            for part in (share, 1 - share):
                self.receive(supplier.user, depot, item, self.packs(item, total * part), OP,
                             expiry=self.expiry_for(item, self.start, 0.3, 0.8))
            if flow.emergency_weeks:
                self.opening_emergency_stock(supplier, flow)

    def opening_emergency_stock(self, supplier: Supplier, flow: Flow) -> None:
        depot, item = self.depots[supplier.code], self.items[flow.item]
        weeks = flow.emergency_weeks or 0
        for code, item_code, expires_in, lot_weeks in NEGLECTED_EMERGENCY_LOTS:
            if (code, item_code) == (supplier.code, flow.item):
                lot = self.receive(supplier.user, depot, item, self.packs(item, flow.weekly * lot_weeks), EM,
                                   expiry=self.today + dt.timedelta(days=expires_in))
                self.protected.add(lot.id)
                self.scenario_lots[(code, item_code, expires_in)] = lot
                weeks -= lot_weeks
        if weeks <= 0:
            return
        # Four lots with staggered expiry, so rotation always has one coming due.
        for low, high in ((0.18, 0.27), (0.35, 0.55), (0.6, 0.8), (0.85, 0.97)):
            self.receive(supplier.user, depot, item, self.packs(item, flow.weekly * weeks / 4), EM,
                         expiry=self.expiry_for(item, self.start, low, high))

    def deliveries(self, supplier: Supplier, day: dt.date) -> None:
        depot = self.depots[supplier.code]
        reference = self.reference("DN", day)
        on_hand = self.usable_by_item(depot, OP, day)
        for flow in supplier.flows:
            item = self.items[flow.item]
            usable = on_hand.get(item.id, 0)
            if usable < supplier.reorder_weeks * flow.weekly:
                wanted = supplier.order_up_to_weeks * flow.weekly - usable
                self.receive(supplier.user, depot, item, self.packs(item, wanted, up=True), OP,
                             reference=reference)

    def requisitions(self, supplier: Supplier, day: dt.date, surge: bool) -> None:
        depot = self.depots[supplier.code]
        trusts = [code for code, _name, _share in HEALTH_TRUSTS]
        weights = [share for _code, _name, share in HEALTH_TRUSTS]
        for flow in supplier.flows:
            item = self.items[flow.item]
            # A steady cadence of requisitions (not a coin toss per day), so that the use over
            # any quarter stays close to the normal weekly use the demo is built around.
            key = (supplier.code, flow.item)
            due = self.requisition_due.get(key, self.rng.random()) + flow.issues_per_week / 5
            self.requisition_due[key] = due
            if due >= 1:
                self.requisition_due[key] -= 1
                wanted = flow.weekly / flow.issues_per_week * self.rng.uniform(0.7, 1.3)
                self.issue(supplier.user, depot, item, self.packs(item, wanted),
                           recipient=self.rng.choices(trusts, weights)[0])
            if surge and flow.item in SURGE_ITEMS and self.rng.random() < 0.6:
                pool = EM if flow.item in SURGE_FROM_EMERGENCY and self.rng.random() < 0.4 else OP
                wanted = flow.weekly * self.rng.uniform(0.2, 0.5)
                self.issue(supplier.user, depot, item, self.packs(item, wanted), pool=pool,
                           recipient=self.rng.choices(trusts, weights)[0], flag=IssueFlag.SURGE.value)

    def rotate(self, supplier: Supplier, day: dt.date) -> None:
        """Move the next emergency lot into daily use before it expires; buy fresh stock for it."""
        depot = self.depots[supplier.code]
        for flow in supplier.flows:
            item = self.items[flow.item]
            if not flow.emergency_weeks or not item.has_expiry:
                continue
            candidates = [b for b in fefo.usable(self.lines(depot, EM, item), day)
                          if b.lot.id not in self.protected]
            if candidates and candidates[0].lot.expiry is not None:
                balance = candidates[0]
                lot, days_left = balance.lot, (candidates[0].lot.expiry - day).days
                if days_left <= ROTATION_HORIZON_DAYS:
                    # Small bites while there is time, the whole lot once expiry is close.
                    quantity = balance.quantity if days_left <= ROTATION_ALL_WITHIN_DAYS else min(
                        balance.quantity, self.packs(item, 2 * flow.weekly))
                    inventory.transfer(
                        self.s, self.ctx(supplier.user), from_depot=depot, from_pool=EM, to_depot=depot,
                        to_pool=OP, item=item, quantity=quantity, lot_number=lot.lot_number,
                        reference=self.reference("ROT", day),
                        reason="Rotation: emergency stock into daily use before it expires")
            target = flow.weekly * flow.emergency_weeks
            have = self.usable(depot, EM, item, day)
            if have < 0.95 * target:
                self.receive(supplier.user, depot, item, self.packs(item, target - have, up=True), EM,
                             expiry=self.expiry_for(item, day, 0.75, 0.95))

    def cycle_count(self, depot: Depot, role: str, lots: int, reason: str) -> None:
        """Count a few lots of ``depot``; most agree with the books, some are a little off."""
        day = self.clock.date()
        balances = list(self.s.scalars(
            sa.select(Balance).where(Balance.depot_id == depot.id, Balance.quantity > 0)
            .order_by(Balance.id)))
        for balance in self.rng.sample(balances, min(lots, len(balances))):
            item = balance.lot.item
            pack = item.pack_size or 1
            delta = self.rng.choice([0, 0, 0, -1, -2, 1, -pack, pack])
            inventory.adjust_to_count(
                self.s, self.ctx(role), depot=depot, pool=balance.pool, item=item,
                lot_number=balance.lot.lot_number, counted_quantity=max(0, balance.quantity + delta),
                reason=reason, reference=f"DEMO-COUNT-{day:%Y-%m}")

    def place_at_hospital(self, trust: str, item_code: str, from_pool: str, to_pool: str,
                          weeks: float) -> None:
        depot, item = self.depots[CENTRE.code], self.items[item_code]
        weekly = next(f.weekly for f in CENTRE.flows if f.item == item_code)
        quantity = min(self.packs(item, weekly * weeks),
                       self.usable(depot, from_pool, item, self.clock.date()))
        if quantity <= 0:
            return
        reason = ("Decentralised emergency stock at the hospital" if to_pool == EM
                  else "Buffer stock placed at the hospital")
        inventory.transfer(self.s, self.ctx(CENTRE.user), from_depot=depot, from_pool=from_pool,
                           to_depot=self.depots[trust], to_pool=to_pool, item=item, quantity=quantity,
                           reference=self.reference("TR", self.clock.date()), reason=reason)

    def mistaken_issue(self) -> None:
        """Issued to the wrong trust, reversed, and issued again to the right one."""
        depot, item = self.depots[CENTRE.code], self.items["IVC-20G"]
        wrong = self.issue(CENTRE.user, depot, item, self.packs(item, 1_000), recipient="SIV")
        for movement in wrong:
            inventory.reverse(
                self.s, self.ctx(CENTRE.user), movement=movement,
                reason="Issued to the wrong trust: the requisition came from Sykehuset Telemark")
        if wrong:
            self.issue(CENTRE.user, depot, item, -sum(m.quantity for m in wrong), recipient="STHF")

    def dispose_expired_emergency_lot(self) -> None:
        lot = self.scenario_lots[("HSO-FS", "MASK-IIR", -100)]
        self.dispose(CENTRE.code, CENTRE.user, lot, EM)

    def dispose(self, depot_code: str, role: str, lot: Lot, pool: str) -> None:
        depot = self.depots[depot_code]
        quantity = self.s.scalar(sa.select(Balance.quantity).where(
            Balance.lot_id == lot.id, Balance.depot_id == depot.id, Balance.pool == pool))
        if quantity:
            ctx = self.ctx(role)
            inventory.dispose(self.s, ctx, depot=depot, pool=pool, item=lot.item,
                              lot_number=lot.lot_number, quantity=quantity, reason="expired",
                              reference=self.reference("DISP", ctx.today))

    def extend_shelf_life(self) -> None:
        lot = self.scenario_lots[("HSO-FS", "RESP-FFP2", -15)]
        assert lot.expiry is not None
        inventory.extend_shelf_life(
            self.s, self.ctx(CENTRE.user), lot=lot, new_expiry=lot.expiry + dt.timedelta(days=365),
            reason="Manufacturer's stability data support one more year (demo)")

    def quarantine_lot(self) -> None:
        """Hold the largest operational lot of IV cannulas after a supplier safety notice."""
        depot, item = self.depots[CENTRE.code], self.items["IVC-20G"]
        lines = fefo.usable(self.lines(depot, OP, item), self.clock.date())
        if lines:
            lot = max(lines, key=lambda b: (b.quantity, b.lot.id)).lot
            inventory.set_lot_status(
                self.s, self.ctx(CENTRE.user), lot=lot, status="quarantined",
                reason="Supplier field safety notice: possible catheter tip defect, held pending "
                       "investigation (demo)")

    def municipal_year(self, number: str, population: int) -> None:
        """A year of PPE receipts, use and counts in one municipality, posted in date order.

        Receipts are sized so that the municipality ends the year holding ``factor`` quarters of
        its use (between a half and one and a half), so some meet the 3-month duty and some not.
        """
        code = municipality_code(number)
        depot = self.depots[code]
        role = "municipal_staff" if code == "KOMMUNE-5501" else "admin"
        factor = self.rng.uniform(0.5, 1.5)
        # Tromsø records use monthly, the towns every two months, the rest once a quarter.
        cadence = 30 if number == "5501" else 61 if population >= 10_000 else 91
        issue_days = sorted({self.today - dt.timedelta(days=1 + cadence * k)
                             for k in range(HISTORY_DAYS // cadence + 1)
                             if cadence * k + 1 <= HISTORY_DAYS - 7})
        receipt_days = [self.start] + [self.start + dt.timedelta(days=self.rng.randint(lo, hi))
                                       for lo, hi in ((110, 140), (235, 265))]
        plans: dict[str, _MunicipalPlan] = {}
        for item_code, per_inhabitant in MUNICIPAL_USE_PER_INHABITANT.items():
            daily = population * per_inhabitant * self.rng.uniform(0.8, 1.2) / 365.25
            plans[item_code] = _MunicipalPlan(daily, factor * self.rng.uniform(0.85, 1.15), self.start)
            self.municipal_daily[(code, item_code)] = daily
        # (day, order within the day, what, item, index)
        events: list[tuple[dt.date, int, str, str, int]] = []
        for item_code in plans:
            events += [(day, 0, "receipt", item_code, i) for i, day in enumerate(receipt_days)]
            events += [(day, 1, "issue", item_code, i) for i, day in enumerate(issue_days)]
            if (number, item_code) == MUNICIPAL_DISPOSAL[:2]:
                events.append((self.day(MUNICIPAL_DISPOSAL[2]), 2, "dispose", item_code, 0))
        if number == "5501":
            events += [(self.start + dt.timedelta(days=d), 3, "count", "", 0) for d in (91, 182, 273)]
        opened = None
        for day, order, what, item_code, index in sorted(events):
            if (day, order) != opened:
                self.open_day(day, 8 + 2 * order)
                opened = (day, order)
            if what == "count":
                self.cycle_count(depot, role, 2, "Quarterly stock count")
                continue
            item, plan = self.items[item_code], plans[item_code]
            if what == "receipt":
                following = receipt_days[index + 1] if index + 1 < len(receipt_days) else self.today
                level = plan.final_quarters if following == self.today else self.rng.uniform(0.3, 0.9)
                # Use is recorded in arrears, so plan for the issues that will actually be
                # posted before the next delivery.
                coming = sum(plan.daily * (d - previous).days
                             for previous, d in zip([self.start] + issue_days, issue_days)
                             if day <= d < following)
                wanted = level * plan.quarter + coming - self.usable(depot, OP, item, day)
                if index == 0:
                    wanted -= self.old_municipal_lot(number, role, depot, item, plan)
                if wanted > 0:
                    self.receive(role, depot, item, self.packs(item, wanted, up=True), OP,
                                 reference=self.reference("PO", day))
            elif what == "issue":
                use = plan.daily * (day - plan.last_issue).days * self.rng.uniform(0.85, 1.15)
                plan.last_issue = day
                self.issue(role, depot, item, self.packs(item, use),
                           recipient=self.rng.choice(MUNICIPAL_RECIPIENTS))
            else:
                self.dispose(code, role, self.scenario_lots[(code, item_code, 0)], OP)

    def old_municipal_lot(self, number: str, role: str, depot: Depot, item: Item,
                          plan: _MunicipalPlan) -> int:
        """Receive the municipality's old (pandemic) lot of ``item`` if it has one; its quantity."""
        for old_number, item_code, expires_in in MUNICIPAL_OLD_LOTS:
            if (old_number, item_code) == (number, item.code):
                expiry = self.today + dt.timedelta(days=expires_in)
                used_before = plan.daily * (min(expiry, self.today) - self.start).days
                quantity = self.packs(item, used_before + 0.35 * plan.quarter, up=True)
                lot = self.receive(role, depot, item, quantity, OP, expiry=expiry,
                                   reference=self.reference("OPENING", self.start))
                self.scenario_lots[(municipality_code(number), item.code, 0)] = lot
                return quantity
        return 0

    def coverage_targets(self) -> None:
        """Baselines, item lists and an item policy, so coverage has something to measure by.

        Municipalities enter their annual PPE use for the three years before this one (§ 8a);
        a few had a deviating year (a bad respiratory season) and enter the year before it too.
        The supply centre keeps an emergency list and relies on baselines computed from its issue
        history, except for infusion pumps, whose use is entered by hand. The hospital pharmacy
        keeps its critical drug list with daily use, per-drug minimum days and alternatives.
        """
        self.open_day(self.today - dt.timedelta(days=1), 15)
        year = self.today.year
        valid_from = dt.date(year, 1, 1)
        admin = self.ctx("admin")
        for number, _name, _population in MUNICIPALITIES:
            code = municipality_code(number)
            deviating = [year - 2] if int(number) % 4 == 1 else []
            for item_code in MUNICIPAL_USE_PER_INHABITANT:
                yearly = self.municipal_daily[(code, item_code)] * 365.25
                use = {y: round(yearly * self.rng.uniform(0.9, 1.1)) for y in range(year - 4, year)}
                for y in deviating:
                    use[y] = round(use[y] * 2.5)  # the deviating year: far above normal
                if not deviating:
                    del use[year - 4]
                coverage.set_annual_baseline(
                    self.s, admin, organisation=self.orgs[code], item=self.items[item_code],
                    annual_use=use, deviating_years=deviating, valid_from=valid_from)

        centre = self.orgs[CENTRE.code]
        staff = self.ctx(CENTRE.user)
        emergency = coverage.item_list_for(self.s, centre, EMERGENCY_LIST, name="Emergency list (beredskapslager)")
        for flow in CENTRE.flows:
            if flow.emergency_weeks:
                coverage.save_list_entry(self.s, staff, item_list=emergency, item=self.items[flow.item])
        coverage.set_manual_baseline(self.s, staff, organisation=centre, item=self.items["INF-PUMP"],
                                      weekly_use=3, valid_from=self.start,
                                      note="Replacement rate agreed with the trusts (demo)")
        coverage.save_policy(self.s, name="Supply centre emergency stock: visors 24 weeks",
                              organisation_kind="supply_centre", item=self.items["VISOR"],
                              pool="emergency", min_days=168, target_days=168)

        pharmacy = self.orgs[HOSPITAL_PHARMACY.code]
        pharmacist = self.ctx(HOSPITAL_PHARMACY.user)
        drugs = coverage.item_list_for(self.s, pharmacy, CRITICAL_DRUG_LIST, name="Critical drug list")
        settings = {  # item: (minimum days or None for the policy's 14, criticality, alternatives, note)
            "PROPOFOL": (None, "high", ["MIDAZOLAM"], "Sedation in intensive care."),
            "MIDAZOLAM": (100, "high", ["PROPOFOL"],
                          "Supplier shortage notice (demo): hold 100 days until further notice."),
            "NORADR": (21, "high", [], "No substitute on the list."),
            "FENTANYL": (None, "high", [], None),
            "ROCURONIUM": (None, "medium", [], None),
            "HEPARIN": (None, "medium", [], None),
            "MEROPENEM": (None, "high", [], "Reserve antibiotic."),
        }
        for flow in HOSPITAL_PHARMACY.flows:
            min_days, criticality, alternatives, note = settings[flow.item]
            item = self.items[flow.item]
            coverage.save_list_entry(self.s, pharmacist, item_list=drugs, item=item, min_days=min_days,
                                      criticality=criticality, note=note,
                                      alternatives=[self.items[a] for a in alternatives])
            coverage.set_manual_baseline(self.s, pharmacist, organisation=pharmacy, item=item,
                                          weekly_use=flow.weekly, valid_from=self.start,
                                          note="Daily use from the pharmacy's consumption statistics (demo)")

    def current_picture(self) -> None:
        """Rotation tasks and alerts as the scheduler would have left them on the load date."""
        rotation.sync_tasks(self.s, today=self.today)
        alerts.full_scan(self.s, today=self.today)
        # Everything is evaluated: nothing is left for the check before commit to redo.
        self.s.info.pop(inventory.STOCK_CHANGED, None)
