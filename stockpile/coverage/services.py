"""Coverage from the database (DESIGN.md §3, §4): the baseline in force for each organisation
and item, the policies that apply, coverage rows and their summaries; and the records coverage
is computed from: baselines, policies, item lists and scenarios.

The numbers themselves are ``stockpile.coverage.arithmetic``; this module reads the stock they
are applied to.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, NamedTuple

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from stockpile.coverage import arithmetic
from stockpile.coverage.arithmetic import (ExpiryAware, LotQuantity, Status, coverage_days, daily_rate,
                                           exact, expiry_aware, shortfall, status, weeks)
from stockpile.coverage.models import (Baseline, BaselineSource, Criticality, ItemList, ItemListAction,
                                       ItemListChange, ItemListEntry, Policy, PolicyPool, Scenario,
                                       ScenarioFactor)
from stockpile.coverage.models import ComputedUse as KeptUse
from stockpile.errors import Conflict, InvalidInput, NotFound, check_choice, field_error, required_text
from stockpile.inventory.models import (Balance, Category, Depot, Item, IssueFlag, Lot, lot_usable,
                                        Movement, MovementKind, Organisation, OrganisationKind, Pool)
from stockpile.inventory.services import Context

DEFAULT_WINDOW_WEEKS = 13
# Plain strings for the loops over thousands of rows (an enum member's .value is a descriptor call).
_OPERATIONAL = Pool.OPERATIONAL.value
_BOTH_POOLS = (Pool.OPERATIONAL.value, Pool.EMERGENCY.value)
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
        weekly = Fraction(self.issued * 7, self.in_stock_days)
        left_out = self.window_days - self.in_stock_days
        return BaselineInForce(
            weekly, BaselineSource.COMPUTED.value, None,
            f"{self.issued} issued (normal) over {self.in_stock_days} in-stock days of the last "
            f"{self.window_days}" + (f"; {left_out} stock-out days left out" if left_out else ""))

    def missing_reason(self) -> str:
        return (f"Only {self.in_stock_days} in-stock days of issue history in the last "
                f"{self.window_days} (at least {MIN_IN_STOCK_DAYS} needed for a computed baseline).")


def id_list(ids: Iterable[int]) -> sa.BindParameter[list[int]]:
    """Ids for ``column.in_(…)`` written into the statement: a supply centre's 3,000 item ids as
    bound parameters cost far more to send and plan than as text (they are integers: nothing to
    quote)."""
    return sa.bindparam("ids", sorted(ids), expanding=True, literal_execute=True, unique=True)


class StoredBaseline(NamedTuple):
    """A manual or § 8a baseline as stored, with what it means (``in_force``)."""

    id: int
    organisation_id: int
    item_id: int
    source: str
    weekly_use: Decimal
    valid_from: dt.date
    note: str | None
    in_force: BaselineInForce


# What a stored baseline means. A baseline row is never edited (a newer row replaces it), so this
# is worked out once per process, and a § 8a row's audit columns (JSON) are read only the first
# time it is met. Keyed by the row's id and what it holds, with the moment it was recorded: an id
# freed by a rolled-back insert (SQLite reuses rowids) names another row afterwards.
_MEANING: dict[tuple[Any, ...], BaselineInForce] = {}
_MEANING_LIMIT = 200_000


def _meaning(row: Any, annual_use: dict[str, int] | None = None, years_used: list[int] | None = None,
             years_replaced: dict[str, int] | None = None) -> BaselineInForce:
    if row.source == BaselineSource.MANUAL.value:
        return BaselineInForce(exact(row.weekly_use), row.source, row.valid_from,
                               f"Entered by hand, valid from {row.valid_from.isoformat()}"
                               + (f": {row.note}" if row.note else ""))
    years = ", ".join(str(y) for y in years_used or [])
    replaced = "; ".join(f"{year} replaced by {by}" for year, by in (years_replaced or {}).items())
    # Recomputed from the years stored, exactly (the column holds a rounded figure).
    weekly = (arithmetic.weekly_from_annual(int((annual_use or {})[str(y)]) for y in years_used)
              if years_used else exact(row.weekly_use))
    return BaselineInForce(weekly, row.source, row.valid_from,
                           f"A quarter of the mean annual use of {years}" + (f" ({replaced})" if replaced else ""),
                           years_used, years_replaced)


def stored_baselines(session: so.Session, organisation_ids: Iterable[int], today: dt.date,
                     item_ids: Iterable[int] | None = None) -> dict[tuple[int, int, str], StoredBaseline]:
    """The stored baseline in force on ``today`` per (organisation, item), keyed (organisation,
    item, source): the newest manual one valid on ``today`` when there is one (it wins), else the
    newest § 8a one. Chosen in SQL, so older versions and a § 8a row under a manual one are never
    loaded; a § 8a row's audit columns only the first time this process meets it."""
    ranked = (sa.select(Baseline.id, sa.func.row_number().over(
                  partition_by=(Baseline.organisation_id, Baseline.item_id),
                  order_by=(sa.case((Baseline.source == BaselineSource.MANUAL.value, 0), else_=1),
                            Baseline.valid_from.desc(), Baseline.id.desc())).label("rank"))
              .where(Baseline.organisation_id.in_(id_list(organisation_ids)), Baseline.valid_from <= today))
    if item_ids is not None:
        ranked = ranked.where(Baseline.item_id.in_(id_list(item_ids)))
    in_force = ranked.subquery()
    rows = session.execute(
        sa.select(Baseline.id, Baseline.organisation_id, Baseline.item_id, Baseline.source, Baseline.weekly_use,
                  Baseline.valid_from, Baseline.note, Baseline.recorded_at)
        .join(in_force, sa.and_(in_force.c.id == Baseline.id, in_force.c.rank == 1))).all()
    unknown_annual = [row.id for row in rows
                      if tuple(row) not in _MEANING and row.source == BaselineSource.ANNUAL_3Y.value]
    audit = ({row.id: row for row in session.execute(
                 sa.select(Baseline.id, Baseline.annual_use, Baseline.years_used, Baseline.years_replaced)
                 .where(Baseline.id.in_(id_list(unknown_annual))))} if unknown_annual else {})
    if len(_MEANING) > _MEANING_LIMIT:
        _MEANING.clear()
    found = {}
    for row in rows:
        key = tuple(row)
        meaning = _MEANING.get(key)
        if meaning is None:
            details = audit.get(row.id)
            meaning = _MEANING[key] = (_meaning(row, details.annual_use, details.years_used, details.years_replaced)
                                       if details is not None else _meaning(row))
        found[(row.organisation_id, row.item_id, row.source)] = StoredBaseline(*row[:7], meaning)
    return found


def without_stored_baseline(stored: dict[tuple[int, int, str], StoredBaseline],
                            pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """The (organisation, item) pairs of ``pairs`` with no stored baseline in force
    (``stored_baselines``): the ones a computed baseline is needed for."""
    has_one = {(org_id, item_id) for org_id, item_id, _source in stored}
    return {pair for pair in pairs if pair not in has_one}


class _LotStock(NamedTuple):
    """What one lot holds now in one pool, summed over an organisation's depots."""

    organisation_id: int
    item_id: int
    pool: str
    lot_id: int
    expiry: dt.date | None
    status: str
    quantity: int


def depots_of(session: so.Session, organisation_ids: Iterable[int]) -> dict[int, int]:
    """The organisations' depots: ``{depot id: organisation id}``.

    Balances and movements are then read by depot id, written into the statement: the planner
    sees which depots, and so how much a supply centre holds. Through a join on the depots'
    organisation it assumes an average depot and reads a supply centre's 9,000 lots on hand to
    find the few of one item.
    """
    return dict(session.execute(sa.select(Depot.id, Depot.organisation_id)
                                .where(Depot.organisation_id.in_(id_list(organisation_ids)))).all())


def _stock_by_lot(session: so.Session, depots: dict[int, int], item_ids: Iterable[int] | None = None,
                  pool: str | None = None) -> list[_LotStock]:
    """Every lot on hand (balance above zero) in ``depots`` (``depots_of``), any status and
    expiry, summed per organisation: one read of the balances serves usable stock, what is
    held, and the computed baseline's closing stock."""
    if not depots:
        return []
    stmt = (sa.select(Balance.depot_id, Lot.item_id, Balance.pool, Lot.id, Lot.expiry, Lot.status,
                      sa.cast(sa.func.sum(Balance.quantity), sa.BigInteger))
            .select_from(Balance).join(Balance.lot)
            .where(Balance.depot_id.in_(id_list(depots)), Balance.quantity > 0)
            .group_by(Balance.depot_id, Lot.item_id, Balance.pool, Lot.id, Lot.expiry, Lot.status))
    if item_ids is not None:
        stmt = stmt.where(Lot.item_id.in_(id_list(item_ids)))
    if pool is not None:
        stmt = stmt.where(Balance.pool == pool)
    lots: dict[tuple[int, str, int], _LotStock] = {}
    for depot_id, item_id, lot_pool, lot_id, expiry, lot_status, quantity in session.execute(stmt).all():
        key = (depots[depot_id], lot_pool, lot_id)
        found = lots.get(key)
        lots[key] = _LotStock(key[0], item_id, lot_pool, lot_id, expiry, lot_status,
                              quantity + (found.quantity if found else 0))
    return list(lots.values())


def _usable(lot: _LotStock, today: dt.date) -> bool:
    return lot_usable(lot.status, lot.expiry, today)


_EPOCH = dt.date(1970, 1, 1).toordinal()
_NEVER = dt.date.max.toordinal() - _EPOCH  # a lot without expiry: usable on every day


def computed_use(session: so.Session, organisation_ids: Iterable[int], today: dt.date,
                 window_weeks: int = DEFAULT_WINDOW_WEEKS, item_ids: Iterable[int] | None = None, *,
                 pairs: Iterable[tuple[int, int]] | None = None) -> dict[tuple[int, int], ComputedUse]:
    """Per (organisation, item): units issued with flag ``normal`` in the ``window_weeks`` before
    ``today``, and the days of that window on which usable operational stock was on hand.

    ``pairs``, when given, limits the reading and the result to those (organisation, item) pairs.
    A day counts as in stock when usable stock (lots not expired on that day) was on hand at its
    start, or when a normal issue happened that day. A reversal counts on the day of the movement
    it reverses, so a reversed issue never happened. Pairs with neither stock at the window's
    start nor movements in it are left out. Two queries whatever the length of the ledger: the
    lots on hand now, and the movements since the window began.
    """
    org_ids, items, wanted = _scope(organisation_ids, item_ids, pairs)
    if not org_ids or (items is not None and not items):
        return {}
    depots = depots_of(session, org_ids)
    on_hand = _stock_by_lot(session, depots, items, Pool.OPERATIONAL.value)
    return _computed_use(session, depots, items, wanted, today, window_weeks, on_hand)


def _scope(organisation_ids: Iterable[int], item_ids: Iterable[int] | None,
           pairs: Iterable[tuple[int, int]] | None) -> tuple[set[int], set[int] | None, set[tuple[int, int]] | None]:
    org_ids = set(organisation_ids)
    items = set(item_ids) if item_ids is not None else None
    if pairs is None:
        return org_ids, items, None
    wanted = {(o, i) for o, i in pairs if o in org_ids and (items is None or i in items)}
    return {o for o, _ in wanted}, {i for _, i in wanted}, wanted


class _utc_day(FunctionElement[int]):
    """The UTC calendar day of a timestamp as days since 1970-01-01: a whole number each
    database computes, so movements are summed per day in SQL."""

    type = sa.Integer()
    name = "utc_day"
    inherit_cache = True


@compiles(_utc_day)
def _utc_day_sqlite(element: _utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps UTC timestamps as naive ISO text; julianday of a date is 2440587.5 on 1970-01-01.
    return f"CAST(julianday(date({compiler.process(element.clauses, **kw)})) - 2440587.5 AS INTEGER)"


@compiles(_utc_day, "postgresql")
def _utc_day_postgresql(element: _utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(CAST(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC' AS DATE) - DATE '1970-01-01')"


def _computed_use(session: so.Session, depots: dict[int, int], items: set[int] | None,
                  wanted: set[tuple[int, int]] | None, today: dt.date, window_weeks: int,
                  on_hand: Iterable[_LotStock]) -> dict[tuple[int, int], ComputedUse]:
    """``computed_use`` from the operational lots on hand now (``on_hand``; other pools are
    ignored): the stock at the window's start is what is on hand now less every movement that
    counts from the window's start on, so the ledger before the window is never read."""
    start = today - dt.timedelta(weeks=window_weeks)
    tz_start = dt.datetime.combine(start, dt.time(), tzinfo=dt.timezone.utc)
    first, end = start.toordinal() - _EPOCH, today.toordinal() - _EPOCH  # days since 1970-01-01
    original = so.aliased(Movement)
    # The day a movement counts on: its own, or for a reversal that of the movement it reverses.
    # A reversal occurs after its original, so every movement counting from the window's start
    # on occurred since then too; a reversal of a movement from before the window belongs to the
    # stock at the window's start. Summed per lot expiry and day in SQL.
    day = _utc_day(sa.func.coalesce(original.occurred_at, Movement.occurred_at))
    normal = sa.and_(Movement.kind == MovementKind.ISSUE.value, Movement.flag == IssueFlag.NORMAL.value)
    since = (sa.select(Movement.depot_id, Lot.item_id, Lot.expiry, day,
                       sa.cast(sa.func.sum(Movement.quantity), sa.BigInteger),
                       sa.cast(sa.func.sum(sa.case((normal, Movement.quantity), else_=0)), sa.BigInteger))
             .select_from(Movement).join(Movement.lot)
             .outerjoin(original, original.id == Movement.reversal_of_id)
             .where(Movement.depot_id.in_(id_list(depots)), Movement.pool == Pool.OPERATIONAL.value,
                    Movement.occurred_at >= tz_start)
             .group_by(Movement.depot_id, Lot.item_id, Lot.expiry, day))
    if items is not None:
        since = since.where(Lot.item_id.in_(id_list(items)))

    days: dict[dt.date | None, int] = {None: _NEVER}  # expiry → days since 1970-01-01

    def epoch_day(expiry: dt.date | None) -> int:
        found = days.get(expiry)
        if found is None:
            found = days[expiry] = expiry.toordinal() - _EPOCH  # type: ignore[union-attr]
        return found

    events: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
    # Tens of thousands of rows at a supply centre and nothing to map to objects: run on the
    # connection (the session was flushed by the read of the balances just before).
    for depot_id, item_id, expiry, when, quantity, normal_quantity in session.connection().execute(since).all():
        if when < first:
            continue  # a reversal of a movement from before the window: part of the opening stock
        key = (depots[depot_id], item_id)
        if wanted is not None and key not in wanted:
            continue
        found = events.get(key)
        if found is None:
            found = events[key] = []
        found.append((when, epoch_day(expiry), quantity, normal_quantity))
    stock_now: dict[tuple[int, int], dict[int, int]] = {}
    for lot in on_hand:
        key = (lot.organisation_id, lot.item_id)
        if lot.pool == _OPERATIONAL and (wanted is None or key in wanted):
            pair = stock_now.setdefault(key, {})
            expiry = epoch_day(lot.expiry)
            pair[expiry] = pair.get(expiry, 0) + lot.quantity

    window_days = end - first
    result: dict[tuple[int, int], ComputedUse] = {}
    for key in stock_now.keys() | events.keys():
        stock = dict(stock_now.get(key, ()))
        in_window = []
        for event in events.get(key, ()):
            stock[event[1]] = stock.get(event[1], 0) - event[2]  # back to the window's start
            if event[0] < end:
                in_window.append(event)
        stock = {expiry: quantity for expiry, quantity in stock.items() if quantity}
        if stock or in_window:
            issued, in_stock = _walk(stock, in_window, first, end)
            result[key] = ComputedUse(max(issued, 0), in_stock, window_days)
    return result


def _walk(stock: dict[int, int], events: list[tuple[int, int, int, int]], first: int,
          end: int) -> tuple[int, int]:
    """Normal issues (net of their reversals) and in-stock days over the days ``first`` to
    ``end − 1``, from ``stock`` (expiry → quantity) at the start of ``first``; days and expiries
    are whole numbers of days;
    ``events`` are (day, expiry, quantity, of which normal issues).

    Usable stock is kept as a running total, changed only on the days something happens or
    something expires; the days in between are counted together. A lot counts through the end
    of its expiry day, and only positive stock counts.
    """
    by_day: dict[int, list[tuple[int, int, int]]] = {}
    for day, expiry, quantity, normal_quantity in events:
        by_day.setdefault(day, []).append((expiry, quantity, normal_quantity))
    expiring = sorted({e for e in stock if e >= first} | {e for _, e, _, _ in events if e >= first})
    usable = sum(q for e, q in stock.items() if e >= first and q > 0)
    days = sorted({first} | set(by_day) | {e + 1 for e in expiring if e + 1 < end})
    gone = 0  # expiring[:gone] no longer count
    issued = in_stock = 0
    for n, day in enumerate(days):
        while gone < len(expiring) and expiring[gone] < day:
            usable -= max(stock.get(expiring[gone], 0), 0)
            gone += 1
        on_hand_at_start = usable > 0
        net_normal = 0
        for expiry, quantity, normal_quantity in by_day.get(day, ()):
            before = stock.get(expiry, 0)
            stock[expiry] = before + quantity
            if expiry >= day:
                usable += max(before + quantity, 0) - max(before, 0)
            net_normal += normal_quantity  # issues are negative; their reversals positive
        issued -= net_normal
        if on_hand_at_start or net_normal < 0:
            in_stock += 1
        following = days[n + 1] if n + 1 < len(days) else end
        if usable > 0:  # nothing happens and nothing expires until the next day listed
            in_stock += following - day - 1
    return issued, in_stock


def _kept_or_computed(session: so.Session, pairs: set[tuple[int, int]], today: dt.date, window_weeks: int,
                      depots: dict[int, int], on_hand: Iterable[_LotStock], keep: bool) -> dict[tuple[int, int], ComputedUse]:
    """``computed_use`` of ``pairs``: the figures kept for ``today`` (one row per pair, see
    ``models.ComputedUse``), the rest computed from the window's movements — and, with ``keep``
    (the scheduler's scan, the evaluation after a posting: never a page), kept for the next read."""
    if not pairs:
        return {}
    org_ids = {o for o, _ in pairs}
    kept: dict[tuple[int, int], ComputedUse | None] = {}
    for org_id, item_id, issued, in_stock_days, window_days in session.execute(
            sa.select(KeptUse.organisation_id, KeptUse.item_id, KeptUse.issued, KeptUse.in_stock_days,
                      KeptUse.window_days)
            .where(KeptUse.organisation_id.in_(id_list(org_ids)), KeptUse.evaluated_on == today,
                   KeptUse.window_weeks == window_weeks)):
        if (org_id, item_id) in pairs:
            kept[(org_id, item_id)] = (None if issued is None
                                       else ComputedUse(int(issued), in_stock_days, window_days))
    found = {pair: use for pair, use in kept.items() if use is not None}
    missing = pairs - kept.keys()
    if not missing:
        return found
    missing_orgs = {o for o, _ in missing}
    computed = _computed_use(session, {d: o for d, o in depots.items() if o in missing_orgs},
                             {i for _, i in missing}, missing, today, window_weeks, on_hand)
    found.update(computed)
    if keep:
        window_days = 7 * window_weeks
        rows = [{"organisation_id": o, "item_id": i, "evaluated_on": today, "window_weeks": window_weeks,
                 "issued": use.issued if use else None, "in_stock_days": use.in_stock_days if use else 0,
                 "window_days": use.window_days if use else window_days}
                for (o, i) in sorted(missing) for use in [computed.get((o, i))]]
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        # Another evaluation may keep the same pair at the same moment: its row is as good.
        session.execute(insert(KeptUse).on_conflict_do_nothing(), rows)
    return found


def forget_computed_use(session: so.Session, pairs: Iterable[tuple[int, int]] = (), *,
                        item_id: int | None = None, before: dt.date | None = None) -> None:
    """Delete kept computed-use figures: of ``pairs`` (a posting touched them), of every
    organisation's ``item_id`` (a lot of it changed status or expiry), or of days before ``before``."""
    conditions = []
    pairs = sorted(set(pairs))
    if pairs:
        conditions.append(sa.tuple_(KeptUse.organisation_id, KeptUse.item_id).in_(pairs))
    if item_id is not None:
        conditions.append(KeptUse.item_id == item_id)
    if before is not None:
        conditions.append(KeptUse.evaluated_on < before)
    if conditions:
        session.execute(sa.delete(KeptUse).where(sa.or_(*conditions))
                        .execution_options(synchronize_session=False))


def forget_stock_changed(session: so.Session, pairs: set[tuple[int, int]]) -> None:
    """Hook of the posting path: the computed use of these pairs has changed."""
    forget_computed_use(session, pairs)


def forget_item(session: so.Session, item_id: int) -> None:
    """Hook of a lot's status or expiry change: in-stock days of the item have changed."""
    forget_computed_use(session, item_id=item_id)


def baseline_in_force(stored: dict[tuple[int, int, str], StoredBaseline],
                      computed: dict[tuple[int, int], ComputedUse],
                      organisation_id: int, item_id: int) -> tuple[BaselineInForce | None, str]:
    """The baseline that counts, and why: a current manual one wins, then § 8a, then computed."""
    for source in (BaselineSource.MANUAL.value, BaselineSource.ANNUAL_3Y.value):
        found_stored = stored.get((organisation_id, item_id, source))
        if found_stored is not None:
            return found_stored.in_force, ""
    use = computed.get((organisation_id, item_id))
    if use is not None and (found := use.baseline()) is not None:
        return found, ""
    reason = use.missing_reason() if use is not None else "No baseline entered and no issue history."
    return None, reason


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


def list_policy(session: so.Session, organisation: Organisation, list_code: str) -> Policy | None:
    """The active policy of the item list ``list_code`` that counts at ``organisation``."""
    policies = session.scalars(sa.select(Policy).where(Policy.item_list == list_code, Policy.active)
                               .order_by(Policy.id))
    return max((p for p in policies if p.applies_to(organisation)), key=lambda p: p.specificity, default=None)


def scenario_factors(session: so.Session, name: str | None) -> dict[tuple[str, int | str], Fraction]:
    """``{("item", id) | ("category", name): factor}`` of the named scenario (empty for none)."""
    if not name:
        return {}
    scenario = session.scalar(sa.select(Scenario).where(Scenario.name == name))
    if scenario is None:
        raise NotFound(f"No scenario named {name!r}.", fields={"scenario": [f"Unknown scenario {name!r}."]})
    return {(("item", f.item_id) if f.item_id else ("category", f.category)): exact(f.factor)
            for f in scenario.factors}


def _factor(factors: dict[tuple[str, int | str], Fraction], item: Item) -> Fraction:
    return factors.get(("item", item.id)) or factors.get(("category", item.category)) or Fraction(1)


def evaluate(session: so.Session, organisations: Iterable[Organisation], *, today: dt.date,
             item: Item | None = None, item_ids: Iterable[int] | None = None, pool: str | None = None,
             scenario: str | None = None, window_weeks: int = DEFAULT_WINDOW_WEEKS,
             keep_computed: bool = False) -> list[CoverageRow]:
    """Coverage rows for every organisation × item × policy that applies (only of ``item``, or of
    the items ``item_ids``, when given: what the evaluation after a posting asks for).
    ``keep_computed`` keeps the computed baselines it had to compute (see ``_kept_or_computed``).

    A category policy covers the items the organisation holds or has a baseline for; a list
    policy the items on the organisation's list with that code; an item policy its item. Of the
    policies meeting the same organisation, item and pool, the most specific wins. A list entry's
    own minimum days replaces the policy's minimum (and target, if lower). A fixed number of
    queries whatever the number of organisations, items and movements: policies, the lots on
    hand, the stored baselines in force, list entries, the items reported, the computed baselines
    kept for ``today`` and, for pairs without a stored baseline whose figures are not kept, the
    movements of the window; the expiry
    simulation runs once per row.
    """
    orgs = {o.id: o for o in organisations}
    if not orgs:
        return []
    org_ids = list(orgs)
    factors = scenario_factors(session, scenario)
    policies = [p for p in session.scalars(sa.select(Policy).where(Policy.active).order_by(Policy.id))
                if pool is None or p.pool == pool]

    item_filter = {item.id} if item is not None else set(item_ids) if item_ids is not None else None
    if item_filter is not None and not item_filter:
        return []
    depots = depots_of(session, org_ids)
    on_hand = _stock_by_lot(session, depots, item_filter)
    stock: dict[tuple[int, int, str], list[LotQuantity]] = {}
    held: set[tuple[int, int]] = set()
    for lot in on_hand:
        held.add((lot.organisation_id, lot.item_id))
        if _usable(lot, today):
            stock.setdefault((lot.organisation_id, lot.item_id, lot.pool), []).append(
                LotQuantity(lot.expiry, lot.quantity))

    stored = stored_baselines(session, org_ids, today, item_filter)
    held |= {(o, i) for o, i, _ in stored}
    entries: dict[tuple[int, str], dict[int, ItemListEntry]] = {}
    for entry in session.scalars(sa.select(ItemListEntry).join(ItemListEntry.item_list)
                                 .where(ItemList.organisation_id.in_(id_list(org_ids)))
                                 .options(so.contains_eager(ItemListEntry.item_list))):
        entries.setdefault((entry.item_list.organisation_id, entry.item_list.code), {})[entry.item_id] = entry

    # Category policies need the category of what is held: read for those items only.
    categories: dict[int, str] = {}
    if held and any(p.category for p in policies):
        held_items = {i for _, i in held}
        categories = dict(session.execute(sa.select(Item.id, Item.category).where(Item.id.in_(id_list(held_items)))).all())
    held_by_category: dict[tuple[int, str], list[int]] = {}
    for org_id, item_id in sorted(held):
        if item_id in categories:
            held_by_category.setdefault((org_id, categories[item_id]), []).append(item_id)

    # Which (org, item, pool) each policy reaches; keep the most specific per key.
    chosen: dict[tuple[int, int, str], tuple[Policy, ItemListEntry | None]] = {}
    for org in orgs.values():
        for policy in policies:
            if not policy.applies_to(org):
                continue
            reached: list[tuple[int, ItemListEntry | None]]
            if policy.item_id:
                reached = [(policy.item_id, None)]
            elif policy.item_list:
                reached = list(entries.get((org.id, policy.item_list), {}).items())
            else:
                reached = [(i, None) for i in held_by_category.get((org.id, policy.category or ""), [])]
            for item_id, entry in reached:
                if item_filter is not None and item_id not in item_filter:
                    continue
                key = (org.id, item_id, policy.pool)
                if key not in chosen or policy.specificity > chosen[key][0].specificity:
                    chosen[key] = (policy, entry)
    if not chosen:
        return []

    pairs = {(o, i) for o, i, _ in chosen}
    reported = {i for _, i in pairs}
    items = ({item.id: item} if item is not None else
             {i.id: i for i in session.scalars(sa.select(Item).where(Item.id.in_(id_list(reported))))})
    needs_computed = without_stored_baseline(stored, pairs)
    computed = _kept_or_computed(session, needs_computed, today, window_weeks, depots, on_hand, keep_computed)

    # A policy's days as exact fractions, once per policy rather than once per row.
    limits = {p.id: (exact(p.min_days), exact(p.target_days), exact(p.max_days) if p.max_days is not None else None)
              for p in policies}
    rows = []
    for (org_id, item_id, policy_pool), (policy, entry) in chosen.items():
        the_item = items[item_id]
        pools = _BOTH_POOLS if policy_pool == PolicyPool.ALL else (policy_pool,)
        lots = tuple(lot for p in pools for lot in stock.get((org_id, item_id, p), []))
        usable = sum(lot.quantity for lot in lots)
        baseline, reason = baseline_in_force(stored, computed, org_id, item_id)
        factor = _factor(factors, the_item)
        min_days, target_days, max_days = limits[policy.id]
        if entry is not None and entry.min_days is not None:
            min_days = exact(entry.min_days)
            target_days = max(target_days, min_days)
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
                             # float(days / target) without building the quotient Fraction
                             (r.days.numerator * r.target_days.denominator)
                             / (r.days.denominator * r.target_days.numerator)
                             if r.days is not None and r.target_days else 0,
                             r.item.name, r.pool))
    return rows


def falls_below_min_on(row: CoverageRow, horizon_days: int = 730) -> dt.date | None:
    """The first day on which the stock left (used at the row's rate, lots expiring) covers less
    than the minimum days; ``today`` if it already does; ``None`` without a baseline or when it
    stays above within ``horizon_days``.

    The same days as reading ``projection`` day by day, without running it: the stock at the
    start of each day never rises, so the first day below the minimum is found by halving the
    horizon, reading the stock of a day from the lots' FEFO schedule.
    """
    rate = row.rate
    if rate is None:
        return None
    stock_on = arithmetic.stock_on_day(row.lots, rate, row.evaluated_on)
    floor = row.min_days * rate  # stock / rate < min_days  ⇔  stock < min_days · rate
    if stock_on(horizon_days) >= floor:
        return None
    low, high = 0, horizon_days  # the answer lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        if stock_on(middle) < floor:
            high = middle
        else:
            low = middle + 1
    return row.evaluated_on + dt.timedelta(days=low)


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
            if policy.applies_to(org) and (org.id, policy.id) not in groups:
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
    organisation, by item id. The ledger is read only for items without a stored baseline."""
    wanted = {i.id: i for i in items}
    if not wanted:
        return {}
    depots = depots_of(session, [organisation.id])
    on_hand = _stock_by_lot(session, depots, list(wanted))
    usable: dict[int, int] = {}
    for lot in on_hand:
        if _usable(lot, today):
            usable[lot.item_id] = usable.get(lot.item_id, 0) + lot.quantity
    stored = stored_baselines(session, [organisation.id], today, list(wanted))
    needs_computed = without_stored_baseline(stored, {(organisation.id, i) for i in wanted})
    computed = (_computed_use(session, depots, {i for _, i in needs_computed}, needs_computed,
                              today, window_weeks, on_hand) if needs_computed else {})
    result = {}
    for item_id, item in wanted.items():
        baseline, _ = baseline_in_force(stored, computed, organisation.id, item_id)
        quantity = usable.get(item_id, 0)
        rate = daily_rate(baseline.weekly_use) if baseline else None
        result[item_id] = ItemCoverage(item, quantity, baseline, coverage_days(quantity, rate))
    return result


# Recording what coverage is computed from.

def set_manual_baseline(session: so.Session, ctx: Context, *, organisation: Organisation, item: Item,
                        weekly_use: Decimal | float | int, valid_from: dt.date | None = None,
                        note: str | None = None) -> Baseline:
    """Record normal weekly use entered by hand; it is in force from ``valid_from`` (default today)."""
    if weekly_use is None or Decimal(str(weekly_use)) < 0:
        raise field_error("weekly_use", "weekly_use must be a number, zero or more.")
    baseline = Baseline(organisation=organisation, item=item, source=BaselineSource.MANUAL.value,
                        weekly_use=Decimal(str(weekly_use)), valid_from=valid_from or ctx.today,
                        note=(note or "").strip() or None, recorded_by_id=ctx.user_id)
    session.add(baseline)
    session.flush()
    return baseline


def set_annual_baseline(session: so.Session, ctx: Context, *, organisation: Organisation, item: Item,
                        annual_use: dict[int, int], deviating_years: Iterable[int] = (),
                        valid_from: dt.date | None = None) -> Baseline:
    """§ 8a: a quarter of the mean annual use of the three calendar years before ``valid_from``'s
    year, a deviating year replaced by the year before it. Stores the years used and replaced."""
    valid_from = valid_from or ctx.today
    for year, used in annual_use.items():
        if isinstance(used, bool) or not isinstance(used, int) or used < 0:
            raise field_error("annual_use", f"Annual use for {year} must be a whole number, zero or more.")
    try:
        weekly, used_years, replaced = arithmetic.annual_3y(annual_use, valid_from.year, deviating_years)
    except ValueError as exc:
        raise field_error("annual_use", f"For {valid_from.year} the three years before are counted: {exc}.") from exc
    baseline = Baseline(organisation=organisation, item=item, source=BaselineSource.ANNUAL_3Y.value,
                        weekly_use=round(Decimal(weekly.numerator) / Decimal(weekly.denominator), 4),
                        valid_from=valid_from,
                        annual_use={str(y): int(n) for y, n in sorted(annual_use.items())},
                        years_used=used_years, years_replaced=replaced, recorded_by_id=ctx.user_id)
    session.add(baseline)
    session.flush()
    return baseline


def save_policy(session: so.Session, *, name: str, pool: str, min_days: Decimal | float | int,
                target_days: Decimal | float | int, max_days: Decimal | float | int | None = None,
                organisation_kind: str | None = None, organisation: Organisation | None = None,
                category: str | None = None, item_list: str | None = None, item: Item | None = None,
                active: bool = True, policy: Policy | None = None) -> Policy:
    """Create a policy, or change ``policy``; refuses scopes and day figures that make no sense."""
    name = required_text("name", name)
    check_choice("pool", pool, PolicyPool)
    if (organisation_kind is None) == (organisation is None):
        raise field_error("organisation_kind", "Give either organisation_kind or organisation (one of them).")
    if organisation_kind is not None:
        check_choice("organisation_kind", organisation_kind, OrganisationKind)
    if sum(x is not None for x in (category, item_list, item)) != 1:
        raise field_error("category", "Give exactly one of category, item_list or item.")
    if category is not None:
        check_choice("category", category, Category)
    days = {"min_days": min_days, "target_days": target_days, "max_days": max_days}
    parsed = {k: Decimal(str(v)) if v is not None else None for k, v in days.items()}
    if any(v is not None and v < 0 for v in parsed.values()):
        raise field_error("min_days", "Days cannot be negative.")
    if parsed["target_days"] < parsed["min_days"]:
        raise field_error("target_days", "target_days cannot be below min_days.")
    if parsed["max_days"] is not None and parsed["max_days"] < parsed["target_days"]:
        raise field_error("max_days", "max_days cannot be below target_days.")
    clash = session.scalar(sa.select(Policy.id).where(Policy.name == name))
    if clash is not None and (policy is None or clash != policy.id):
        raise Conflict(f"A policy named {name!r} already exists.", code="duplicate_name",
                       fields={"name": ["Already taken."]})
    if policy is None:
        policy = Policy()
        session.add(policy)
    policy.name, policy.pool, policy.active = name, pool, active
    policy.organisation_kind, policy.organisation = organisation_kind, organisation
    policy.category, policy.item_list, policy.item = category, item_list, item
    policy.min_days, policy.target_days, policy.max_days = parsed["min_days"], parsed["target_days"], parsed["max_days"]
    session.flush()
    return policy


def item_list_for(session: so.Session, organisation: Organisation, code: str, *,
                  name: str | None = None) -> ItemList:
    """The organisation's list with ``code``, created (empty, version 1) if it has none yet."""
    found = session.scalar(sa.select(ItemList).where(ItemList.organisation_id == organisation.id,
                                                     ItemList.code == code))
    if found is None:
        found = ItemList(organisation=organisation, code=code, name=name or code, version=1)
        session.add(found)
        session.flush()
    return found


def _describe_entry(entry: ItemListEntry) -> str:
    parts = []
    if entry.min_days is not None:
        parts.append(f"minimum {entry.min_days.normalize():f} days")
    if entry.criticality:
        parts.append(f"criticality {entry.criticality}")
    if entry.alternatives:
        parts.append("alternatives " + ", ".join(a.code for a in entry.alternatives))
    if entry.note:
        parts.append(f"note: {entry.note}")
    return "; ".join(parts)


def save_list_entry(session: so.Session, ctx: Context, *, item_list: ItemList, item: Item,
                    min_days: Decimal | float | int | None = None, criticality: str | None = None,
                    alternatives: Sequence[Item] = (), note: str | None = None) -> ItemListEntry:
    """Add ``item`` to the list or change its settings; a new list version, with the change logged."""
    if criticality:
        check_choice("criticality", criticality, Criticality)
    if min_days is not None and Decimal(str(min_days)) < 0:
        raise field_error("min_days", "min_days cannot be negative.")
    if any(alt.id == item.id for alt in alternatives):
        raise field_error("alternatives", f"{item.code} cannot be its own alternative.")
    entry = next((e for e in item_list.entries if e.item_id == item.id), None)
    action = ItemListAction.CHANGED if entry is not None else ItemListAction.ADDED
    if entry is None:
        entry = ItemListEntry(item=item)
        item_list.entries.append(entry)
    before = _describe_entry(entry) if action == ItemListAction.CHANGED else None
    entry.min_days = Decimal(str(min_days)) if min_days is not None else None
    entry.criticality = criticality or None
    entry.alternatives = list(alternatives)
    entry.note = (note or "").strip() or None
    after = _describe_entry(entry)
    if before == after:
        return entry
    item_list.version += 1
    detail = after if before is None else f"{before or 'no settings'} → {after or 'no settings'}"
    session.add(ItemListChange(item_list=item_list, version=item_list.version, item=item,
                               action=action.value, detail=detail, recorded_by_id=ctx.user_id))
    session.flush()
    return entry


def remove_list_entry(session: so.Session, ctx: Context, *, item_list: ItemList, item: Item) -> None:
    entry = next((e for e in item_list.entries if e.item_id == item.id), None)
    if entry is None:
        raise NotFound(f"{item.code} is not on the list {item_list.name}.", fields={"item": ["Not on the list."]})
    item_list.entries.remove(entry)
    item_list.version += 1
    session.add(ItemListChange(item_list=item_list, version=item_list.version, item=item,
                               action=ItemListAction.REMOVED.value, detail="", recorded_by_id=ctx.user_id))
    session.flush()


def save_scenario(session: so.Session, *, name: str, description: str = "",
                  factors: dict[str, Decimal | float | int] | None = None,
                  item_factors: dict[Item, Decimal | float | int] | None = None) -> Scenario:
    """Create or replace a scenario: demand factors per category and per item."""
    name = required_text("name", name)
    scenario = session.scalar(sa.select(Scenario).where(Scenario.name == name))
    if scenario is None:
        scenario = Scenario(name=name)
        session.add(scenario)
    scenario.description = description
    new = []
    for category, factor in (factors or {}).items():
        check_choice("category", category, Category)
        new.append(ScenarioFactor(category=category, factor=_factor_value(factor)))
    for scenario_item, factor in (item_factors or {}).items():
        new.append(ScenarioFactor(item=scenario_item, factor=_factor_value(factor)))
    if not new:
        raise field_error("factors", "A scenario needs at least one demand factor.")
    scenario.factors = new
    session.flush()
    return scenario


def _factor_value(value: Decimal | float | int) -> Decimal:
    factor = Decimal(str(value))
    if factor <= 0:
        raise field_error("factors", "A demand factor must be above zero.")
    return factor


def item_lists(session: so.Session, organisation: Organisation) -> list[ItemList]:
    """The organisation's item lists with their entries, by name."""
    return list(session.scalars(sa.select(ItemList).where(ItemList.organisation_id == organisation.id)
                                .options(so.selectinload(ItemList.entries)).order_by(ItemList.name)))


def lists_holding(session: so.Session, organisation: Organisation, item: Item) -> list[ItemList]:
    """The organisation's item lists that hold ``item``."""
    return list(session.scalars(
        sa.select(ItemList).join(ItemList.entries)
        .where(ItemList.organisation_id == organisation.id, ItemListEntry.item_id == item.id)
        .order_by(ItemList.name)))


def entered_baselines(session: so.Session, organisation: Organisation, item: Item) -> list[Baseline]:
    """Every baseline entered for the item at the organisation, newest first."""
    return list(session.scalars(
        sa.select(Baseline).where(Baseline.organisation_id == organisation.id, Baseline.item_id == item.id)
        .options(so.joinedload(Baseline.recorded_by)).order_by(Baseline.valid_from.desc(), Baseline.id.desc())))


@dataclass(frozen=True)
class PolicyVerdict:
    """How many of a region's members that a policy applies to meet it."""

    policy: Policy
    applicable: list[Organisation]
    meeting: int
    below_min: int
    at_risk: int

    @property
    def kind(self) -> str | None:
        """The kind of organisation the members it applies to all are (None when mixed)."""
        kinds = {o.kind for o in self.applicable}
        return kinds.pop() if len(kinds) == 1 else None


@dataclass(frozen=True)
class Region:
    """The coordinator's picture of the organisations below ``parent`` on a day: per policy how
    many meet it, per member and policy its summary, and the rows below minimum (lowest share
    of the minimum first) and at risk of expiry (most units first)."""

    parent: Organisation
    members: list[Organisation]
    verdicts: list[PolicyVerdict]
    matrix: list[tuple[Organisation, list[tuple[Policy, PolicySummary | None, bool]], int]]
    below_min: list[CoverageRow]
    at_risk: list[CoverageRow]

    @property
    def columns(self) -> list[Policy]:
        return [v.policy for v in self.verdicts]


def region(session: so.Session, parent: Organisation, *, today: dt.date, scenario: str | None = None) -> Region:
    members = members_of(session, parent)
    rows = evaluate(session, members, today=today, scenario=scenario)
    summaries = {(s.organisation.id, s.policy.id): s for s in summarise(rows)}
    verdicts = []
    for policy in session.scalars(sa.select(Policy).where(Policy.active).order_by(Policy.name)):
        applicable = [m for m in members if policy.applies_to(m)]
        if not applicable:
            continue
        found = [summaries.get((m.id, policy.id)) for m in applicable]
        verdicts.append(PolicyVerdict(policy, applicable, sum(1 for s in found if s and s.meets_target),
                                      sum(1 for s in found if s and s.below_min),
                                      sum(s.at_risk for s in found if s)))
    matrix = []
    for member in members:
        cells = [(v.policy, summaries.get((member.id, v.policy.id)), v.policy.applies_to(member)) for v in verdicts]
        if any(applies for _p, _s, applies in cells):
            matrix.append((member, cells, sum(s.at_risk for _p, s, _a in cells if s)))
    below_min = sorted((r for r in rows if r.status is Status.BELOW_MIN),
                       key=lambda r: (float(r.days / r.min_days) if r.days is not None and r.min_days else 0,
                                      r.organisation.name, r.item.name))
    at_risk = sorted((r for r in rows if r.expiry is not None and r.expiry.at_risk_units > 0),
                     key=lambda r: (-r.expiry.at_risk_units, r.organisation.name, r.item.name))
    return Region(parent, members, verdicts, matrix, below_min, at_risk)


def parse_item_factors(session: so.Session, text: str) -> dict[Item, Decimal]:
    """A scenario's item factors as typed: ``CODE factor`` a line (``=`` or ``:`` between them
    allowed); an error names the line."""
    def refuse(message: str) -> InvalidInput:
        return InvalidInput(message, fields={"item_factors": [message]})

    wanted: list[tuple[int, str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.replace("=", " ").replace(":", " ").strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise refuse(f"Line {number}: write an item code and a factor, e.g. PPE-FFP3 6.")
        wanted.append((number, parts[0], parts[1]))
    codes = {code for _n, code, _f in wanted}
    items = {i.code: i for i in session.scalars(sa.select(Item).where(Item.code.in_(codes)))} if codes else {}
    result: dict[Item, Decimal] = {}
    for number, code, factor in wanted:
        if code not in items:
            raise refuse(f"Line {number}: no item with code {code}.")
        try:
            value = Decimal(factor.replace(",", "."))
        except InvalidOperation:
            value = Decimal(-1)
        if not value.is_finite() or value <= 0:
            raise refuse(f"Line {number}: the factor for {code} must be a number above zero.")
        result[items[code]] = value
    return result
