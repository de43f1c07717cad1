"""JSON in and out of the rotation API (API.md, *Rotation and alerts*).

The plan is answered one row per emergency lot and depot; the rows are built by the API from
``rotation.services.rotation_plan`` as plain mappings, so the output schemas read keys.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from stockpile.inventory.schemas import ListInputSchema, choice_field, quantity_field, ref_field
from stockpile.rotation.models import TaskState
from stockpile.rotation.services import DEFAULT_MARGIN_DAYS

# A year of margin is already far beyond any shelf-life practice; more would only move every
# rotate-by date before the calendar starts.
MAX_MARGIN_DAYS = 3650


def _rounded(value: Any, places: int) -> float | None:
    return None if value is None else round(float(value), places)


class PlanQueryInputSchema(ListInputSchema):
    organisation = ref_field(required=True)
    item = ref_field(load_default=None)
    margin_days = fields.Integer(load_default=DEFAULT_MARGIN_DAYS, validate=validate.Range(min=0, max=MAX_MARGIN_DAYS))


class TaskQueryInputSchema(ListInputSchema):
    organisation = ref_field(load_default=None)
    item = ref_field(load_default=None)
    state = choice_field(TaskState, load_default=None)


class TaskCompleteInputSchema(ma.Schema):
    """``quantity`` moves part of the lot; without it, all of its emergency stock in the depot."""

    quantity = quantity_field(load_default=None, allow_none=True)


class SuggestionOutputSchema(ma.Schema):
    action = fields.String()
    quantity = fields.Integer()
    organisation = fields.Function(lambda s: s.organisation.code if s.organisation else None)
    coverage_days = fields.Function(lambda s: _rounded(s.coverage_days, 1))
    note = fields.String()


class PlanLotOutputSchema(ma.Schema):
    organisation = fields.String()
    item = fields.String()
    depot = fields.String()
    lot_number = fields.String()
    expiry = fields.Date()
    quantity = fields.Integer()
    rotate_by = fields.Date()
    finish_by = fields.Date()
    state = fields.String()
    absorbable = fields.Integer()
    at_risk = fields.Integer()
    reason = fields.String()
    daily_use = fields.Function(lambda row: _rounded(row["daily_use"], 4))
    baseline = fields.String()
    margin_days = fields.Integer()
    suggestions = fields.List(fields.Nested(SuggestionOutputSchema))
    task = fields.Integer(allow_none=True)


class TaskOutputSchema(ma.Schema):
    id = fields.Integer()
    organisation = fields.String(attribute="organisation.code")
    depot = fields.String(attribute="depot.code")
    item = fields.String(attribute="item.code")
    lot_number = fields.String(attribute="lot.lot_number")
    expiry = fields.Date(attribute="lot.expiry")
    quantity = fields.Integer()
    at_risk = fields.Integer()
    rotate_by = fields.Date()
    finish_by = fields.Date()
    state = fields.String()
    reason = fields.String()
    created_at = fields.DateTime(format="iso")
    updated_at = fields.DateTime(format="iso")
    completed_at = fields.DateTime(format="iso")
    completed_by = fields.Function(lambda t: t.completed_by.email if t.completed_by else None)
    posting_id = fields.String()
