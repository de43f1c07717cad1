"""The numbers of DESIGN.md §3, as plain functions of stock, use and dates.

Coverage turns usable stock into days (and weeks) of normal use; expiry-aware coverage runs the
stock forward FEFO at the daily rate and counts what expires before it can be used. Arithmetic
is exact (``Fraction``) so a lot that is used up exactly on its expiry day is not called at risk
by a rounding error; results are converted to floats only when reported.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

Number = int | float | Decimal | Fraction


class Status(enum.StrEnum):
    BELOW_MIN = "below_min"
    BELOW_TARGET = "below_target"
    OK = "ok"
    OVERSTOCK = "overstock"
    NO_BASELINE = "no_baseline"


def exact(value: Number) -> Fraction:
    """A number as an exact fraction; floats via their shortest decimal form (400.1 → 4001/10)."""
    if isinstance(value, float):
        return Fraction(repr(value))
    return Fraction(value)


def daily_rate(weekly_use: Number | None, factor: Number = 1) -> Fraction | None:
    """``r = w / 7`` (times a scenario's demand factor); ``None`` when there is no use to measure by."""
    if weekly_use is None:
        return None
    rate = exact(weekly_use) * exact(factor) / 7
    return rate if rate > 0 else None


def coverage_days(usable: int, rate: Fraction | None) -> Fraction | None:
    """``U / r``; ``None`` (unknown, never infinite) without a positive rate."""
    return None if rate is None else Fraction(usable) / rate


def status(days: Fraction | None, min_days: Number, target_days: Number,
           max_days: Number | None = None) -> Status:
    if days is None:
        return Status.NO_BASELINE
    if days < exact(min_days):
        return Status.BELOW_MIN
    if days < exact(target_days):
        return Status.BELOW_TARGET
    if max_days is not None and days > exact(max_days):
        return Status.OVERSTOCK
    return Status.OK


def shortfall(usable: int, rate: Fraction | None, target_days: Number) -> int | None:
    """Units missing to reach the target: ``max(0, ceil(target_days · r − U))``."""
    if rate is None:
        return None
    return max(0, math.ceil(exact(target_days) * rate - usable))


@dataclass(frozen=True)
class LotQuantity:
    expiry: dt.date | None
    quantity: int


@dataclass(frozen=True)
class ExpiryAware:
    days: Fraction
    at_risk: Fraction

    @property
    def at_risk_units(self) -> int:
        """Quantity at risk of expiry, rounded to whole units (half up)."""
        return math.floor(self.at_risk + Fraction(1, 2))


def expiry_aware(lots: Iterable[LotQuantity], rate: Fraction | None, today: dt.date) -> ExpiryAware | None:
    """Days until usable stock runs out at rate ``r`` if nothing arrives, FEFO, lots lost at the
    end of their expiry day; and the quantity that expires before it can be used.

    ``lots`` are the usable lots (available, not expired on ``today``). Lots expiring on the
    same day are taken one after the other, so use is never counted twice.
    """
    if rate is None:
        return None
    ordered = sorted(lots, key=lambda lot: (lot.expiry is None, lot.expiry or dt.date.max))
    t = Fraction(0)
    at_risk = Fraction(0)
    for lot in ordered:
        if lot.quantity <= 0:
            continue
        q = Fraction(lot.quantity)
        if lot.expiry is None:
            t += q / rate
            continue
        d = (lot.expiry - today).days + 1  # usable through the end of its expiry day
        if t >= d:
            at_risk += q
        elif t + q / rate <= d:
            t += q / rate
        else:
            used = (d - t) * rate
            at_risk += q - used
            t = Fraction(d)
    return ExpiryAware(t, at_risk)


def weeks(days: Fraction | None) -> float | None:
    """Days as weeks with one decimal, as shown on the pages and in the API."""
    return None if days is None else round(float(days / 7), 1)


# --- from the database: baselines in force, policies that apply, coverage rows ------------

import sqlalchemy as sa  # noqa: E402  (the arithmetic above needs no database)
import sqlalchemy.orm as so  # noqa: E402

from stockpile.inventory.models import (Balance, Baseline, BaselineSource, Depot, Item,  # noqa: E402
                                        ItemList, ItemListEntry, IssueFlag, Lot, LotStatus,
                                        Movement, MovementKind, Organisation, Policy, PolicyPool,
                                        Pool, Scenario)

DEFAULT_WINDOW_WEEKS = 13
MIN_IN_STOCK_DAYS = 28  # fewer than 4 in-stock weeks of history: no computed baseline


@dataclass(frozen=True)
class BaselineInForce:
    weekly_use: Fraction
    source: str
    valid_from: dt.date | None
    explanation: str
    years_used: list[int] | None = None
    years_replaced: dict[str, int] | None = None


@dataclass(frozen=True)
class ComputedUse:
    """Normal issues over a trailing window, and the days in it when the item was in stock."""

    issued: int
    in_stock_days: int
    window_days: int

    def baseline(self) -> BaselineInForce | None:
        if self.in_stock_days < MIN_IN_STOCK_DAYS:
            return None
        weekly = Fraction(self.issued) * 7 / self.in_stock_days
        left_out = self.window_days - self.in_stock_days
        return BaselineInForce(
            weekly, BaselineSource.COMPUTED.value, None,
            f"{self.issued} issued (normal) over {self.in_stock_days} in-stock days of the last "
            f"{self.window_days}" + (f"; {left_out} stock-out days left out" if left_out else ""))

    def missing_reason(self) -> str:
        return (f"Only {self.in_stock_days} in-stock days of issue history in the last "
                f"{self.window_days} (at least {MIN_IN_STOCK_DAYS} needed for a computed baseline).")


def stored_baselines(session: so.Session, organisation_ids: Iterable[int], today: dt.date,
                     item_ids: Iterable[int] | None = None) -> dict[tuple[int, int, str], Baseline]:
    """The newest manual and § 8a baseline valid on ``today`` per (organisation, item, source)."""
    stmt = (sa.select(Baseline).where(Baseline.organisation_id.in_(list(organisation_ids)),
                                      Baseline.valid_from <= today)
            .order_by(Baseline.valid_from, Baseline.id))
    if item_ids is not None:
        stmt = stmt.where(Baseline.item_id.in_(list(item_ids)))
    found: dict[tuple[int, int, str], Baseline] = {}
    for baseline in session.scalars(stmt):
        found[(baseline.organisation_id, baseline.item_id, baseline.source)] = baseline  # newest last
    return found


def computed_use(session: so.Session, organisation_ids: Iterable[int], today: dt.date,
                 window_weeks: int = DEFAULT_WINDOW_WEEKS,
                 item_ids: Iterable[int] | None = None) -> dict[tuple[int, int], ComputedUse]:
    """Per (organisation, item): units issued with flag ``normal`` in the ``window_weeks`` before
    ``today``, and the days of that window on which usable operational stock was on hand.

    A day counts as in stock when usable stock (lots not expired on that day) was on hand at its
    start, or when something was issued that day. Two queries for all pairs: opening stock per
    lot, and the window's movements; then one pass per pair.
    """
    org_ids = list(organisation_ids)
    start = today - dt.timedelta(weeks=window_weeks)
    window_days = (today - start).days
    tz_start = dt.datetime.combine(start, dt.time(), tzinfo=dt.timezone.utc)
    tz_end = dt.datetime.combine(today, dt.time(), tzinfo=dt.timezone.utc)
    scope = [Depot.organisation_id.in_(org_ids), Movement.pool == Pool.OPERATIONAL.value]
    if item_ids is not None:
        scope.append(Lot.item_id.in_(list(item_ids)))
    base = sa.select().select_from(Movement).join(Movement.depot).join(Movement.lot).where(*scope)
    opening = session.execute(
        base.add_columns(Depot.organisation_id, Lot.item_id, Lot.expiry, sa.func.sum(Movement.quantity))
        .where(Movement.occurred_at < tz_start)
        .group_by(Depot.organisation_id, Lot.item_id, Lot.id, Lot.expiry))
    window = session.execute(
        base.add_columns(Depot.organisation_id, Lot.item_id, Lot.expiry, Movement.occurred_at,
                         Movement.quantity, Movement.kind, Movement.flag)
        .where(Movement.occurred_at >= tz_start, Movement.occurred_at < tz_end)
        .order_by(Movement.occurred_at))

    lots: dict[tuple[int, int], list[list]] = {}
    for org_id, item_id, expiry, quantity in opening:
        if quantity:
            lots.setdefault((org_id, item_id), []).append([expiry, int(quantity), None])
    events: dict[tuple[int, int], list[tuple[dt.date, dt.date | None, int, bool]]] = {}
    for org_id, item_id, expiry, occurred_at, quantity, kind, flag in window:
        normal_issue = kind == MovementKind.ISSUE.value and flag == IssueFlag.NORMAL.value
        day = occurred_at.date()
        events.setdefault((org_id, item_id), []).append((day, expiry, int(quantity), normal_issue))

    result: dict[tuple[int, int], ComputedUse] = {}
    for key in set(lots) | set(events):
        stock: dict[dt.date | None, int] = {}
        for expiry, quantity, _ in lots.get(key, []):
            stock[expiry] = stock.get(expiry, 0) + quantity
        by_day: dict[dt.date, list[tuple[dt.date | None, int, bool]]] = {}
        for day, expiry, quantity, normal_issue in events.get(key, []):
            by_day.setdefault(day, []).append((expiry, quantity, normal_issue))
        issued = 0
        in_stock = 0
        for offset in range(window_days):
            day = start + dt.timedelta(days=offset)
            usable_at_start = sum(q for expiry, q in stock.items() if q > 0 and (expiry is None or expiry >= day))
            issued_today = False
            for expiry, quantity, normal_issue in by_day.get(day, []):
                stock[expiry] = stock.get(expiry, 0) + quantity
                if normal_issue:
                    issued -= quantity  # issues are negative; their reversals positive
                    issued_today = issued_today or quantity < 0
            if usable_at_start > 0 or issued_today:
                in_stock += 1
        result[key] = ComputedUse(max(issued, 0), in_stock, window_days)
    return result


def baseline_in_force(stored: dict[tuple[int, int, str], Baseline], computed: dict[tuple[int, int], ComputedUse],
                      organisation_id: int, item_id: int) -> tuple[BaselineInForce | None, str]:
    """The baseline that counts, and why: a current manual one wins, then § 8a, then computed."""
    manual = stored.get((organisation_id, item_id, BaselineSource.MANUAL.value))
    if manual is not None:
        return (BaselineInForce(exact(manual.weekly_use), manual.source, manual.valid_from,
                                f"Entered by hand, valid from {manual.valid_from.isoformat()}"
                                + (f": {manual.note}" if manual.note else "")), "")
    annual = stored.get((organisation_id, item_id, BaselineSource.ANNUAL_3Y.value))
    if annual is not None:
        years = ", ".join(str(y) for y in annual.years_used or [])
        replaced = "; ".join(f"{year} replaced by {by}" for year, by in (annual.years_replaced or {}).items())
        # Recomputed from the years stored, exactly (the column holds a rounded figure).
        weekly = (Fraction(sum(int((annual.annual_use or {})[str(y)]) for y in annual.years_used or []), 3)
                  / (Fraction(36525, 100) / 7)) if annual.years_used else exact(annual.weekly_use)
        return (BaselineInForce(weekly, annual.source, annual.valid_from,
                                f"A quarter of the mean annual use of {years}" + (f" ({replaced})" if replaced else ""),
                                annual.years_used, annual.years_replaced), "")
    use = computed.get((organisation_id, item_id))
    if use is not None and (found := use.baseline()) is not None:
        return found, ""
    reason = use.missing_reason() if use is not None else "No baseline entered and no issue history."
    return None, reason


def annual_3y(annual_use: dict[int, int], year: int, deviating: Iterable[int] = ()) -> tuple[Fraction, list[int], dict[str, int]]:
    """§ 8a: weekly use from the three calendar years before ``year``.

    Each deviating year is replaced by the nearest earlier year that is not deviating itself.
    Returns (weekly use, years used, {replaced year: replacement}). ``ValueError`` names a
    missing year.
    """
    deviating = set(deviating)
    used: list[int] = []
    replaced: dict[str, int] = {}
    for wanted in (year - 3, year - 2, year - 1):
        chosen = wanted
        while chosen in deviating or chosen in used:
            chosen -= 1
        if chosen != wanted:
            replaced[str(wanted)] = chosen
        if chosen not in annual_use:
            raise ValueError(f"annual use for {chosen} is needed"
                             + (f" (in place of {wanted})" if chosen != wanted else ""))
        used.append(chosen)
    mean = Fraction(sum(annual_use[y] for y in used), 3)
    return mean / (Fraction(36525, 100) / 7), sorted(used), replaced


@dataclass(frozen=True)
class CoverageRow:
    """One organisation × item × policy: the numbers of DESIGN.md §3 for the API and pages."""

    organisation: Organisation
    item: Item
    policy: Policy
    pool: str
    usable: int
    baseline: BaselineInForce | None
    no_baseline_reason: str
    factor: Fraction
    min_days: Fraction
    target_days: Fraction
    max_days: Fraction | None
    days: Fraction | None
    expiry: ExpiryAware | None
    status: Status
    shortfall: int | None
    lots: tuple[LotQuantity, ...]
    evaluated_on: dt.date

    @property
    def rate(self) -> Fraction | None:
        return daily_rate(self.baseline.weekly_use, self.factor) if self.baseline else None

    @property
    def weeks(self) -> float | None:
        return weeks(self.days)

    @property
    def runs_below_min_on(self) -> dt.date | None:
        """The day coverage falls below the minimum at this rate if nothing arrives."""
        if self.days is None:
            return None
        spare = self.days - self.min_days
        return self.evaluated_on + dt.timedelta(days=max(0, math.floor(spare)))


def _matches(policy: Policy, org: Organisation) -> bool:
    return policy.organisation_id == org.id if policy.organisation_id else policy.organisation_kind == org.kind


def _specificity(policy: Policy) -> tuple[int, int]:
    item_scope = 3 if policy.item_id else 2 if policy.item_list else 1
    return item_scope, 1 if policy.organisation_id else 0


def scenario_factors(session: so.Session, name: str | None) -> dict[tuple[str, int | str], Fraction]:
    """``{("item", id) | ("category", name): factor}`` of the named scenario (empty for none)."""
    if not name:
        return {}
    scenario = session.scalar(sa.select(Scenario).where(Scenario.name == name))
    if scenario is None:
        from stockpile.errors import NotFound

        raise NotFound(f"No scenario named {name!r}.", fields={"scenario": [f"Unknown scenario {name!r}."]})
    return {(("item", f.item_id) if f.item_id else ("category", f.category)): exact(f.factor)
            for f in scenario.factors}


def _factor(factors: dict[tuple[str, int | str], Fraction], item: Item) -> Fraction:
    return factors.get(("item", item.id)) or factors.get(("category", item.category)) or Fraction(1)


def evaluate(session: so.Session, organisations: Iterable[Organisation], *, today: dt.date,
             item: Item | None = None, pool: str | None = None, scenario: str | None = None,
             window_weeks: int = DEFAULT_WINDOW_WEEKS) -> list[CoverageRow]:
    """Coverage rows for every organisation × item × policy that applies.

    A category policy covers the items the organisation holds or has a baseline for; a list
    policy the items on the organisation's list with that code; an item policy its item. Of the
    policies meeting the same organisation, item and pool, the most specific wins. A list entry's
    own minimum days replaces the policy's minimum (and target, if lower). Stock comes from one
    grouped query and baselines from two; the expiry simulation runs once per row.
    """
    orgs = {o.id: o for o in organisations}
    if not orgs:
        return []
    org_ids = list(orgs)
    factors = scenario_factors(session, scenario)
    policies = [p for p in session.scalars(sa.select(Policy).where(Policy.active).order_by(Policy.id))
                if pool is None or p.pool == pool]

    usable_by_lot = (sa.select(Depot.organisation_id, Lot.item_id, Balance.pool, Lot.expiry,
                               sa.func.sum(Balance.quantity))
                     .select_from(Balance).join(Balance.lot).join(Balance.depot)
                     .where(Depot.organisation_id.in_(org_ids), Balance.quantity > 0,
                            Lot.status == LotStatus.AVAILABLE.value,
                            sa.or_(Lot.expiry.is_(None), Lot.expiry >= today))
                     .group_by(Depot.organisation_id, Lot.item_id, Balance.pool, Lot.id, Lot.expiry))
    held_any = (sa.select(Depot.organisation_id, Lot.item_id).distinct()
                .select_from(Balance).join(Balance.lot).join(Balance.depot)
                .where(Depot.organisation_id.in_(org_ids), Balance.quantity > 0))
    if item is not None:
        usable_by_lot = usable_by_lot.where(Lot.item_id == item.id)
        held_any = held_any.where(Lot.item_id == item.id)
    stock: dict[tuple[int, int, str], list[LotQuantity]] = {}
    for org_id, item_id, lot_pool, expiry, quantity in session.execute(usable_by_lot):
        stock.setdefault((org_id, item_id, lot_pool), []).append(LotQuantity(expiry, int(quantity)))
    held = {(o, i) for o, i in session.execute(held_any)}

    item_filter = [item.id] if item is not None else None
    stored = stored_baselines(session, org_ids, today, item_filter)
    held |= {(o, i) for o, i, _ in stored}
    entries: dict[tuple[int, str], dict[int, ItemListEntry]] = {}
    for entry in session.scalars(sa.select(ItemListEntry).join(ItemListEntry.item_list)
                                 .where(ItemList.organisation_id.in_(org_ids))
                                 .options(so.contains_eager(ItemListEntry.item_list))):
        entries.setdefault((entry.item_list.organisation_id, entry.item_list.code), {})[entry.item_id] = entry

    # Which (org, item, pool) each policy reaches; keep the most specific per key.
    chosen: dict[tuple[int, int, str], tuple[Policy, ItemListEntry | None]] = {}
    items_by_category: dict[str, list[int]] = {}
    all_items = {i.id: i for i in session.scalars(sa.select(Item).where(Item.id == item.id) if item is not None
                                                   else sa.select(Item))}
    for i in all_items.values():
        items_by_category.setdefault(i.category, []).append(i.id)
    for org in orgs.values():
        for policy in policies:
            if not _matches(policy, org):
                continue
            reached: list[tuple[int, ItemListEntry | None]]
            if policy.item_id:
                reached = [(policy.item_id, None)] if policy.item_id in all_items else []
            elif policy.item_list:
                reached = [(i, e) for i, e in entries.get((org.id, policy.item_list), {}).items() if i in all_items]
            else:
                reached = [(i, None) for i in items_by_category.get(policy.category or "", []) if (org.id, i) in held]
            for item_id, entry in reached:
                key = (org.id, item_id, policy.pool)
                if key not in chosen or _specificity(policy) > _specificity(chosen[key][0]):
                    chosen[key] = (policy, entry)

    pairs = {(o, i) for o, i, _ in chosen}
    needs_computed = {p for p in pairs if (p[0], p[1], BaselineSource.MANUAL.value) not in stored
                      and (p[0], p[1], BaselineSource.ANNUAL_3Y.value) not in stored}
    computed = computed_use(session, {o for o, _ in needs_computed}, today, window_weeks,
                            {i for _, i in needs_computed}) if needs_computed else {}

    rows = []
    for (org_id, item_id, policy_pool), (policy, entry) in chosen.items():
        the_item = all_items[item_id]
        pools = [Pool.OPERATIONAL.value, Pool.EMERGENCY.value] if policy_pool == PolicyPool.ALL else [policy_pool]
        lots = tuple(lot for p in pools for lot in stock.get((org_id, item_id, p), []))
        usable = sum(lot.quantity for lot in lots)
        baseline, reason = baseline_in_force(stored, computed, org_id, item_id)
        factor = _factor(factors, the_item)
        min_days = exact(policy.min_days)
        target_days = exact(policy.target_days)
        if entry is not None and entry.min_days is not None:
            min_days = exact(entry.min_days)
            target_days = max(target_days, min_days)
        max_days = exact(policy.max_days) if policy.max_days is not None else None
        rate = daily_rate(baseline.weekly_use, factor) if baseline else None
        if baseline is not None and rate is None:
            reason = (f"Normal use in force is zero a week ({baseline.explanation}): "
                      "coverage cannot be measured against it.")
        days = coverage_days(usable, rate)
        rows.append(CoverageRow(
            organisation=orgs[org_id], item=the_item, policy=policy, pool=policy_pool, usable=usable,
            baseline=baseline, no_baseline_reason=reason, factor=factor, min_days=min_days,
            target_days=target_days, max_days=max_days, days=days,
            expiry=expiry_aware(lots, rate, today), status=status(days, min_days, target_days, max_days),
            shortfall=shortfall(usable, rate, target_days), lots=lots, evaluated_on=today))
    order = {Status.BELOW_MIN: 0, Status.NO_BASELINE: 1, Status.BELOW_TARGET: 2, Status.OVERSTOCK: 3, Status.OK: 4}
    rows.sort(key=lambda r: (r.organisation.name, order[r.status],
                             float(r.days / r.target_days) if r.days is not None and r.target_days else 0,
                             r.item.name, r.pool))
    return rows


def projection(lots: Iterable[LotQuantity], rate: Fraction | None, today: dt.date,
               days: int) -> list[tuple[dt.date, Fraction]]:
    """Usable stock at the start of each of the next ``days`` days if nothing arrives: used FEFO
    at ``rate`` a day, each lot lost at the end of its expiry day. Day 0 is ``today``."""
    remaining = {i: Fraction(lot.quantity) for i, lot in enumerate(lots) if lot.quantity > 0}
    expiry = {i: lot.expiry for i, lot in enumerate(lots)}
    order = sorted(remaining, key=lambda i: (expiry[i] is None, expiry[i] or dt.date.max))
    points = []
    for offset in range(days + 1):
        day = today + dt.timedelta(days=offset)
        for i in order:  # lost at the end of their expiry day: gone at the start of the next
            if expiry[i] is not None and expiry[i] < day:
                remaining[i] = Fraction(0)
        points.append((day, sum(remaining.values(), Fraction(0))))
        need = rate or Fraction(0)
        for i in order:
            if need <= 0:
                break
            take = min(need, remaining[i])
            remaining[i] -= take
            need -= take
    return points


def falls_below_min_on(row: CoverageRow, horizon_days: int = 730) -> dt.date | None:
    """The first day on which the stock left (used at the row's rate, lots expiring) covers less
    than the minimum days; ``today`` if it already does; ``None`` without a baseline or when it
    stays above within ``horizon_days``."""
    rate = row.rate
    if rate is None:
        return None
    for day, stock in projection(row.lots, rate, row.evaluated_on, horizon_days):
        if stock / rate < row.min_days:
            return day
    return None


@dataclass(frozen=True)
class PolicySummary:
    """One member organisation × policy of a region: how many items meet the target."""

    organisation: Organisation
    policy: Policy
    items: int
    meeting_target: int
    below_min: int
    no_baseline: int
    at_risk: int
    rows: tuple[CoverageRow, ...]

    @property
    def meets_target(self) -> bool:
        return self.items > 0 and self.meeting_target == self.items


def summarise(rows: Iterable[CoverageRow],
              organisations: Iterable[Organisation] = ()) -> list[PolicySummary]:
    """Group coverage rows per organisation × policy (the region view and ``/coverage/summary``).

    Each of ``organisations`` that a policy seen in the rows applies to but that has no rows
    under it (e.g. a municipality holding no PPE and with no baseline) is counted too, with no
    items, and so as not meeting the target.
    """
    groups: dict[tuple[int, int], list[CoverageRow]] = {}
    policies: dict[int, Policy] = {}
    for row in rows:
        groups.setdefault((row.organisation.id, row.policy.id), []).append(row)
        policies[row.policy.id] = row.policy
    summaries = []
    for org in organisations:
        for policy in policies.values():
            if _matches(policy, org) and (org.id, policy.id) not in groups:
                summaries.append(PolicySummary(org, policy, 0, 0, 0, 0, 0, ()))
    for members in groups.values():
        first = members[0]
        summaries.append(PolicySummary(
            organisation=first.organisation, policy=first.policy, items=len(members),
            meeting_target=sum(r.status in (Status.OK, Status.OVERSTOCK) for r in members),
            below_min=sum(r.status is Status.BELOW_MIN for r in members),
            no_baseline=sum(r.status is Status.NO_BASELINE for r in members),
            at_risk=sum(r.expiry.at_risk_units for r in members if r.expiry is not None),
            rows=tuple(members)))
    summaries.sort(key=lambda s: (s.policy.name, s.organisation.name))
    return summaries


def members_of(session: so.Session, parent: Organisation) -> list[Organisation]:
    """Every organisation below ``parent`` in the tree (not ``parent`` itself)."""
    children: dict[int | None, list[Organisation]] = {}
    for org in session.scalars(sa.select(Organisation)):
        children.setdefault(org.parent_id, []).append(org)
    found: list[Organisation] = []
    stack = list(children.get(parent.id, []))
    while stack:
        org = stack.pop()
        found.append(org)
        stack.extend(children.get(org.id, []))
    return sorted(found, key=lambda o: o.name)


@dataclass(frozen=True)
class ItemCoverage:
    """Coverage of any item at an organisation, whatever policy (e.g. an alternative drug)."""

    item: Item
    usable: int
    baseline: BaselineInForce | None
    days: Fraction | None

    @property
    def weeks(self) -> float | None:
        return weeks(self.days)


def item_coverage(session: so.Session, organisation: Organisation, items: Iterable[Item], *,
                  today: dt.date, window_weeks: int = DEFAULT_WINDOW_WEEKS) -> dict[int, ItemCoverage]:
    """Usable stock (all pools), baseline in force and days of coverage of ``items`` at one
    organisation, by item id."""
    wanted = {i.id: i for i in items}
    if not wanted:
        return {}
    usable = dict(session.execute(
        sa.select(Lot.item_id, sa.func.sum(Balance.quantity))
        .select_from(Balance).join(Balance.lot).join(Balance.depot)
        .where(Depot.organisation_id == organisation.id, Lot.item_id.in_(list(wanted)),
               Balance.quantity > 0, Lot.status == LotStatus.AVAILABLE.value,
               sa.or_(Lot.expiry.is_(None), Lot.expiry >= today))
        .group_by(Lot.item_id)).all())
    stored = stored_baselines(session, [organisation.id], today, list(wanted))
    computed = computed_use(session, [organisation.id], today, window_weeks, list(wanted))
    result = {}
    for item_id, item in wanted.items():
        baseline, _ = baseline_in_force(stored, computed, organisation.id, item_id)
        quantity = int(usable.get(item_id, 0))
        rate = daily_rate(baseline.weekly_use) if baseline else None
        result[item_id] = ItemCoverage(item, quantity, baseline, coverage_days(quantity, rate))
    return result
