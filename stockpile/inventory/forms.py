"""Forms for the stock movements, lots and master data.

The forms only parse and check shapes (required, whole numbers, dates); the rules of the
domain (enough usable stock, expiry, access) are decided by the services, whose refusals are
put back onto the form with ``DomainForm.add_domain_error``.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (BooleanField, DateField, DecimalField, HiddenField, IntegerField, RadioField,
                     SelectField, StringField, TextAreaField)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

# WTForms 3.3 deprecates (value, label) tuples in favour of SelectChoice.
from wtforms.fields.choices import SelectChoice as option

from stockpile.errors import DomainError
from stockpile.inventory.models import (Category, DisposalReason, IssueFlag, LotStatus,
                                        OrganisationKind, PPEGroup, Pool)
from stockpile.coverage.models import PolicyPool

POOL_LABELS = {Pool.OPERATIONAL: _l("Operational"), Pool.EMERGENCY: _l("Emergency")}
KIND_LABELS = {
    OrganisationKind.SUPPLY_CENTRE: _l("Supply centre"),
    OrganisationKind.HEALTH_TRUST: _l("Health trust"),
    OrganisationKind.HOSPITAL_PHARMACY: _l("Hospital pharmacy"),
    OrganisationKind.MUNICIPALITY: _l("Municipality"),
    OrganisationKind.WHOLESALER: _l("Wholesaler"),
    OrganisationKind.REGION: _l("Region"),
}
CATEGORY_LABELS = {Category.CONSUMABLE: _l("Consumable"), Category.PPE: _l("PPE"),
                   Category.DRUG: _l("Drug"), Category.EQUIPMENT: _l("Equipment")}
PPE_GROUP_LABELS = {PPEGroup.GLOVES: _l("Gloves"), PPEGroup.FACE_MASKS: _l("Face masks"),
                    PPEGroup.RESPIRATORS: _l("Respirators"), PPEGroup.GOWNS: _l("Gowns or coveralls"),
                    PPEGroup.EYE_PROTECTION: _l("Goggles or visors")}
STATUS_LABELS = {LotStatus.AVAILABLE: _l("Available"), LotStatus.QUARANTINED: _l("Quarantined"),
                 LotStatus.RECALLED: _l("Recalled")}
FLAG_LABELS = {IssueFlag.NORMAL: _l("Normal use"), IssueFlag.SURGE: _l("Surge (crisis demand)")}
DISPOSAL_LABELS = {DisposalReason.EXPIRED: _l("Expired"), DisposalReason.DAMAGED: _l("Damaged"),
                   DisposalReason.RECALLED: _l("Recalled"), DisposalReason.OTHER: _l("Other")}
MOVEMENT_LABELS = {"receipt": _l("Receipt"), "issue": _l("Issue"), "transfer": _l("Transfer"),
                   "adjustment": _l("Count adjustment"), "disposal": _l("Disposal")}


def choices(labels: dict[Any, Any]) -> list[Any]:
    return [option(key.value, label) for key, label in labels.items()]


class DomainForm(FlaskForm):
    """A form that can show a refusal of the domain next to the field it concerns."""

    refusal: str | None = None

    # Field names the services use that some forms call differently.
    field_aliases: dict[str, str] = {}

    def add_domain_error(self, error: DomainError) -> bool:
        """Put ``error`` on the form: its message (the facts) at the first field it names,
        the per-field details at each; ``refusal`` holds the message for the page's summary.
        Returns True when the error landed on a field."""
        self.refusal = error.message
        placed = False
        for name, messages in error.fields.items():
            field = self._fields.get(self.field_aliases.get(name, name))
            if field is None:
                continue
            extra = [m for m in messages if m != error.message]
            field.errors = [*field.errors, *([] if placed else [error.message]), *extra]
            placed = True
        return placed


def _depot_field(label: Any, **kw: Any) -> SelectField:
    # Choices are the depots the user may write to; a code outside them is refused with 403
    # by the view (it is an access question, not a typing mistake).
    return SelectField(label, choices=[], validate_choice=False, validators=[DataRequired()], **kw)


def _item_field(required: bool = True) -> SelectField:
    return SelectField(_l("Item"), choices=[], validate_choice=False,
                       validators=[DataRequired() if required else Optional()])


def _pool_field(label: Any = None) -> SelectField:
    return SelectField(label or _l("Pool"), choices=choices(POOL_LABELS), default=Pool.OPERATIONAL.value)


def _quantity_field(label: Any = None, minimum: int = 1) -> IntegerField:
    return IntegerField(label or _l("Quantity"), validators=[InputRequired(), NumberRange(min=minimum)],
                        render_kw={"min": minimum, "inputmode": "numeric"})


def _reference_field() -> StringField:
    return StringField(_l("Reference"), validators=[Optional(), Length(max=200)],
                       description=_l("Delivery note, requisition or order number."))


def _lot_field(required: bool = True, **kw: Any) -> StringField:
    return StringField(_l("Lot number"), validators=[DataRequired() if required else Optional(),
                                                     Length(max=40)], **kw)


class ReceiptForm(DomainForm):
    scan = StringField(
        _l("Scan (GS1)"), validators=[Optional(), Length(max=200)],
        description=_l("Scan the pack's GS1 barcode to fill in item, lot and expiry."),
        render_kw={"autocomplete": "off", "spellcheck": "false"})
    depot = _depot_field(_l("Depot"))
    pool = _pool_field()
    item = _item_field(required=False)
    lot_number = _lot_field(required=False)
    expiry = DateField(_l("Expiry date"), validators=[Optional()],
                       description=_l("Leave empty only for items without shelf life."))
    quantity = _quantity_field()
    reference = _reference_field()
    swap = BooleanField(
        _l("Swap: put this fresh lot into emergency stock and move the same quantity of the oldest "
           "emergency stock to daily use"),
        description=_l("Both are recorded together, or neither. Choose the emergency pool above."))

    field_aliases = {"gs1": "scan"}

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        if not (self.scan.data or "").strip():
            if not self.item.data:
                self.item.errors = [*self.item.errors, str(_l("Choose the item, or scan the pack."))]
                ok = False
            if not (self.lot_number.data or "").strip():
                self.lot_number.errors = [*self.lot_number.errors,
                                          str(_l("Enter the lot number, or scan the pack."))]
                ok = False
        return ok


class IssueForm(DomainForm):
    depot = _depot_field(_l("From depot"))
    pool = _pool_field()
    item = _item_field()
    quantity = _quantity_field()
    recipient = StringField(_l("Recipient"), validators=[Optional(), Length(max=200)],
                            description=_l("A department, a hospital, or an organisation code."))
    flag = RadioField(_l("Kind of use"), choices=choices(FLAG_LABELS), default=IssueFlag.NORMAL.value,
                      description=_l("Surge marks crisis demand, left out of normal-use baselines."))
    min_remaining_days = IntegerField(
        _l("Minimum remaining shelf life (days)"), validators=[Optional(), NumberRange(min=0)],
        description=_l("Only lots that expire at least this many days from today."),
        render_kw={"min": 0, "inputmode": "numeric"})
    lot_number = _lot_field(required=False, description=_l(
        "Leave empty to pick first-expired-first-out. Naming a lot overrides FEFO and needs a reason."))
    override_reason = StringField(_l("Reason for choosing this lot"),
                                  validators=[Optional(), Length(max=500)])
    reference = _reference_field()
    # The lots and quantities shown at the preview step ("lot id:quantity,…"); the confirm step
    # posts only if the allocation is still exactly this.
    pick = HiddenField()

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        if (self.lot_number.data or "").strip() and not (self.override_reason.data or "").strip():
            self.override_reason.errors = [*self.override_reason.errors,
                                           str(_l("Say why this lot is taken instead of the FEFO pick."))]
            ok = False
        return ok


class TransferForm(DomainForm):
    from_depot = _depot_field(_l("From depot"))
    from_pool = _pool_field(_l("From pool"))
    to_depot = _depot_field(_l("To depot"))
    to_pool = _pool_field(_l("To pool"))
    item = _item_field()
    quantity = _quantity_field()
    lot_number = _lot_field(required=False, description=_l(
        "Leave empty to move the first-expiring usable lots; name a lot to move that one, "
        "whatever its status."))
    reference = _reference_field()
    reason = StringField(_l("Reason"), validators=[Optional(), Length(max=500)])


class CountForm(DomainForm):
    depot = _depot_field(_l("Depot"))
    pool = _pool_field()
    item = _item_field()
    lot_number = _lot_field()
    counted_quantity = _quantity_field(_l("Counted quantity"), minimum=0)
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)],
                         description=_l("E.g. the annual stock count, or what explains a difference."))
    reference = _reference_field()


class DisposalForm(DomainForm):
    depot = _depot_field(_l("Depot"))
    pool = _pool_field()
    item = _item_field()
    lot_number = _lot_field()
    quantity = _quantity_field()
    reason = SelectField(_l("Reason"), choices=choices(DISPOSAL_LABELS))
    reference = _reference_field()


class ReverseForm(DomainForm):
    reason = TextAreaField(_l("Why is this movement reversed?"),
                           validators=[DataRequired(), Length(max=1000)], render_kw={"rows": 3})


class LotStatusForm(DomainForm):
    status = SelectField(_l("New status"), choices=choices(STATUS_LABELS))
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=1000)],
                           render_kw={"rows": 3})


class ExtendForm(DomainForm):
    new_expiry = DateField(_l("New expiry date"), validators=[InputRequired()])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=1000)],
                           description=_l("E.g. the stability test or the authority's decision."),
                           render_kw={"rows": 3})


class OrganisationForm(DomainForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=40)],
                       description=_l("A stable, unique code such as HSO-FS or KOMMUNE-5401."))
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    kind = SelectField(_l("Kind"), choices=choices(KIND_LABELS))
    parent = SelectField(_l("Part of"), choices=[], validate_choice=False, validators=[Optional()])
    population = IntegerField(_l("Population"), validators=[Optional(), NumberRange(min=0)],
                              render_kw={"min": 0, "inputmode": "numeric"})


class DepotForm(DomainForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=40)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    organisation = SelectField(_l("Organisation"), choices=[], validate_choice=False,
                               validators=[DataRequired()])


class ItemForm(DomainForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=40)],
                       description=_l("A stable, unique code such as PPE-FFP2."))
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    category = SelectField(_l("Category"), choices=choices(CATEGORY_LABELS))
    unit = StringField(_l("Unit of issue"), validators=[DataRequired(), Length(max=40)],
                       description=_l("The smallest unit counted, e.g. piece, vial, pair."))
    pack_size = IntegerField(_l("Pack size"), validators=[Optional(), NumberRange(min=1)],
                             render_kw={"min": 1, "inputmode": "numeric"})
    gtin = StringField(_l("GTIN"), validators=[Optional(), Length(max=14)])
    atc = StringField(_l("ATC code"), validators=[Optional(), Length(max=10)],
                      description=_l("For drugs."))
    ppe_group = SelectField(_l("PPE group"), choices=[option("", "—"), *choices(PPE_GROUP_LABELS)],
                            validators=[Optional()])
    has_expiry = BooleanField(_l("Has a shelf life (lots carry an expiry date)"), default=True)


# --- coverage: baselines, policies, scenarios ------------------------------------------------

class LocaleDecimalField(DecimalField):
    """A decimal that also accepts the decimal comma Norwegian keyboards type (``12,5``), and
    shows the figure as stored (91.3125 stays 91.3125; WTForms would round it to two places)."""

    def __init__(self, label: Any = None, validators: Any = None, places: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(label, validators, places=places, **kwargs)

    def process_formdata(self, valuelist: list[Any]) -> None:
        if valuelist:
            valuelist = [str(v).strip().replace("\u00a0", "").replace(" ", "").replace(",", ".")
                         for v in valuelist]
        super().process_formdata(valuelist)


def _days_field(label: Any, required: bool = True, **kw: Any) -> LocaleDecimalField:
    return LocaleDecimalField(label, validators=[InputRequired() if required else Optional(),
                                                 NumberRange(min=0)],
                              render_kw={"inputmode": "decimal", "min": 0, "step": "any"}, **kw)


POLICY_POOL_LABELS = {PolicyPool.OPERATIONAL: _l("Operational pool"),
                      PolicyPool.EMERGENCY: _l("Emergency pool"),
                      PolicyPool.ALL: _l("Both pools")}


class ManualBaselineForm(DomainForm):
    weekly_use = LocaleDecimalField(
        _l("Normal weekly use"), validators=[InputRequired(), NumberRange(min=0)],
        description=_l("Units of issue used in an ordinary week. Zero means no measurable use: "
                       "coverage is then unknown."),
        render_kw={"inputmode": "decimal", "min": 0, "step": "any"})
    valid_from = DateField(_l("Valid from"), validators=[InputRequired()],
                           description=_l("The first day this figure counts; an earlier entry "
                                          "counts until then."))
    note = StringField(_l("Note"), validators=[Optional(), Length(max=500)],
                       description=_l("Where the figure comes from, e.g. the reference period."))


class PolicyForm(DomainForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    organisation_kind = SelectField(_l("For organisations of kind"),
                                    choices=[option("", "—"), *choices(KIND_LABELS)],
                                    validators=[Optional()])
    organisation = SelectField(_l("… or for one organisation"), choices=[], validate_choice=False,
                               validators=[Optional()])
    category = SelectField(_l("Items of category"), choices=[option("", "—"), *choices(CATEGORY_LABELS)],
                           validators=[Optional()])
    item_list = StringField(_l("… or the items on the list"), validators=[Optional(), Length(max=40)],
                            description=_l("A list code, e.g. emergency or critical-drugs."))
    item = SelectField(_l("… or one item"), choices=[], validate_choice=False, validators=[Optional()])
    pool = SelectField(_l("Pool"), choices=choices(POLICY_POOL_LABELS))
    min_days = _days_field(_l("Minimum (days)"))
    target_days = _days_field(_l("Target (days)"))
    max_days = _days_field(_l("Maximum (days)"), required=False,
                           description=_l("Optional: above it the stock counts as overstock."))
    active = BooleanField(_l("Active (counts in coverage)"), default=True)


class ScenarioForm(DomainForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)],
                       description=_l("Saving under an existing name replaces that scenario's factors."))
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=2000)],
                                render_kw={"rows": 2})
    ppe = LocaleDecimalField(_l("PPE ×"), validators=[Optional(), NumberRange(min=0)],
                             render_kw={"inputmode": "decimal", "step": "any"})
    drug = LocaleDecimalField(_l("Drugs ×"), validators=[Optional(), NumberRange(min=0)],
                              render_kw={"inputmode": "decimal", "step": "any"})
    consumable = LocaleDecimalField(_l("Consumables ×"), validators=[Optional(), NumberRange(min=0)],
                                    render_kw={"inputmode": "decimal", "step": "any"})
    equipment = LocaleDecimalField(_l("Equipment ×"), validators=[Optional(), NumberRange(min=0)],
                                   render_kw={"inputmode": "decimal", "step": "any"})
    item_factors = TextAreaField(
        _l("Factors for single items"), validators=[Optional(), Length(max=5000)],
        description=_l("One item a line: its code and the factor, e.g. PPE-FFP3 6. "
                       "An item's own factor replaces its category's."),
        render_kw={"rows": 3, "spellcheck": "false"})

    CATEGORY_FIELDS = ("ppe", "drug", "consumable", "equipment")


# --- duties: the PPE duty's annual use, the critical drug list --------------------------------

from wtforms import SelectMultipleField  # noqa: E402  (only the drug list chooses several)

from stockpile.coverage.models import Criticality  # noqa: E402

CRITICALITY_LABELS = {Criticality.HIGH: _l("High"), Criticality.MEDIUM: _l("Medium"),
                      Criticality.LOW: _l("Low")}


def _annual_use_field(required: bool) -> IntegerField:
    # The label names the year; the view sets it, since the years move with the calendar.
    return IntegerField(validators=[InputRequired() if required else Optional(), NumberRange(min=0)],
                        render_kw={"min": 0, "inputmode": "numeric"})


class AnnualUseForm(DomainForm):
    """§ 8a: annual use of one PPE item in the three calendar years before this one, any of
    them ticked as deviating; the two years before those replace deviating years."""

    item = SelectField(_l("Item"), choices=[], validate_choice=False, validators=[DataRequired()])
    use_1 = _annual_use_field(True)
    use_2 = _annual_use_field(True)
    use_3 = _annual_use_field(True)
    use_4 = _annual_use_field(False)
    use_5 = _annual_use_field(False)
    deviating_1 = BooleanField()
    deviating_2 = BooleanField()
    deviating_3 = BooleanField()

    def set_years(self, this_year: int) -> list[int]:
        """Label the fields with their years (``use_1`` is last year); returns the years."""
        years = [this_year - n for n in range(1, 6)]
        for n, year in enumerate(years, start=1):
            self[f"use_{n}"].label.text = str(_l("Annual use in %(year)s", year=year))
            if n <= 3:
                self[f"deviating_{n}"].label.text = str(_l("%(year)s was a deviating year", year=year))
        return years

    def annual_use(self, years: list[int]) -> dict[int, int]:
        return {year: self[f"use_{n}"].data for n, year in enumerate(years, start=1)
                if self[f"use_{n}"].data is not None}

    def deviating_years(self, years: list[int]) -> list[int]:
        return [year for n, year in enumerate(years[:3], start=1) if self[f"deviating_{n}"].data]


class CriticalDrugForm(DomainForm):
    """Add a drug to the critical drug list, or change its settings and daily use."""

    item = SelectField(_l("Drug"), choices=[], validate_choice=False, validators=[DataRequired()])
    daily_use = LocaleDecimalField(
        _l("Daily normal use"), places=None, validators=[Optional(), NumberRange(min=0)],
        description=_l("Units of issue used on an ordinary day. Saved as the drug's baseline "
                       "(7 × this a week) from today; leave empty to keep the baseline in force."),
        render_kw={"inputmode": "decimal", "min": 0, "step": "any"})
    min_days = LocaleDecimalField(
        _l("Minimum days"), places=None, validators=[Optional(), NumberRange(min=0)],
        description=_l("Leave empty for the list's default."),
        render_kw={"inputmode": "decimal", "min": 0, "step": "any"})
    criticality = SelectField(_l("Criticality"), choices=[option("", "—"), *choices(CRITICALITY_LABELS)],
                              validators=[Optional()])
    alternatives = SelectMultipleField(
        _l("Alternatives"), choices=[], validate_choice=False,
        description=_l("Drugs that can substitute for this one (hold Ctrl or ⌘ to choose several)."),
        render_kw={"size": 6})
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=1000)], render_kw={"rows": 2})


class CriticalDrugRemoveForm(DomainForm):
    item = HiddenField(validators=[DataRequired()])
