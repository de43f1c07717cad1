"""Forms for signing in and for user administration."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from stockpile.auth.models import Role
from stockpile.auth.services import MIN_PASSWORD_LENGTH
from stockpile.forms import DomainForm, option

ROLE_LABELS = {
    Role.ADMIN: _l("Administrator"),
    Role.COORDINATOR: _l("Preparedness coordinator"),
    Role.SUPPLY_STAFF: _l("Supply staff"),
    Role.MUNICIPAL_STAFF: _l("Municipal staff"),
    Role.PHARMACIST: _l("Pharmacist"),
    Role.VIEWER: _l("Viewer (read only)"),
}


def role_label(role: str) -> str:
    return str(ROLE_LABELS.get(Role(role), role)) if role in set(Role) else role


class LoginForm(DomainForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)],
                       render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField(_l("Password"), validators=[DataRequired()],
                             render_kw={"autocomplete": "current-password"})
    remember = BooleanField(_l("Keep me signed in on this device"))


class UserCreateForm(DomainForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    password = PasswordField(
        _l("Password"), validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH)],
        description=_l("At least %(n)s characters. Give it to the person in a safe way.",
                       n=MIN_PASSWORD_LENGTH),
        render_kw={"autocomplete": "new-password"})
    role = SelectField(_l("Role"), choices=[option(r.value, label) for r, label in ROLE_LABELS.items()])
    organisation = SelectField(_l("Organisation"), choices=[], validate_choice=False,
                               description=_l("Required for every role except administrator."))


class MembershipForm(DomainForm):
    role = SelectField(_l("Role"), choices=[option(r.value, label) for r, label in ROLE_LABELS.items()
                                            if r != Role.ADMIN])
    organisation = SelectField(_l("Organisation"), choices=[], validate_choice=False,
                               validators=[DataRequired()])


class TokenForm(DomainForm):
    name = StringField(_l("Token name"), validators=[Optional(), Length(max=100)],
                       description=_l("What the token is for, e.g. the integration that uses it."))
