"""The duties people are held to, from coverage (no Flask): a municipality's 3-month PPE duty
(each of the five PPE groups covered to its target) and a hospital pharmacy's critical drug list
(each drug covered to the list's or its own minimum, with alternatives when one runs short)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.coverage import arithmetic
from stockpile.coverage import services as coverage
from stockpile.coverage.models import (CRITICAL_DRUG_LIST, Baseline, BaselineSource, ItemList,
                                       ItemListChange, ItemListEntry, PolicyPool)
from stockpile.coverage.services import CoverageRow, ItemCoverage, Status
from stockpile.errors import NotFound, field_error
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Category, Item, Organisation, PPEGroup

CRITICAL_DRUG_LIST_NAME = "Critical drug list"
PPE_GROUPS = [group.value for group in PPEGroup]


def requirement(row: CoverageRow) -> int | None:
    """Units the target asks for: ``target_days · r``, rounded up (so shortfall = this − usable)."""
    rate = row.rate
    return None if rate is None else math.ceil(row.target_days * rate)


@dataclass(frozen=True)
class GroupDuty:
    """One of the five PPE groups at one municipality: its items' rows and whether it is met."""

    group: str
    rows: tuple[CoverageRow, ...]

    @property
    def usable(self) -> int:
        return sum(row.usable for row in self.rows)

    @property
    def without_baseline(self) -> list[CoverageRow]:
        return [row for row in self.rows if row.rate is None]

    @property
    def requirement(self) -> int | None:
        """The group's 3-month requirement; unknown while an item has no baseline."""
        if not self.rows or self.without_baseline:
            return None
        return sum(requirement(row) or 0 for row in self.rows)

    @property
    def days(self) -> Fraction | None:
        if not self.rows or self.without_baseline:
            return None
        return arithmetic.coverage_days(self.usable, sum((row.rate for row in self.rows), Fraction(0)))

    @property
    def weeks(self) -> float | None:
        return arithmetic.weeks(self.days)

    @property
    def shortfall(self) -> int:
        """What to order: the items' shortfalls added up (a surplus of one item is not
        counted against another's shortfall, as each item's own target must be met)."""
        return sum(row.shortfall or 0 for row in self.rows)

    @property
    def met(self) -> bool:
        return (self.usable > 0 and not self.without_baseline
                and all(row.status in (Status.OK, Status.OVERSTOCK) for row in self.rows))


@dataclass(frozen=True)
class PpeDuty:
    """The verdict for one municipality on one day: met when each of the five groups is."""

    organisation: Organisation
    evaluated_on: dt.date
    groups: tuple[GroupDuty, ...]
    not_counted: tuple[CoverageRow, ...]  # PPE without a PPE group: outside the duty

    @property
    def met(self) -> bool:
        return all(group.met for group in self.groups)

    @property
    def failing(self) -> list[GroupDuty]:
        return [group for group in self.groups if not group.met]

    @property
    def order_lines(self) -> list[CoverageRow]:
        return [row for group in self.groups for row in group.rows if row.shortfall]


def assess_ppe_duty(organisation: Organisation, rows: Iterable[CoverageRow], evaluated_on: dt.date) -> PpeDuty:
    """Group the organisation's coverage rows (both pools) into the five PPE groups."""
    by_group: dict[str, list[CoverageRow]] = {group: [] for group in PPE_GROUPS}
    not_counted = []
    for row in rows:
        if row.organisation.id != organisation.id or row.pool != PolicyPool.ALL:
            continue
        if row.item.ppe_group in by_group:
            by_group[row.item.ppe_group].append(row)
        elif row.item.category == Category.PPE:
            not_counted.append(row)
    groups = tuple(GroupDuty(group, tuple(sorted(found, key=lambda r: (r.item.name, r.item.code))))
                   for group, found in by_group.items())
    return PpeDuty(organisation, evaluated_on, groups, tuple(not_counted))


def packs(shortfall: int, pack_size: int | None) -> int | None:
    """Whole packs that cover ``shortfall`` units; ``None`` when the pack size is not known."""
    return math.ceil(shortfall / pack_size) if pack_size else None


def ppe_duty(session: so.Session, organisation: Organisation, today: dt.date) -> PpeDuty:
    """The municipality's PPE duty on ``today``, from its coverage of both pools together."""
    rows = coverage.evaluate(session, [organisation], today=today, pool=PolicyPool.ALL.value)
    return assess_ppe_duty(organisation, rows, today)


def ppe_items(session: so.Session) -> list[Item]:
    return list(session.scalars(sa.select(Item).where(Item.ppe_group.is_not(None)).order_by(Item.name, Item.code)))


def newest_annual_baseline(session: so.Session, organisation: Organisation, item_code: str) -> Baseline | None:
    """The § 8a baseline last entered for the item at the organisation (to fill the form from)."""
    return session.scalar(
        sa.select(Baseline).join(Baseline.item)
        .where(Baseline.organisation_id == organisation.id, Item.code == item_code,
               Baseline.source == BaselineSource.ANNUAL_3Y.value)
        .order_by(Baseline.valid_from.desc(), Baseline.id.desc()).limit(1))


@dataclass(frozen=True)
class AnnualUseSaved:
    item: Item
    baseline: Baseline
    manual_in_force: coverage.StoredBaseline | None  # a weekly use by hand that still counts instead


def save_annual_use(session: so.Session, ctx: inventory.Context, *, organisation: Organisation,
                    item_code: str, annual_use: dict[int, int], deviating_years: Sequence[int]) -> AnnualUseSaved:
    """Record a PPE item's annual use (§ 8a) at the municipality; says when a weekly use entered
    by hand stays in force over it."""
    item = inventory.by_code(session, Item, item_code, field="item")
    if item.ppe_group is None:
        raise field_error("item", f"{item.name} is not in one of the five PPE groups.")
    baseline = coverage.set_annual_baseline(session, ctx, organisation=organisation, item=item,
                                            annual_use=annual_use, deviating_years=deviating_years)
    manual = coverage.stored_baselines(session, [organisation.id], baseline.valid_from, [item.id]).get(
        (organisation.id, item.id, BaselineSource.MANUAL.value))
    return AnnualUseSaved(item, baseline, manual)


def drug_list(session: so.Session, organisation: Organisation) -> ItemList | None:
    """The pharmacy's list with its entries, alternatives and history loaded (None before the
    first drug is added: reading creates nothing)."""
    return session.scalar(
        sa.select(ItemList).where(ItemList.organisation_id == organisation.id,
                                  ItemList.code == CRITICAL_DRUG_LIST)
        .options(so.selectinload(ItemList.entries).selectinload(ItemListEntry.alternatives),
                 so.selectinload(ItemList.entries).joinedload(ItemListEntry.item),
                 so.selectinload(ItemList.changes).joinedload(ItemListChange.item),
                 so.selectinload(ItemList.changes).joinedload(ItemListChange.recorded_by)))


def drugs(session: so.Session) -> list[Item]:
    return list(session.scalars(sa.select(Item).where(Item.category == Category.DRUG.value)
                                .order_by(Item.name, Item.code)))


def list_default_min_days(session: so.Session, organisation: Organisation) -> Fraction | None:
    """The minimum of the list's policy at this pharmacy (14 days as seeded): what a drug
    without its own minimum is held to."""
    policy = coverage.list_policy(session, organisation, CRITICAL_DRUG_LIST)
    return arithmetic.exact(policy.min_days) if policy is not None else None


@dataclass(frozen=True)
class DrugLine:
    entry: ItemListEntry
    row: CoverageRow | None   # None when no policy reaches the drug (e.g. a deactivated policy)
    falls_below_on: dt.date | None

    @property
    def daily_use(self) -> Fraction | None:
        return self.row.baseline.weekly_use / 7 if self.row is not None and self.row.baseline else None


@dataclass(frozen=True)
class CriticalDrugs:
    """The pharmacy's list as it stands on a day: a line per drug, and the coverage of the
    alternatives of each drug below its minimum."""

    item_list: ItemList | None
    lines: list[DrugLine]
    alternative_coverage: dict[int, ItemCoverage]
    default_min_days: Fraction | None

    @property
    def history(self) -> list[ItemListChange]:
        return sorted(self.item_list.changes if self.item_list else [], key=lambda c: c.id, reverse=True)


def critical_drugs(session: so.Session, organisation: Organisation, today: dt.date) -> CriticalDrugs:
    item_list = drug_list(session, organisation)
    entries = sorted(item_list.entries if item_list else [], key=lambda e: (e.item.name, e.item.code))
    rows: dict[int, CoverageRow] = {}
    for row in coverage.evaluate(session, [organisation], today=today):
        on_list = row.policy.item_list == CRITICAL_DRUG_LIST
        if row.item.id not in rows or on_list:
            rows[row.item.id] = row
    lines = [DrugLine(e, rows.get(e.item_id),
                      coverage.falls_below_min_on(rows[e.item_id]) if e.item_id in rows else None)
             for e in entries]
    below = [line for line in lines if line.row is not None and line.row.status is Status.BELOW_MIN]
    alternatives = {a.id: a for line in below for a in line.entry.alternatives}
    return CriticalDrugs(item_list, lines,
                         coverage.item_coverage(session, organisation, alternatives.values(), today=today),
                         list_default_min_days(session, organisation))


def weekly_from_daily(daily: Decimal) -> Decimal:
    """Baselines hold weekly use to four decimals."""
    return (daily * 7).quantize(Decimal("0.0001"))


def _items_by_code(session: so.Session, codes: Sequence[str], field: str) -> list[Item]:
    wanted = [c.strip() for c in codes if c and c.strip()]
    found = {i.code: i for i in session.scalars(sa.select(Item).where(Item.code.in_(wanted)))} if wanted else {}
    missing = [c for c in wanted if c not in found]
    if missing:
        message = f"No item with code {', '.join(missing)}."
        raise NotFound(message, fields={field: [message]})
    return [found[c] for c in wanted]


@dataclass(frozen=True)
class DrugSaved:
    """What saving a drug's entry changed: whether it was added, the list's version after, and
    the weekly use set from its daily use (None when that did not change)."""

    item: Item
    added: bool
    list_changed: bool
    version: int
    weekly_use: Decimal | None


def save_drug(session: so.Session, ctx: inventory.Context, *, organisation: Organisation, item_code: str,
              daily_use: Decimal | None, min_days: Decimal | None, criticality: str | None,
              alternative_codes: Sequence[str], note: str | None) -> DrugSaved:
    """Add the drug to the pharmacy's critical drug list or change its entry and, when given,
    its daily use (a weekly baseline entered by hand)."""
    item = inventory.by_code(session, Item, item_code, field="item")
    if item.category != Category.DRUG:
        raise field_error("item", f"{item.name} is not a drug; the critical drug list holds drugs.")
    alternatives = _items_by_code(session, alternative_codes, "alternatives")
    not_drugs = [a.name for a in alternatives if a.category != Category.DRUG]
    if not_drugs:
        raise field_error("alternatives", f"Only drugs can substitute: {', '.join(not_drugs)} is not one.")
    item_list = coverage.item_list_for(session, organisation, CRITICAL_DRUG_LIST, name=CRITICAL_DRUG_LIST_NAME)
    was_on_list = any(e.item_id == item.id for e in item_list.entries)
    version = item_list.version
    coverage.save_list_entry(session, ctx, item_list=item_list, item=item, min_days=min_days,
                             criticality=criticality or None, alternatives=alternatives, note=note)
    weekly = None
    if daily_use is not None:
        wanted = weekly_from_daily(daily_use)
        manual = coverage.stored_baselines(session, [organisation.id], ctx.today, [item.id]).get(
            (organisation.id, item.id, BaselineSource.MANUAL.value))
        if manual is None or manual.weekly_use != wanted:
            coverage.set_manual_baseline(session, ctx, organisation=organisation, item=item,
                                         weekly_use=wanted, note="Daily use from the critical drug list")
            weekly = wanted
    return DrugSaved(item, not was_on_list, item_list.version != version, item_list.version, weekly)


def remove_drug(session: so.Session, ctx: inventory.Context, *, organisation: Organisation,
                item_code: str) -> tuple[Item, int]:
    """Take the drug off the pharmacy's list; the drug and the list's new version."""
    item = inventory.by_code(session, Item, item_code, field="item")
    item_list = drug_list(session, organisation)
    if item_list is None:
        raise NotFound(f"{organisation.name} has no critical drug list yet.")
    coverage.remove_list_entry(session, ctx, item_list=item_list, item=item)
    return item, item_list.version
