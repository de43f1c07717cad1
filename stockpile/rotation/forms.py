"""Forms of the rotation pages."""

from __future__ import annotations

from wtforms import HiddenField
from wtforms.validators import DataRequired, Regexp

from stockpile.forms import DomainForm


class CompleteTaskForm(DomainForm):
    """The confirm step of carrying out a rotation task.

    ``quantity`` is what the confirm page showed; the post moves exactly that much, so stock
    that changed in between is refused instead of moving something the person did not see.
    """

    quantity = HiddenField(validators=[DataRequired(), Regexp(r"^[1-9]\d{0,9}$")])


class MoveLotForm(DomainForm):
    """The "Move to daily use" button of a lot the hourly planning run has not given a task yet."""
