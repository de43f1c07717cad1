"""JSON in and out of the alerts API (API.md, *Rotation and alerts*)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from stockpile.alerts.models import AlertState, Severity
from stockpile.inventory.schemas import ListInputSchema, Text, choice_field, ref_field


class AlertQueryInputSchema(ListInputSchema):
    organisation = ref_field(load_default=None)
    state = choice_field(AlertState, load_default=None)
    severity = choice_field(Severity, load_default=None)
    rule = ref_field(load_default=None)


class AcknowledgeInputSchema(ma.Schema):
    comment = Text(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class AlertOutputSchema(ma.Schema):
    id = fields.Integer()
    rule = fields.String()
    severity = fields.String()
    state = fields.String()
    organisation = fields.String(attribute="organisation.code")
    item = fields.Function(lambda a: a.item.code if a.item is not None else None)
    lot_number = fields.Function(lambda a: a.lot.lot_number if a.lot is not None else None)
    message = fields.String()
    first_seen = fields.DateTime(format="iso")
    last_seen = fields.DateTime(format="iso")
    resolved_at = fields.DateTime(format="iso")


class AlertEventOutputSchema(ma.Schema):
    kind = fields.String()
    at = fields.DateTime(format="iso")
    user = fields.Function(lambda e: e.user.email if e.user is not None else None)
    comment = fields.String()


class AlertDetailOutputSchema(AlertOutputSchema):
    """An alert with its history, oldest event first."""

    events = fields.List(fields.Nested(AlertEventOutputSchema))
