"""Alert rules evaluated against the stock, and the alert lifecycle (DESIGN.md §6).

Each rule yields the conditions that hold now, each with a deduplication key (rule,
organisation, item, lot, and the pool where several policies meet one item). ``evaluate``
reconciles them with the stored alerts of the same scope: a new condition opens an alert, a
resolved one that returns is re-opened, one that still holds is seen again (an acknowledgement
is kept), and an open or acknowledged alert whose condition is gone is resolved. It runs for the
organisation × item pairs a posting touched, once the posting has committed
(``evaluate_after_posting``), and for everything in the scheduler's full scan.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.alerts import notify
from stockpile.alerts.models import (Alert, AlertEvent, AlertEventKind, AlertRule, AlertState,
                                     Severity)
from stockpile.auth import services as auth
from stockpile.auth.models import User
from stockpile.coverage import arithmetic
from stockpile.coverage import services as coverage
from stockpile.coverage.models import CRITICAL_DRUG_LIST, ItemList, ItemListEntry
from stockpile.db import begin_write, utcnow
from stockpile.errors import Conflict, InvalidInput, check_choice
from stockpile.inventory.models import (Balance, Depot, Lot, LotStatus, Movement, MovementKind,
                                        Organisation)
from stockpile.inventory.services import STOCK_CHANGED, local_today
from stockpile.rotation.models import OPEN_STATES, RotationTask, TaskState

log = logging.getLogger(__name__)

# Most severe first: the order of the alert list and of the regional summary's columns.
SEVERITY_ORDER = [Severity.CRITICAL.value, Severity.WARNING.value, Severity.INFO.value]
# The list's state filter: "active" (open or acknowledged: still to be put right) by default.
STATE_FILTERS = ("active", "open", "acknowledged", "resolved", "all")


@dataclass(frozen=True)
class Condition:
    rule: str
    organisation_id: int
    item_id: int | None
    lot_id: int | None
    severity: str
    message: str
    qualifier: str = ""

    @property
    def key(self) -> str:
        return ":".join(str(part) for part in (self.rule, self.organisation_id, self.item_id or "",
                                               self.lot_id or "", self.qualifier))


def rules(session: so.Session) -> dict[str, AlertRule]:
    """Every rule by its code, in the order of the codes."""
    return {rule.code: rule for rule in session.scalars(sa.select(AlertRule).order_by(AlertRule.code))}


def require_rule(session: so.Session, code: str) -> str:
    """``code`` if a rule has it; ``InvalidInput`` naming the rules otherwise."""
    known = sorted(session.scalars(sa.select(AlertRule.code)))
    if code not in known:
        raise InvalidInput(f"Unknown rule {code!r}; rules are {', '.join(known)}.",
                           fields={"rule": ["Unknown rule."]})
    return code


def _days(value: Any) -> str:
    return f"{float(value):.1f}".rstrip("0").rstrip(".")


def conditions(session: so.Session, organisations: Sequence[Organisation], *, today: dt.date,
               item_ids: Iterable[int] | None = None) -> list[Condition]:
    """Every condition of every enabled rule that holds now for ``organisations`` (and items)."""
    configured = rules(session)
    on = {code: rule for code, rule in configured.items() if rule.enabled}
    if not organisations or not on:
        return []
    org_ids = [o.id for o in organisations]
    items = set(item_ids) if item_ids is not None else None
    found: list[Condition] = []

    def add(code: str, org_id: int, item_id: int | None, lot_id: int | None, message: str,
            qualifier: str = "", severity: str | None = None) -> None:
        if code in on and (items is None or item_id in items):
            found.append(Condition(code, org_id, item_id, lot_id, severity or on[code].severity, message, qualifier))

    # Alerts are evaluated where something is written anyway: keep the computed baselines.
    rows = coverage.evaluate(session, organisations, today=today, item_ids=items, keep_computed=True)
    falling_days = int(on["coverage_falling"].params.get("within_days", 14)) if "coverage_falling" in on else 0
    alternatives = _critical_drug_alternatives(session, org_ids)
    for row in rows:
        where = f"{row.item.name} ({row.item.code}) at {row.organisation.name}, {row.pool} pool, policy {row.policy.name}"
        if row.status is arithmetic.Status.NO_BASELINE:
            add("no_baseline", row.organisation.id, row.item.id, None,
                f"{where}: no baseline of normal use, so coverage is unknown. {row.no_baseline_reason}", row.pool)
            continue
        assert row.days is not None
        if row.status is arithmetic.Status.BELOW_MIN:
            add("coverage_below_min", row.organisation.id, row.item.id, None,
                f"{where}: {_days(row.days)} days of coverage, below the minimum of {_days(row.min_days)} "
                f"days; {row.shortfall} units short of the target.", row.pool)
            if row.policy.item_list == CRITICAL_DRUG_LIST:
                alts = alternatives.get((row.organisation.id, row.item.id), [])
                named = ", ".join(alts) if alts else "none on the list"
                add("critical_drug_below_min", row.organisation.id, row.item.id, None,
                    f"Critical drug {row.item.name} at {row.organisation.name}: {_days(row.days)} days, below "
                    f"its minimum of {_days(row.min_days)} days. Alternatives: {named}.", row.pool)
            continue
        if row.expiry is not None and row.expiry.days < row.min_days:
            add("expiry_erodes_coverage", row.organisation.id, row.item.id, None,
                f"{where}: {_days(row.days)} days on paper, but only {_days(row.expiry.days)} once expiry is "
                f"counted ({row.expiry.at_risk_units} units will expire unused); minimum {_days(row.min_days)}.",
                row.pool)
        if falling_days:
            below_on = coverage.falls_below_min_on(row, horizon_days=falling_days)
            if below_on is not None:
                add("coverage_falling", row.organisation.id, row.item.id, None,
                    f"{where}: at current use, coverage falls below the minimum of {_days(row.min_days)} days "
                    f"on {below_on.isoformat()}.", row.pool)

    depots = sorted(coverage.depots_of(session, org_ids))  # by id: see coverage.depots_of
    if "lot_expiring" in on or "expired_on_hand" in on:
        found += _lot_conditions(session, org_ids, depots, today, on, items)
    if "rotation_overdue" in on:
        found += _overdue_rotation(session, org_ids, on["rotation_overdue"], items)
    if "count_discrepancy" in on:
        found += _count_discrepancies(session, depots, today, on["count_discrepancy"], items)
    return found


def _critical_drug_alternatives(session: so.Session, org_ids: list[int]) -> dict[tuple[int, int], list[str]]:
    entries = session.scalars(
        sa.select(ItemListEntry).join(ItemListEntry.item_list)
        .where(ItemList.organisation_id.in_(org_ids), ItemList.code == CRITICAL_DRUG_LIST)
        .options(so.contains_eager(ItemListEntry.item_list), so.selectinload(ItemListEntry.alternatives)))
    return {(e.item_list.organisation_id, e.item_id): [f"{a.name} ({a.code})" for a in e.alternatives]
            for e in entries}


def _lot_conditions(session: so.Session, org_ids: list[int], depots: list[int], today: dt.date,
                    on: dict[str, AlertRule], items: set[int] | None) -> list[Condition]:
    horizon = max(on["lot_expiring"].params.get("horizons", [180, 90, 30])) if "lot_expiring" in on else 0
    stmt = (sa.select(Depot.organisation_id, Lot, sa.func.sum(Balance.quantity))
            .select_from(Balance).join(Balance.lot).join(Balance.depot)
            .where(Balance.depot_id.in_(coverage.id_list(depots)), Balance.quantity > 0, Lot.expiry.is_not(None),
                   Lot.expiry <= today + dt.timedelta(days=horizon))
            .group_by(Depot.organisation_id, Lot.id).options(so.joinedload(Lot.item)))
    if items is not None:
        stmt = stmt.where(Lot.item_id.in_(items))
    open_tasks = (sa.select(RotationTask.organisation_id, RotationTask.lot_id)
                  .where(RotationTask.organisation_id.in_(org_ids),
                         RotationTask.state.in_([s.value for s in OPEN_STATES])))
    if items is not None:
        open_tasks = open_tasks.where(RotationTask.item_id.in_(items))
    covered = set(session.execute(open_tasks).all())
    found = []
    for org_id, lot, quantity in session.execute(stmt).unique():
        assert lot.expiry is not None
        label = f"Lot {lot.lot_number} of {lot.item.name} ({lot.item.code}), {int(quantity)} units"
        if lot.expiry < today:
            if "expired_on_hand" in on:
                found.append(Condition("expired_on_hand", org_id, lot.item_id, lot.id, on["expired_on_hand"].severity,
                                       f"{label}: expired on {lot.expiry.isoformat()} and still on hand. Dispose of it."))
            continue
        if "lot_expiring" not in on or lot.status != LotStatus.AVAILABLE or (org_id, lot.id) in covered:
            continue
        rule = on["lot_expiring"]
        left = (lot.expiry - today).days
        reached = [h for h in sorted(rule.params.get("horizons", [180, 90, 30])) if left <= h]
        within = reached[0]
        severity = (Severity.CRITICAL.value if left <= int(rule.params.get("critical_within", 30))
                    else Severity.INFO.value if left > int(rule.params.get("info_beyond", 90)) else rule.severity)
        found.append(Condition("lot_expiring", org_id, lot.item_id, lot.id, severity,
                               f"{label}: expires on {lot.expiry.isoformat()} (within {within} days) and no "
                               "rotation task covers it.", qualifier=str(within)))
    return found


def _overdue_rotation(session: so.Session, org_ids: list[int], rule: AlertRule,
                      items: set[int] | None) -> list[Condition]:
    stmt = (sa.select(RotationTask).where(RotationTask.organisation_id.in_(org_ids),
                                          RotationTask.state == TaskState.OVERDUE.value)
            .options(so.joinedload(RotationTask.lot), so.joinedload(RotationTask.item)))
    if items is not None:
        stmt = stmt.where(RotationTask.item_id.in_(items))
    return [Condition("rotation_overdue", t.organisation_id, t.item_id, t.lot_id, rule.severity,
                      f"Rotation of lot {t.lot.lot_number} of {t.item.name} ({t.quantity} units) was due to start "
                      f"on {t.rotate_by.isoformat() if t.rotate_by else 'at once'}"
                      + (f"; {t.at_risk} units will expire unless moved elsewhere." if t.at_risk else "."))
            for t in session.scalars(stmt)]


def _count_discrepancies(session: so.Session, depots: list[int], today: dt.date, rule: AlertRule,
                         items: set[int] | None) -> list[Condition]:
    since = dt.datetime.combine(today - dt.timedelta(days=int(rule.params.get("within_days", 30))), dt.time(),
                                tzinfo=dt.timezone.utc)
    # The books before each count: that lot, depot and pool's ledger before the adjustment, summed
    # in the same statement (over one lot's history, by the lot/depot/pool index).
    earlier = so.aliased(Movement)
    books_before = (sa.select(sa.func.coalesce(sa.func.sum(earlier.quantity), 0))
                    .where(earlier.lot_id == Movement.lot_id, earlier.depot_id == Movement.depot_id,
                           earlier.pool == Movement.pool, earlier.id < Movement.id)
                    .scalar_subquery())
    stmt = (sa.select(Movement, Depot.organisation_id, books_before).join(Movement.depot)
            .where(Movement.depot_id.in_(coverage.id_list(depots)), Movement.kind == MovementKind.ADJUSTMENT.value,
                   Movement.reversal_of_id.is_(None), Movement.occurred_at >= since)
            .options(so.joinedload(Movement.lot).joinedload(Lot.item), so.joinedload(Movement.depot)))
    if items is not None:
        stmt = stmt.join(Movement.lot).where(Lot.item_id.in_(items))
    adjustments = session.execute(stmt).all()
    if not adjustments:
        return []
    percent = float(rule.params.get("threshold_percent", 5))
    min_units = int(rule.params.get("min_units", 1))
    found = []
    for movement, org_id, books in adjustments:
        books = int(books)
        difference = abs(movement.quantity)
        share = 100.0 * difference / books if books else 100.0
        if difference >= min_units and share > percent:
            found.append(Condition(
                "count_discrepancy", org_id, movement.lot.item_id, movement.lot_id, rule.severity,
                f"Count of lot {movement.lot.lot_number} of {movement.lot.item.name} in {movement.depot.code} on "
                f"{movement.occurred_at.date().isoformat()}: {books + movement.quantity} counted, {books} on the books "
                f"({movement.quantity:+d}, {share:.1f}% — above {percent:g}%).", qualifier=str(movement.id)))
    return found


def evaluate(session: so.Session, organisations: Sequence[Organisation], *, today: dt.date,
             item_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Reconcile stored alerts of this scope with the conditions that hold now. Returns counts."""
    items = set(item_ids) if item_ids is not None else None
    now = utcnow()
    current = {c.key: c for c in conditions(session, organisations, today=today, item_ids=items)}
    scope = sa.select(Alert).where(Alert.organisation_id.in_([o.id for o in organisations]))
    if items is not None:
        scope = scope.where(Alert.item_id.in_(items))
    stored = {a.key: a for a in session.scalars(scope)}
    counts = {"opened": 0, "reopened": 0, "resolved": 0, "seen": 0}
    events: list[AlertEvent] = []
    for key, condition in current.items():
        alert = stored.get(key)
        if alert is None:
            alert = Alert(key=key, rule=condition.rule, organisation_id=condition.organisation_id,
                          item_id=condition.item_id, lot_id=condition.lot_id, severity=condition.severity,
                          message=condition.message, first_seen=now, last_seen=now, opened_at=now)
            session.add(alert)
            events.append(AlertEvent(kind=AlertEventKind.OPENED.value, at=now))
            alert.events.append(events[-1])
            counts["opened"] += 1
            continue
        if alert.state == AlertState.RESOLVED:
            alert.state = AlertState.OPEN.value
            alert.opened_at = now
            alert.resolved_at = None
            events.append(AlertEvent(kind=AlertEventKind.REOPENED.value, at=now))
            alert.events.append(events[-1])
            counts["reopened"] += 1
        else:
            counts["seen"] += 1
        alert.last_seen = now
        alert.message = condition.message
        alert.severity = condition.severity
    for key, alert in stored.items():
        if key not in current and alert.state != AlertState.RESOLVED:
            alert.state = AlertState.RESOLVED.value
            alert.resolved_at = now
            events.append(AlertEvent(kind=AlertEventKind.RESOLVED.value, at=now,
                                     comment="The condition no longer holds."))
            alert.events.append(events[-1])
            counts["resolved"] += 1
    session.flush()
    notify.queue_deliveries(session, events)
    return counts


def acknowledge(session: so.Session, alert: Alert, *, user_id: int | None, comment: str | None = None) -> Alert:
    """Mark an open alert as seen by someone who acts on it; it stays until its condition clears."""
    if alert.state != AlertState.OPEN:
        raise Conflict(f"Alert {alert.id} is {alert.state}; only open alerts can be acknowledged.",
                       code="not_open")
    alert.state = AlertState.ACKNOWLEDGED.value
    event = AlertEvent(kind=AlertEventKind.ACKNOWLEDGED.value, at=utcnow(), user_id=user_id,
                       comment=(comment or "").strip() or None)
    alert.events.append(event)
    session.flush()
    notify.queue_deliveries(session, [event])
    return alert


def full_scan(session: so.Session, *, today: dt.date) -> dict[str, int]:
    """Evaluate every organisation that holds stock or has a policy-relevant baseline."""
    organisations = list(session.scalars(sa.select(Organisation).order_by(Organisation.id)))
    return evaluate(session, organisations, today=today)


def evaluate_after_posting(session: so.Session) -> dict[str, int]:
    """After a commit that posted stock: evaluate alerts for the organisation × item pairs the
    postings touched, and only those, in a transaction of their own, and commit.

    Registered as the sessions' ``after_commit`` hook (``stockpile.db.Session``): it runs once the
    posting has committed and released its balance locks, so a slow or failing evaluation never
    delays, blocks or undoes a posting (a failure is logged and left to the scheduler's full
    scan). It costs the same for a municipality with 30 items as for a supply centre with 3,000.
    """
    changed: set[tuple[int, int]] = session.info.pop(STOCK_CHANGED, set())
    totals = {"opened": 0, "reopened": 0, "resolved": 0, "seen": 0}
    if not changed:
        return totals
    today = local_today(session.info.get("timezone", "Europe/Oslo"))
    begin_write(session)
    if session.get_bind().dialect.name == "postgresql":
        # Two postings of the same item may commit at once: their evaluations take turns per
        # pair instead of both opening the same alert (SQLite's write lock already serialises).
        for org_id, item_id in sorted(changed):
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(org_id, item_id)))
    by_org: dict[int, set[int]] = {}
    for org_id, item_id in changed:
        by_org.setdefault(org_id, set()).add(item_id)
    organisations = {o.id: o for o in session.scalars(sa.select(Organisation).where(Organisation.id.in_(by_org)))}
    for org_id, item_ids in sorted(by_org.items()):
        if org_id in organisations:
            for key, value in evaluate(session, [organisations[org_id]], today=today, item_ids=item_ids).items():
                totals[key] += value
    session.commit()
    return totals


def visible_alerts(session: so.Session, organisation_ids: Iterable[int] | None, *, state: str | None = None,
                   severity: str | None = None, organisation: Organisation | None = None,
                   rule: str | None = None) -> sa.Select[tuple[Alert]]:
    """Alerts of the organisations a user may read (None = all), newest first."""
    stmt = (sa.select(Alert).options(so.joinedload(Alert.organisation), so.joinedload(Alert.item),
                                     so.joinedload(Alert.lot))
            .order_by(Alert.last_seen.desc(), Alert.id.desc()))
    if organisation_ids is not None:
        stmt = stmt.where(Alert.organisation_id.in_(list(organisation_ids)))
    if organisation is not None:
        stmt = stmt.where(Alert.organisation_id == organisation.id)
    if state is not None:
        stmt = stmt.where(Alert.state == state)
    if severity is not None:
        stmt = stmt.where(Alert.severity == severity)
    if rule is not None:
        stmt = stmt.where(Alert.rule == rule)
    return stmt


def open_alert_count(session: so.Session, user: User) -> int:
    """Open (not yet acknowledged) alerts of the organisations ``user`` may read."""
    readable = auth.readable_organisation_ids(session, user)
    stmt = sa.select(sa.func.count(Alert.id)).where(Alert.state == AlertState.OPEN.value)
    if readable is not None:
        if not readable:
            return 0
        stmt = stmt.where(Alert.organisation_id.in_(readable))
    return session.scalar(stmt) or 0


@dataclass(frozen=True)
class AlertPage:
    alerts: list[Alert]
    total: int
    page: int   # the page shown: the one asked for, within 1 … pages
    pages: int


def alert_page(session: so.Session, readable: Iterable[int] | None, *, state: str = "active",
               severity: str | None = None, rule: str | None = None, organisation: Organisation | None = None,
               page: int = 1, per_page: int = 50) -> AlertPage:
    """One page of the alerts of the ``readable`` organisations (None = all) in ``state`` (one of
    ``STATE_FILTERS``; "active" is open or acknowledged). The alert that most recently became
    open heads the list; of those opened together (one scan), the most severe first."""
    stmt = visible_alerts(session, readable, state=state if state in {s.value for s in AlertState} else None,
                          severity=severity, organisation=organisation, rule=rule)
    if state == "active":
        stmt = stmt.where(Alert.state != AlertState.RESOLVED.value)
    rank = sa.case({s: i for i, s in enumerate(SEVERITY_ORDER)}, value=Alert.severity, else_=len(SEVERITY_ORDER))
    stmt = stmt.order_by(None).order_by(Alert.opened_at.desc(), rank, Alert.id.desc())
    total = session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())) or 0
    pages = max(1, math.ceil(total / per_page))
    page = min(page, pages)
    shown = list(session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)).unique())
    return AlertPage(shown, total, page, pages)


@dataclass
class SummaryRow:
    organisation: Organisation | None  # None for the totals
    counts: dict[str, int] = field(default_factory=dict)
    not_acknowledged: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def regional_summary(session: so.Session, readable: set[int] | None) -> tuple[list[SummaryRow], int, SummaryRow]:
    """Unresolved alerts per readable organisation (None = all) and severity (one GROUP BY),
    worst first; with the number of organisations that have none, and the totals."""
    stmt = (sa.select(Alert.organisation_id, Alert.severity, Alert.state, sa.func.count(Alert.id))
            .where(Alert.state != AlertState.RESOLVED.value)
            .group_by(Alert.organisation_id, Alert.severity, Alert.state))
    organisations = sa.select(Organisation)
    if readable is not None:
        stmt = stmt.where(Alert.organisation_id.in_(readable))
        organisations = organisations.where(Organisation.id.in_(readable))
    orgs = {o.id: o for o in session.scalars(organisations)}
    rows: dict[int, SummaryRow] = {}
    for org_id, severity, state, count in session.execute(stmt):
        if org_id not in orgs:
            continue
        row = rows.setdefault(org_id, SummaryRow(orgs[org_id]))
        row.counts[severity] = row.counts.get(severity, 0) + count
        if state == AlertState.OPEN.value:
            row.not_acknowledged += count
    ordered = sorted(rows.values(), key=lambda r: (*(-r.counts.get(s, 0) for s in SEVERITY_ORDER),
                                                   r.organisation.name if r.organisation else ""))
    totals = SummaryRow(None,
                        {s: sum(r.counts.get(s, 0) for r in ordered) for s in SEVERITY_ORDER},
                        sum(r.not_acknowledged for r in ordered))
    return ordered, len(orgs) - len(rows), totals


def history(session: so.Session, alert: Alert) -> list[AlertEvent]:
    """The events of ``alert``, newest first, with who acknowledged."""
    return list(session.scalars(sa.select(AlertEvent).where(AlertEvent.alert_id == alert.id)
                                .options(so.joinedload(AlertEvent.user))
                                .order_by(AlertEvent.at.desc(), AlertEvent.id.desc())))


def unresolved_by_rule(session: so.Session) -> dict[str, int]:
    """The number of open or acknowledged alerts of each rule that has any."""
    return dict(session.execute(sa.select(Alert.rule, sa.func.count(Alert.id))
                                .where(Alert.state != AlertState.RESOLVED.value).group_by(Alert.rule)).all())


def update_rule(session: so.Session, rule: AlertRule, *, enabled: bool, severity: str,
                params: dict[str, Any]) -> AlertRule:
    """Switch ``rule`` on or off and set its severity and thresholds (checked by the caller
    against what the rule reads); they apply from the next evaluation."""
    rule.enabled = enabled
    rule.severity = check_choice("severity", severity, Severity)
    rule.params = params
    session.flush()
    return rule
