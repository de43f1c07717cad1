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
from stockpile.inventory.models import (Category, DisposalReason, IssueFlag, LotStatus,
                                        MovementKind, OrganisationKind, Pool, PPEGroup)

INT_MAX = 2**31 - 1
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


# --- master data ---------------------------------------------------------------------------

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


# --- stock movements -----------------------------------------------------------------------

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


# --- query strings -------------------------------------------------------------------------

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


# --- coverage, baselines, policies, scenarios (API.md, *Coverage*) ---------------------------

import math  # noqa: E402
from decimal import ROUND_HALF_UP, Decimal  # noqa: E402
from fractions import Fraction  # noqa: E402

from stockpile.inventory.models import PolicyPool  # noqa: E402

# Evaluation dates and valid-from dates stay where date arithmetic (windows of weeks back,
# years before) cannot overflow.
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(9990, 12, 31)
# weekly_use is NUMERIC(16, 4), policy days NUMERIC(10, 4), scenario factors NUMERIC(8, 3).
MAX_WEEKLY_USE = Decimal(999_999_999_999)
MAX_ANNUAL_USE = 10**12
MAX_FACTOR = Decimal(99_999)
SCENARIO_NAME_LENGTH = 100


def date_field(**kwargs: Any) -> fields.Date:
    return fields.Date(validate=validate.Range(
        min=EARLIEST_DATE, max=LATEST_DATE,
        error=f"Use a date from {EARLIEST_DATE.isoformat()} to {LATEST_DATE.isoformat()}."), **kwargs)


class Amount(fields.Field):
    """A JSON number (not a string, not true/false, not NaN) as an exact ``Decimal``, rounded
    half up to the ``places`` the column stores, within ``minimum`` … ``maximum``.

    With ``above_minimum`` the minimum itself is refused (demand factors must be above zero).
    """

    default_error_messages = {
        "invalid": "Must be a number.",
        "range": "Must be from {minimum} to {maximum}.",
        "above": "Must be above {minimum} (and at most {maximum}).",
    }

    def __init__(self, *, places: int, minimum: Decimal, maximum: Decimal,
                 above_minimum: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.places = places
        self.minimum = Decimal(minimum)
        self.maximum = Decimal(maximum)
        self.above_minimum = above_minimum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.make_error("invalid")
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if abs(number) > self.maximum + 1:  # before rounding: quantize cannot hold huge numbers
            raise self.make_error("above" if self.above_minimum else "range",
                                  minimum=self.minimum, maximum=self.maximum)
        number = number.quantize(Decimal(1).scaleb(-self.places), rounding=ROUND_HALF_UP)
        too_low = number <= self.minimum if self.above_minimum else number < self.minimum
        if too_low or number > self.maximum:
            raise self.make_error("above" if self.above_minimum else "range",
                                  minimum=self.minimum, maximum=self.maximum)
        return number


def days_field(**kwargs: Any) -> Amount:
    return Amount(places=4, minimum=Decimal(0), maximum=Decimal(MAX_DAYS), **kwargs)


def factor_field(**kwargs: Any) -> Amount:
    return Amount(places=3, minimum=Decimal(0), maximum=MAX_FACTOR, above_minimum=True, **kwargs)


def rounded(value: Fraction | Decimal | None, places: int) -> float | None:
    """An exact number as a float rounded half up to ``places`` decimals (``None`` stays ``None``)."""
    if value is None:
        return None
    scale = 10**places
    return float(Fraction(math.floor(Fraction(value) * scale + Fraction(1, 2)), scale))


class CoverageQueryInputSchema(ListInputSchema):
    organisation = ref_field(required=True)
    item = ref_field(load_default=None)
    pool = choice_field(PolicyPool, load_default=None)
    date = date_field(load_default=None)
    scenario = Text(load_default=None, validate=validate.Length(min=1, max=SCENARIO_NAME_LENGTH))


class CoverageSummaryQueryInputSchema(ma.Schema):
    parent = ref_field(required=True)
    date = date_field(load_default=None)
    scenario = Text(load_default=None, validate=validate.Length(min=1, max=SCENARIO_NAME_LENGTH))


def _days(attribute: str) -> fields.Function:
    return fields.Function(lambda row: rounded(getattr(row, attribute), 4))


class CoverageRowOutputSchema(ma.Schema):
    """One organisation × item × policy. Days to 2 decimals, weeks to 1, weekly use to 4;
    without a (non-zero) baseline the coverage figures are null."""

    organisation = fields.String(attribute="organisation.code")
    item = fields.String(attribute="item.code")
    policy = fields.String(attribute="policy.name")
    pool = fields.String()
    usable = fields.Integer()
    weekly_use = fields.Function(lambda row: rounded(row.baseline.weekly_use, 4) if row.baseline else None)
    baseline_source = fields.Function(lambda row: row.baseline.source if row.baseline else None)
    coverage_days = fields.Function(lambda row: rounded(row.days, 2))
    coverage_weeks = fields.Function(lambda row: row.weeks)
    expiry_aware_days = fields.Function(lambda row: rounded(row.expiry.days, 2) if row.expiry else None)
    at_risk = fields.Function(lambda row: row.expiry.at_risk_units if row.expiry else None)
    min_days = _days("min_days")
    target_days = _days("target_days")
    max_days = _days("max_days")
    status = fields.Function(lambda row: row.status.value)
    shortfall = fields.Integer(allow_none=True)
    no_baseline_reason = fields.Function(lambda row: row.no_baseline_reason or None)
    evaluated_on = fields.Date()


class PolicySummaryOutputSchema(ma.Schema):
    organisation = fields.String(attribute="organisation.code")
    policy = fields.String(attribute="policy.name")
    items = fields.Integer()
    meeting_target = fields.Integer()
    below_min = fields.Integer()
    no_baseline = fields.Integer()
    at_risk = fields.Integer()
    meets_target = fields.Boolean()


class Year(Text):
    """A calendar year written as four digits (JSON object keys are strings)."""

    default_error_messages = {"year": "Use a four-digit year, e.g. \"2025\"."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not re.fullmatch(r"[12]\d{3}", text):
            raise self.make_error("year")
        return int(text)


class BaselineInputSchema(ma.Schema):
    """``weekly_use`` (source ``manual``), or ``annual_use`` per year (source ``annual_3y``)."""

    weekly_use = Amount(places=4, minimum=Decimal(0), maximum=MAX_WEEKLY_USE)
    source = Text(load_default=None, validate=validate.OneOf(
        ["manual", "annual_3y"], error="Use manual (with weekly_use) or annual_3y (with annual_use); "
                                       "computed baselines come from the issue history by themselves."))
    valid_from = date_field(load_default=None)
    note = Text(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    annual_use = fields.Dict(keys=Year(), values=fields.Integer(
        strict=True, validate=validate.Range(min=0, max=MAX_ANNUAL_USE)),
        validate=validate.Length(min=1, max=50))
    deviating_years = fields.List(fields.Integer(strict=True, validate=validate.Range(min=1000, max=2999)),
                                  load_default=list, validate=validate.Length(max=50))

    @ma.validates_schema
    def _one_source(self, data: dict[str, Any], **_: Any) -> None:
        manual, annual = "weekly_use" in data, "annual_use" in data
        if manual == annual:
            message = ("Give weekly_use (source manual) or annual_use per year (source annual_3y), "
                       + ("not both." if manual else "one of them."))
            raise ma.ValidationError({"weekly_use": [message], "annual_use": [message]})
        wanted = "manual" if manual else "annual_3y"
        if data.get("source") not in (None, wanted):
            raise ma.ValidationError({"source": [
                f"With {'weekly_use' if manual else 'annual_use'} the source is {wanted}."]})
        if manual and data.get("deviating_years"):
            raise ma.ValidationError({"deviating_years": ["Only with annual_use."]})
        if annual and data.get("note") is not None:
            raise ma.ValidationError({"note": ["Only with weekly_use: a § 8a baseline is explained by its years."]})


class BaselineQueryInputSchema(ma.Schema):
    date = date_field(load_default=None)


class BaselineOutputSchema(ma.Schema):
    """A stored baseline row, as entered."""

    id = fields.Integer()
    organisation = fields.String(attribute="organisation.code")
    item = fields.String(attribute="item.code")
    source = fields.String()
    weekly_use = fields.Function(lambda b: rounded(b.weekly_use, 4))
    valid_from = fields.Date()
    annual_use = fields.Dict()
    years_used = fields.List(fields.Integer())
    years_replaced = fields.Dict()
    note = fields.String()
    recorded_by = fields.Function(lambda b: b.recorded_by.email if b.recorded_by else None)
    recorded_at = fields.DateTime(format="iso")


class BaselineInForceOutputSchema(ma.Schema):
    """The baseline that counts on a day: ``id`` is the stored row's (null when computed)."""

    id = fields.Integer(allow_none=True)
    weekly_use = fields.Function(lambda b: rounded(b.weekly_use, 4))
    source = fields.String()
    valid_from = fields.Date(allow_none=True)
    explanation = fields.String()
    years_used = fields.List(fields.Integer(), allow_none=True)
    years_replaced = fields.Dict(allow_none=True)


class PolicyInputSchema(ma.Schema):
    name = name_field(required=True)
    organisation_kind = choice_field(OrganisationKind, load_default=None, allow_none=True)
    organisation = ref_field(load_default=None, allow_none=True)
    category = choice_field(Category, load_default=None, allow_none=True)
    item_list = code_field(load_default=None, allow_none=True)
    item = ref_field(load_default=None, allow_none=True)
    pool = choice_field(PolicyPool, required=True)
    min_days = days_field(required=True)
    target_days = days_field(required=True)
    max_days = days_field(load_default=None, allow_none=True)
    active = fields.Boolean(load_default=True, truthy={True}, falsy={False})

    @ma.validates_schema
    def _scopes_and_days(self, data: dict[str, Any], **_: Any) -> None:
        check_policy(data)


class PolicyChangeInputSchema(ma.Schema):
    """Any fields of a policy; a scope given replaces the other of its pair (``organisation``
    clears ``organisation_kind``, ``item`` clears ``category`` and ``item_list``)."""

    name = name_field()
    organisation_kind = choice_field(OrganisationKind, allow_none=True)
    organisation = ref_field(allow_none=True)
    category = choice_field(Category, allow_none=True)
    item_list = code_field(allow_none=True)
    item = ref_field(allow_none=True)
    pool = choice_field(PolicyPool)
    min_days = days_field()
    target_days = days_field()
    max_days = days_field(allow_none=True)
    active = fields.Boolean(truthy={True}, falsy={False})

    @ma.validates_schema
    def _one_scope_each(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if sum(data.get(k) is not None for k in ("organisation_kind", "organisation")) > 1:
            errors["organisation"] = ["Give organisation_kind or organisation, not both."]
        if sum(data.get(k) is not None for k in ("category", "item_list", "item")) > 1:
            errors["item"] = ["Give one of category, item_list or item."]
        if errors:
            raise ma.ValidationError(errors)


def check_policy(data: dict[str, Any]) -> None:
    """A policy's scopes (one organisation scope, one item scope) and days in order."""
    errors: dict[str, list[str]] = {}
    if sum(data.get(k) is not None for k in ("organisation_kind", "organisation")) != 1:
        errors["organisation"] = ["Give organisation_kind or organisation (exactly one)."]
    if sum(data.get(k) is not None for k in ("category", "item_list", "item")) != 1:
        errors["item"] = ["Give exactly one of category, item_list or item."]
    low, target, high = data.get("min_days"), data.get("target_days"), data.get("max_days")
    if low is not None and target is not None and target < low:
        errors["target_days"] = [f"target_days ({target}) cannot be below min_days ({low})."]
    if target is not None and high is not None and high < target:
        errors["max_days"] = [f"max_days ({high}) cannot be below target_days ({target})."]
    if errors:
        raise ma.ValidationError(errors)


def _decimal(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


class PolicyOutputSchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    organisation_kind = fields.String(allow_none=True)
    organisation = fields.Function(lambda p: p.organisation.code if p.organisation else None)
    category = fields.String(allow_none=True)
    item_list = fields.String(allow_none=True)
    item = fields.Function(lambda p: p.item.code if p.item else None)
    pool = fields.String()
    min_days = fields.Function(lambda p: _decimal(p.min_days))
    target_days = fields.Function(lambda p: _decimal(p.target_days))
    max_days = fields.Function(lambda p: _decimal(p.max_days))
    active = fields.Boolean()
    updated_at = fields.DateTime(format="iso")


class ScenarioInputSchema(ma.Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=SCENARIO_NAME_LENGTH))
    description = Text(load_default="", validate=validate.Length(max=2000))
    factors = fields.Dict(keys=choice_field(Category), values=factor_field(), load_default=dict)
    item_factors = fields.Dict(keys=ref_field(), values=factor_field(), load_default=dict,
                               validate=validate.Length(max=500))

    @ma.validates_schema
    def _some_factor(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("factors") and not data.get("item_factors"):
            raise ma.ValidationError({"factors": [
                "Give at least one demand factor, e.g. {\"ppe\": 4} or item_factors {\"ITEM-CODE\": 2}."]})


class ScenarioOutputSchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    factors = fields.Function(lambda s: {f.category: float(f.factor) for f in s.factors if f.category})
    item_factors = fields.Function(lambda s: {f.item.code: float(f.factor) for f in s.factors if f.item})
