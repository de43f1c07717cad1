"""What every form shares: the base that shows a refusal of the domain beside its field, the
labels of the inventory's values (also used by the templates), and select choices from them.

The forms only parse and check shapes (required, whole numbers, dates); the rules of the
domain (enough usable stock, expiry, access) are decided by the services, whose refusals are
put back onto the form with ``DomainForm.add_domain_error``.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm

# WTForms 3.3 deprecates (value, label) tuples in favour of SelectChoice.
from wtforms.fields.choices import SelectChoice as option

from stockpile.errors import DomainError
from stockpile.inventory.models import (Category, DisposalReason, IssueFlag, LotStatus, OrganisationKind,
                                        PPEGroup, Pool)

__all__ = ["option"]

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


def label(table: dict[Any, Any], value: Any) -> str:
    """The label of ``value`` (an enum member or its value) in ``table``; the value itself if none."""
    for key, text in table.items():
        if key == value or getattr(key, "value", key) == value:
            return str(text)
    return str(value or "")


def choices(labels: dict[Any, Any]) -> list[Any]:
    return [option(key.value, text) for key, text in labels.items()]


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
