"""Forms for the stock movements, lots and master data (see ``stockpile.forms``)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import (BooleanField, DateField, HiddenField, IntegerField, RadioField, SelectField,
                     StringField, TextAreaField)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from stockpile.forms import (CATEGORY_LABELS, DISPOSAL_LABELS, FLAG_LABELS, KIND_LABELS, POOL_LABELS,
                             PPE_GROUP_LABELS, STATUS_LABELS, DomainForm, choices, option)
from stockpile.inventory.models import IssueFlag, Pool


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
