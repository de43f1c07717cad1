"""Forms of the duties: a municipality's annual PPE use, a pharmacy's critical drug list."""

from __future__ import annotations


from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, HiddenField, IntegerField, SelectField, SelectMultipleField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from stockpile.coverage.forms import LocaleDecimalField
from stockpile.coverage.models import Criticality
from stockpile.forms import DomainForm, choices, option


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
