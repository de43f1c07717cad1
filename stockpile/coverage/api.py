"""REST endpoints for coverage (API.md, *Coverage*) and the data it is measured against:
baselines, policies and scenarios (API.md, *Master data*).

Coverage is read for organisations the caller may read; a region's summary only counts the
members the caller may read. Baselines may be entered by those who record stock for the
organisation and by administrators; policies and scenarios by administrators.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Blueprint, Response, jsonify

from stockpile.api import PREFIX, current_user, load, load_args, paginate, writes
from stockpile.auth import services as auth
from stockpile.errors import Conflict, Forbidden, InvalidInput, NotFound
from stockpile.db import get
from stockpile.extensions import csrf, db
from stockpile.coverage import services as coverage
from stockpile.coverage import schemas
from stockpile.inventory.api import find, readable_organisation
from stockpile.coverage.models import Baseline, Policy, Scenario
from stockpile.inventory.models import Item, Organisation
from stockpile.web import posting_context as _context
from stockpile.web import today

bp = Blueprint("coverage_api", __name__, url_prefix=PREFIX)
# The API is authenticated by bearer tokens, not cookies, so there is no session to forge.
csrf.exempt(bp)

ROW = schemas.CoverageRowOutputSchema()
SUMMARY = schemas.PolicySummaryOutputSchema()
BASELINE = schemas.BaselineOutputSchema()
IN_FORCE = schemas.BaselineInForceOutputSchema()
POLICY = schemas.PolicyOutputSchema()
SCENARIO = schemas.ScenarioOutputSchema()


def _today(date: dt.date | None) -> dt.date:
    return date or today()


@bp.get("/coverage")
def list_coverage() -> Response:
    args = load_args(schemas.CoverageQueryInputSchema())
    session = db.session
    organisation = readable_organisation(args["organisation"])
    item = find(Item, args["item"], "item") if args["item"] else None
    today = _today(args["date"])
    rows = coverage.evaluate(session, [organisation], today=today, item=item, pool=args["pool"],
                             scenario=args["scenario"])
    page, per_page = args["page"], args["per_page"]
    shown = rows[(page - 1) * per_page:page * per_page]
    items = [{**ROW.dump(row), "scenario": args["scenario"]} for row in shown]
    return jsonify({"items": items, "page": page, "per_page": per_page, "total": len(rows)})


def _policy_totals(summaries: list[coverage.PolicySummary]) -> list[dict[str, Any]]:
    """Per policy: how many member organisations it applies to and how many meet the target."""
    by_policy: dict[int, list[coverage.PolicySummary]] = {}
    for summary in summaries:
        by_policy.setdefault(summary.policy.id, []).append(summary)
    totals = []
    for group in by_policy.values():
        meeting = sum(s.meets_target for s in group)
        totals.append({
            "policy": group[0].policy.name,
            "organisations": len(group),
            "meeting_target": meeting,
            "share_meeting_target": round(meeting / len(group), 3),
            "items": sum(s.items for s in group),
            "items_below_min": sum(s.below_min for s in group),
            "items_no_baseline": sum(s.no_baseline for s in group),
            "at_risk": sum(s.at_risk for s in group),
        })
    return sorted(totals, key=lambda t: t["policy"])


@bp.get("/coverage/summary")
def coverage_summary() -> Response:
    args = load_args(schemas.CoverageSummaryQueryInputSchema())
    session = db.session
    parent = readable_organisation(args["parent"], "parent")
    readable = auth.readable_organisation_ids(session, current_user())
    members = [m for m in coverage.members_of(session, parent) if readable is None or m.id in readable]
    today = _today(args["date"])
    summaries = coverage.summarise(coverage.evaluate(session, members, today=today,
                                                     scenario=args["scenario"]), members)
    return jsonify({"parent": parent.code, "evaluated_on": today.isoformat(),
                    "scenario": args["scenario"], "policies": _policy_totals(summaries),
                    "members": SUMMARY.dump(summaries, many=True)})


def _in_force(session: so.Session, organisation: Organisation, item: Item,
              today: dt.date) -> dict[str, Any]:
    """The baseline that counts on ``today`` (which may not be the newest entered), or why none does."""
    stored = coverage.stored_baselines(session, [organisation.id], today, [item.id])
    computed = {}
    if not stored:  # a stored baseline in force wins; the ledger is read only without one
        computed = coverage.computed_use(session, [organisation.id], today, item_ids=[item.id])
    found, reason = coverage.baseline_in_force(stored, computed, organisation.id, item.id)
    in_force = None
    if found is not None:
        row = stored.get((organisation.id, item.id, found.source))
        in_force = {**IN_FORCE.dump(found), "id": row.id if row is not None else None}
    return {"organisation": organisation.code, "item": item.code, "evaluated_on": today.isoformat(),
            "in_force": in_force, "no_baseline_reason": reason or None}


@bp.put("/baselines/<organisation>/<item>")
@writes
def set_baseline(organisation: str, item: str) -> tuple[dict[str, Any], int]:
    data = load(schemas.BaselineInputSchema())
    session = db.session
    org = find(Organisation, organisation, "organisation")
    the_item = find(Item, item, "item")
    if not auth.can_write(current_user(), org.id):
        raise Forbidden(f"You may not change baselines of {org.code}: only those who record its "
                        "stock, and administrators, may.")
    ctx = _context()
    if "weekly_use" in data:
        baseline = coverage.set_manual_baseline(session, ctx, organisation=org, item=the_item,
                                                 weekly_use=data["weekly_use"],
                                                 valid_from=data["valid_from"], note=data["note"])
    else:
        baseline = coverage.set_annual_baseline(session, ctx, organisation=org, item=the_item,
                                                 annual_use=data["annual_use"],
                                                 deviating_years=data["deviating_years"],
                                                 valid_from=data["valid_from"])
    return {"baseline": BASELINE.dump(baseline), **_in_force(session, org, the_item, ctx.today)}, 200


@bp.get("/baselines/<organisation>/<item>")
def get_baseline(organisation: str, item: str) -> Response:
    args = load_args(schemas.BaselineQueryInputSchema())
    session = db.session
    org = readable_organisation(organisation)
    the_item = find(Item, item, "item")
    history = session.scalars(
        sa.select(Baseline).where(Baseline.organisation_id == org.id, Baseline.item_id == the_item.id)
        .options(so.selectinload(Baseline.recorded_by))
        .order_by(Baseline.recorded_at.desc(), Baseline.id.desc()))
    return jsonify({**_in_force(session, org, the_item, _today(args["date"])),
                    "history": BASELINE.dump(history.all(), many=True)})


def _scope(data: dict[str, Any]) -> dict[str, Any]:
    """Organisation and item codes of a policy body looked up (404 naming the field if unknown)."""
    found = dict(data)
    if data.get("organisation") is not None:
        found["organisation"] = find(Organisation, data["organisation"], "organisation")
    if data.get("item") is not None:
        found["item"] = find(Item, data["item"], "item")
    return found


def _policy(policy_id: int) -> Policy:
    policy = get(db.session, Policy, policy_id)
    if policy is None:
        raise NotFound(f"No policy {policy_id}.", fields={"id": ["Unknown policy."]})
    return policy


@bp.get("/policies")
def list_policies() -> Response:
    load_args(schemas.ListInputSchema())
    stmt = (sa.select(Policy).options(so.selectinload(Policy.organisation), so.selectinload(Policy.item))
            .order_by(Policy.id))
    return paginate(stmt, POLICY)


@bp.get("/policies/<int:policy_id>")
def get_policy(policy_id: int) -> Response:
    return jsonify(POLICY.dump(_policy(policy_id)))


@bp.post("/policies")
@writes
def create_policy() -> tuple[dict[str, Any], int]:
    auth.require_admin(current_user())
    data = _scope(load(schemas.PolicyInputSchema()))
    policy = coverage.save_policy(db.session, **data)
    return POLICY.dump(policy), 201


@bp.put("/policies/<int:policy_id>")
@writes
def change_policy(policy_id: int) -> tuple[dict[str, Any], int]:
    auth.require_admin(current_user())
    policy = _policy(policy_id)
    data = _scope(load(schemas.PolicyChangeInputSchema()))
    merged: dict[str, Any] = {
        "name": policy.name, "pool": policy.pool, "min_days": policy.min_days,
        "target_days": policy.target_days, "max_days": policy.max_days, "active": policy.active,
        "organisation_kind": policy.organisation_kind, "organisation": policy.organisation,
        "category": policy.category, "item_list": policy.item_list, "item": policy.item,
    }
    # A scope given replaces the whole scope it belongs to.
    if "organisation_kind" in data or "organisation" in data:
        merged.update(organisation_kind=None, organisation=None)
    if {"category", "item_list", "item"} & data.keys():
        merged.update(category=None, item_list=None, item=None)
    merged.update(data)
    try:
        schemas.check_policy(merged)
    except ma.ValidationError as exc:
        messages = exc.normalized_messages()
        raise InvalidInput(f"The policy would be invalid: {', '.join(sorted(messages))}.",
                           fields=messages) from exc
    policy = coverage.save_policy(db.session, policy=policy, **merged)
    return POLICY.dump(policy), 200


@bp.get("/scenarios")
def list_scenarios() -> Response:
    load_args(schemas.ListInputSchema())
    stmt = sa.select(Scenario).options(so.selectinload(Scenario.factors)).order_by(Scenario.name)
    return paginate(stmt, SCENARIO)


@bp.post("/scenarios")
@writes
def create_scenario() -> tuple[dict[str, Any], int]:
    auth.require_admin(current_user())
    data = load(schemas.ScenarioInputSchema())
    session = db.session
    if session.scalar(sa.select(Scenario.id).where(Scenario.name == data["name"])) is not None:
        raise Conflict(f"A scenario named {data['name']!r} already exists.", code="duplicate_name",
                       fields={"name": ["Already taken."]})
    item_factors = {}
    for code, factor in data["item_factors"].items():
        item_factors[find(Item, code, "item_factors")] = factor
    scenario = coverage.save_scenario(session, name=data["name"], description=data["description"],
                                       factors=data["factors"], item_factors=item_factors)
    return SCENARIO.dump(scenario), 201
