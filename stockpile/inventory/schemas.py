"""JSON in and out of the inventory API (API.md, *Master data* and *Stock movements*).

Input schemas refuse what the database could not hold (lengths of the columns, integers
beyond their range, NUL characters PostgreSQL rejects) so bad input is a 400 naming the
field, never a 500. Rules of the domain (expired lots, stock levels) stay in the services.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from stockpile.api import MAX_PER_PAGE
from stockpile.db import INT_MAX
from stockpile.inventory.models import (Category, DisposalReason, IssueFlag, LotStatus,
                                        MovementKind, OrganisationKind, Pool, PPEGroup)

# Far above any real stock line, far below where sums of BIGINT balances could overflow.
MAX_QUANTITY = 1_000_000_000
# A century of shelf life; larger values would overflow date arithmetic.
MAX_DAYS = 36_500
CODE_PATTERN = r"^\w[\w.\-]*$"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _values(enum_cls: Any) -> list[str]:
    return [member.value for member in enum_cls]


class Text(fields.String):
    """A string without control characters (PostgreSQL refuses NUL in text columns)."""

    default_error_messages = {"control": "Must not contain control characters."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if _CONTROL.search(text):
            raise self.make_error("control")
        return text


class Moment(fields.Field):
    """A date ``YYYY-MM-DD`` or an ISO 8601 timestamp with offset, for ``since``/``until``.

    In a query string an unencoded ``+`` arrives as a space; it is read back as the ``+`` of
    the offset.
    """

    default_error_messages = {
        "invalid": "Use a date YYYY-MM-DD or a timestamp with offset, e.g. 2026-11-23T08:00:00+01:00.",
        "naive": "A timestamp needs an offset, e.g. +01:00 or Z.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date | dt.datetime:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        value = value.strip()
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                return dt.date.fromisoformat(value)
            if "T" not in value:
                raise ValueError(value)
            day, _, time = value.partition("T")
            moment = dt.datetime.fromisoformat(f"{day}T{time.replace(' ', '+')}")
        except ValueError as exc:
            raise self.make_error("invalid") from exc
        if moment.tzinfo is None:
            raise self.make_error("naive")
        return moment


def code_field(**kwargs: Any) -> Text:
    """A new code: letters, digits, '.', '-', '_' — it appears in URLs, so no spaces or '/'."""
    return Text(validate=[validate.Length(min=1, max=40),
                          validate.Regexp(CODE_PATTERN, error="Use letters, digits, '.', '-' and "
                                                              "'_' only (no spaces or slashes).")],
                **kwargs)


def ref_field(**kwargs: Any) -> Text:
    """A reference to an existing code (looked up, so only its length is checked here)."""
    return Text(validate=validate.Length(min=1, max=40), **kwargs)


def name_field(**kwargs: Any) -> Text:
    return Text(validate=validate.Length(min=1, max=200), **kwargs)


def choice_field(enum_cls: Any, **kwargs: Any) -> Text:
    return Text(validate=validate.OneOf(_values(enum_cls)), **kwargs)


def quantity_field(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_QUANTITY), **kwargs)


def reason_field(**kwargs: Any) -> Text:
    return Text(validate=validate.Length(min=1, max=2000), **kwargs)


def reference_field() -> Text:
    return Text(load_default=None, allow_none=True, validate=validate.Length(max=200))


def occurred_at_field() -> fields.AwareDateTime:
    return fields.AwareDateTime(format="iso", load_default=None, allow_none=True)


class OrganisationInputSchema(ma.Schema):
    code = code_field(required=True)
    name = name_field(required=True)
    kind = choice_field(OrganisationKind, required=True)
    parent = ref_field(load_default=None, allow_none=True)
    population = fields.Integer(strict=True, load_default=None, allow_none=True,
                                validate=validate.Range(min=0, max=INT_MAX))


class OrganisationOutputSchema(ma.Schema):
    code = fields.String()
    name = fields.String()
    kind = fields.String()
    parent = fields.Function(lambda org: org.parent.code if org.parent else None)
    population = fields.Integer()


class DepotInputSchema(ma.Schema):
    code = code_field(required=True)
    name = name_field(required=True)
    organisation = ref_field(required=True)


class DepotOutputSchema(ma.Schema):
    code = fields.String()
    name = fields.String()
    organisation = fields.String(attribute="organisation.code")


class ItemInputSchema(ma.Schema):
    code = code_field(required=True)
    name = name_field(required=True)
    category = choice_field(Category, required=True)
    unit = Text(required=True, validate=validate.Length(min=1, max=40))
    pack_size = fields.Integer(strict=True, load_default=None, allow_none=True,
                               validate=validate.Range(min=1, max=INT_MAX))
    gtin = Text(load_default=None, allow_none=True, validate=validate.Length(max=20))
    atc = Text(load_default=None, allow_none=True, validate=validate.Length(max=10))
    ppe_group = choice_field(PPEGroup, load_default=None, allow_none=True)
    has_expiry = fields.Boolean(load_default=True, truthy={True}, falsy={False})


class ItemOutputSchema(ma.Schema):
    code = fields.String()
    name = fields.String()
    category = fields.String()
    unit = fields.String()
    pack_size = fields.Integer()
    gtin = fields.String()
    atc = fields.String()
    ppe_group = fields.String()
    has_expiry = fields.Boolean()


class JsonBoolean(fields.Boolean):
    """JSON ``true`` or ``false`` only: ``1 == True`` in Python, so truthy sets alone take 1 and 0."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class ReceiptInputSchema(ma.Schema):
    """A receipt names item, lot and expiry — or carries them in one scanned ``gs1`` string.

    With ``swap`` the fresh lot goes into the emergency pool and the same quantity of the oldest
    emergency stock moves to the operational pool, in one transaction (DESIGN.md §5).
    """

    depot = ref_field(required=True)
    pool = choice_field(Pool, load_default=Pool.OPERATIONAL.value)
    item = ref_field()
    lot_number = Text(validate=validate.Length(min=1, max=40))
    expiry = fields.Date(allow_none=True)
    gs1 = fields.String(validate=[validate.Length(min=1, max=200),
                                  validate.Regexp(r"^[^\x00]*$", error="Must not contain NUL.")])
    quantity = quantity_field(required=True)
    reference = reference_field()
    occurred_at = occurred_at_field()
    swap = JsonBoolean(load_default=False)

    @ma.validates_schema(pass_original=True)
    def _swap_into_emergency(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        pool = original.get("pool", Pool.EMERGENCY.value) if isinstance(original, dict) else None
        if data.get("swap") and pool != Pool.EMERGENCY.value:
            raise ma.ValidationError({"pool": [
                "With swap the fresh lot goes into the emergency pool: send pool emergency, or leave it out."]})

    @ma.validates_schema
    def _item_or_scan(self, data: dict[str, Any], **_: Any) -> None:
        if "gs1" in data:
            extra = [name for name in ("item", "lot_number", "expiry") if name in data]
            if extra:
                raise ma.ValidationError(
                    {name: ["Leave this out when gs1 is given: the scan carries it."] for name in extra})
            return
        missing = {name: ["Required unless gs1 is given."]
                   for name in ("item", "lot_number") if name not in data}
        if missing:
            raise ma.ValidationError(missing)


class IssueInputSchema(ma.Schema):
    depot = ref_field(required=True)
    pool = choice_field(Pool, load_default=Pool.OPERATIONAL.value)
    item = ref_field(required=True)
    quantity = quantity_field(required=True)
    recipient = Text(load_default=None, allow_none=True, validate=validate.Length(max=200))
    flag = choice_field(IssueFlag, load_default=IssueFlag.NORMAL.value)
    min_remaining_days = fields.Integer(strict=True, load_default=None, allow_none=True,
                                        validate=validate.Range(min=0, max=MAX_DAYS))
    lot_number = Text(load_default=None, allow_none=True, validate=validate.Length(min=1, max=40))
    override_reason = reason_field(load_default=None, allow_none=True)
    reference = reference_field()
    occurred_at = occurred_at_field()

    @ma.validates_schema
    def _override_needs_lot(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("override_reason") and not data.get("lot_number"):
            raise ma.ValidationError({"lot_number": [
                "Name the lot to take when giving override_reason (or leave both out for FEFO)."]})
        if data.get("lot_number") and not data.get("override_reason"):
            raise ma.ValidationError({"override_reason": [
                "Say why this lot is taken instead of the first-expiring one."]})


class TransferInputSchema(ma.Schema):
    from_depot = ref_field(required=True)
    from_pool = choice_field(Pool, load_default=Pool.OPERATIONAL.value)
    to_depot = ref_field(required=True)
    to_pool = choice_field(Pool, load_default=Pool.OPERATIONAL.value)
    item = ref_field(required=True)
    quantity = quantity_field(required=True)
    lot_number = Text(load_default=None, allow_none=True, validate=validate.Length(min=1, max=40))
    reason = reason_field(load_default=None, allow_none=True)
    reference = reference_field()
    occurred_at = occurred_at_field()


class AdjustmentInputSchema(ma.Schema):
    depot = ref_field(required=True)
    pool = choice_field(Pool, load_default=Pool.OPERATIONAL.value)
    item = ref_field(required=True)
    lot_number = Text(required=True, validate=validate.Length(min=1, max=40))
    counted_quantity = fields.Integer(strict=True, required=True,
                                      validate=validate.Range(min=0, max=MAX_QUANTITY))
    reason = reason_field(required=True)
    reference = reference_field()
    occurred_at = occurred_at_field()


class DisposalInputSchema(ma.Schema):
    depot = ref_field(required=True)
    pool = choice_field(Pool, load_default=Pool.OPERATIONAL.value)
    item = ref_field(required=True)
    lot_number = Text(required=True, validate=validate.Length(min=1, max=40))
    quantity = quantity_field(required=True)
    reason = choice_field(DisposalReason, required=True)
    reference = reference_field()
    occurred_at = occurred_at_field()


class ReversalInputSchema(ma.Schema):
    reason = reason_field(required=True)


class LotStatusInputSchema(ma.Schema):
    status = choice_field(LotStatus, required=True)
    reason = reason_field(required=True)


class ShelfLifeExtensionInputSchema(ma.Schema):
    new_expiry = fields.Date(required=True)
    reason = reason_field(required=True)


class MovementOutputSchema(ma.Schema):
    id = fields.Integer()
    kind = fields.String()
    item = fields.String(attribute="lot.item.code")
    lot_number = fields.String(attribute="lot.lot_number")
    expiry = fields.Date(attribute="lot.expiry")
    depot = fields.String(attribute="depot.code")
    pool = fields.String()
    quantity = fields.Integer()
    occurred_at = fields.DateTime(format="iso")
    recorded_at = fields.DateTime(format="iso")
    recorded_by = fields.Function(lambda m: m.recorded_by.email if m.recorded_by else None)
    reference = fields.String()
    reason = fields.String()
    flag = fields.String()
    recipient = fields.String()
    fefo_override = fields.Boolean()
    reversal_of = fields.Integer(attribute="reversal_of_id")


class BalanceOutputSchema(ma.Schema):
    item = fields.String(attribute="lot.item.code")
    lot_number = fields.String(attribute="lot.lot_number")
    expiry = fields.Date(attribute="lot.expiry")
    status = fields.String(attribute="lot.status")
    depot = fields.String(attribute="depot.code")
    pool = fields.String()
    quantity = fields.Integer()


class LotEventOutputSchema(ma.Schema):
    kind = fields.String()
    old_value = fields.String()
    new_value = fields.String()
    reason = fields.String()
    recorded_by = fields.Function(lambda e: e.recorded_by.email if e.recorded_by else None)
    recorded_at = fields.DateTime(format="iso")


class LotOutputSchema(ma.Schema):
    item = fields.String(attribute="item.code")
    lot_number = fields.String()
    expiry = fields.Date()
    original_expiry = fields.Date()
    status = fields.String()


class ListInputSchema(ma.Schema):
    """Page arguments shared by every list; unknown arguments are refused, not ignored."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=INT_MAX // MAX_PER_PAGE))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PER_PAGE))


class DepotQueryInputSchema(ListInputSchema):
    organisation = ref_field(load_default=None)


class MovementQueryInputSchema(ListInputSchema):
    item = ref_field(load_default=None)
    depot = ref_field(load_default=None)
    organisation = ref_field(load_default=None)
    kind = choice_field(MovementKind, load_default=None)
    since = Moment(load_default=None)
    until = Moment(load_default=None)


class StockQueryInputSchema(ListInputSchema):
    organisation = ref_field(load_default=None)
    depot = ref_field(load_default=None)
    item = ref_field(load_default=None)
    pool = choice_field(Pool, load_default=None)
