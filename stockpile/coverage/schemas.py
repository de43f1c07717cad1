"""JSON in and out of the coverage API (API.md, *Coverage*): coverage rows and summaries,
baselines, policies and scenarios."""

from __future__ import annotations

import datetime as dt
import re
import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from stockpile.coverage.models import PolicyPool
from stockpile.inventory.models import Category, OrganisationKind
from stockpile.inventory.schemas import (MAX_DAYS, ListInputSchema, Text, choice_field, code_field, name_field,
                                         ref_field)

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
