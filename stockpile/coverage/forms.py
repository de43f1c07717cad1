"""Forms of coverage: a manual baseline, policies and scenarios (see ``stockpile.forms``)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, DateField, DecimalField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from stockpile.coverage.models import PolicyPool
from stockpile.forms import CATEGORY_LABELS, KIND_LABELS, DomainForm, choices, option


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
    # A scenario without any factor is refused on ``factors``: shown at the first factor field.
    field_aliases = {"factors": "ppe"}
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
