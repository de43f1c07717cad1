"""What the pages share: signing in, the organisations a user may read, select choices, where a
user starts, and submitting a form to a service — committed, or refused on the form with
nothing of it kept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from flask import Blueprint, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from stockpile.auth import services as auth
from stockpile.db import M, get
from stockpile.errors import DomainError, Forbidden, InvalidInput, NotFound
from stockpile.extensions import db
from stockpile.forms import DomainForm, option
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Depot, Item, Organisation, OrganisationKind
from stockpile.web import today

T = TypeVar("T")


def require_sign_in(bp: Blueprint) -> None:
    """Every page of ``bp`` needs a signed-in user."""

    @bp.before_request
    @login_required
    def _signed_in() -> None:
        return None


def get_or_404(model: type[M], ident: int, message: str) -> M:
    """The row of ``model`` with the id from the URL; 404 with ``message`` if there is none."""
    found = get(db.session, model, ident)
    if found is None:
        raise NotFound(message)
    return found


def readable_organisation(code: str, field: str = "organisation") -> Organisation:
    """The organisation with ``code`` (404 naming ``field`` if none), if the user may read it (403)."""
    org = inventory.by_code(db.session, Organisation, code.strip(), field=field)
    auth.require_read(db.session, current_user, org)
    return org


def readable_organisations() -> list[Organisation]:
    """The organisations the user may read, by name."""
    ids = auth.readable_organisation_ids(db.session, current_user)
    stmt = sa.select(Organisation).order_by(Organisation.name)
    if ids is not None:
        if not ids:
            return []
        stmt = stmt.where(Organisation.id.in_(ids))
    return list(db.session.scalars(stmt))


def organisation_choices(blank: str | None = None) -> list[Any]:
    orgs = db.session.scalars(sa.select(Organisation).order_by(Organisation.name))
    return [*([option("", blank)] if blank is not None else []),
            *(option(o.code, f"{o.name} ({o.code})") for o in orgs)]


def item_choices(blank: str) -> list[Any]:
    items = db.session.scalars(sa.select(Item).order_by(Item.name))
    return [option("", blank), *(option(i.code, f"{i.name} ({i.code})") for i in items)]


def depot_choices(depots: Sequence[Depot]) -> list[Any]:
    several = len({d.organisation_id for d in depots}) > 1
    return [option(d.code, f"{d.code} — {d.name}" + (f" · {d.organisation.name}" if several else ""))
            for d in depots]


def refused(form: DomainForm, error: DomainError) -> None:
    """Undo everything the refused request wrote and put the reason on the form (a refusal of
    access is not the form's business: it stays a 403)."""
    if isinstance(error, Forbidden):
        raise error
    db.session.rollback()
    form.add_domain_error(error)


@dataclass
class Submission(Generic[T]):
    """What became of a submitted form: ``done`` with the service's ``result``, or the page
    to show again with ``status`` (200 on first sight, 422 when invalid or refused)."""

    done: bool
    status: int
    result: T | None = None


def submit(form: DomainForm, action: Callable[[], T], *, validate: bool = True) -> Submission[T]:
    """On a POST whose form is valid, run ``action`` (the service call) and commit; a refusal
    rolls everything back and lands on the form."""
    if request.method != "POST":
        return Submission(False, 200)
    if validate and not form.validate():
        return Submission(False, 422)
    try:
        result = action()
        db.session.commit()
    except DomainError as error:
        refused(form, error)
        return Submission(False, 422)
    return Submission(True, 200, result)


def landing_url(user: Any) -> str:
    """Where a user starts: the coverage page of their role (DESIGN.md §1)."""
    roles = user.roles
    if "supply_staff" in roles:
        return url_for("coverage.overview")
    if "municipal_staff" in roles:
        return url_for("duty.ppe_duty")
    if "pharmacist" in roles:
        return url_for("duty.critical_drugs")
    if "coordinator" in roles:
        return url_for("coverage.region")
    if user.is_admin:
        centre = db.session.scalar(sa.select(Organisation.id).where(
            Organisation.kind == OrganisationKind.SUPPLY_CENTRE.value).limit(1))
        return url_for("coverage.overview") if centre is not None else url_for("inventory.items")
    if any(m.organisation.kind == OrganisationKind.SUPPLY_CENTRE for m in user.memberships):
        return url_for("coverage.overview")
    return url_for("inventory.items")


def evaluation_date() -> dt.date:
    """``?date=YYYY-MM-DD``, else today in the site's time zone (the duty pages use it too)."""
    raw = request.args.get("date", "").strip()
    if not raw:
        return today()
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        message = _("“%(value)s” is not a date: write it as YYYY-MM-DD, e.g. %(example)s.",
                    value=raw[:40], example=today().isoformat())
        raise InvalidInput(message, fields={"date": [message]}) from None


def writable_depots() -> list[Depot]:
    """The depots the user may record for; 403 if there are none (a read-only role)."""
    depots = inventory.depots(db.session, auth.writable_organisation_ids(current_user))
    if not depots:
        raise Forbidden(_("You may not record stock movements: your roles are read-only."))
    return depots


def writable_depot(code: str | None, field: str) -> Depot:
    """The depot with ``code`` (404 naming ``field`` if none), if the user may record for it (403)."""
    depot = inventory.by_code(db.session, Depot, (code or "").strip(), field=field)
    auth.require_write(current_user, depot.organisation)
    return depot


def deny_foreign_depots(*fields: str) -> None:
    """403 when a posted depot exists but is not the user's to change (crafted posts included)."""
    for field in fields:
        code = (request.form.get(field) or "").strip()
        if not code:
            continue
        depot = db.session.scalar(sa.select(Depot).where(Depot.code == code))
        if depot is not None:
            auth.require_write(current_user, depot.organisation)


def prefill(*names: str) -> dict[str, Any]:
    """Form defaults from the query string (links from the item page), checked for access."""
    data: dict[str, Any] = {}
    for name in names:
        value = request.args.get(name, "").strip()
        if value:
            data[name] = value
    if "lot" in request.args:
        data["lot_number"] = request.args["lot"].strip()
    for field in ("depot", "from_depot"):
        if field in data:
            writable_depot(data[field], field)
    return data


F = TypeVar("F", bound=DomainForm)


def movement_form(form_class: type[F], *, depot_fields: Sequence[str] = ("depot",), prefilled: Sequence[str] = (),
                  data: dict[str, Any] | None = None) -> tuple[F, list[Depot]]:
    """A stock movement's form and the depots the user may record for (403 for none): the posted
    form (a depot of someone else's is 403 before anything else), or on first sight one filled
    from the query string's ``prefilled`` names and ``data``. Its depot and item fields offer
    the user's depots and every item."""
    depots = writable_depots()
    if request.method == "POST":
        deny_foreign_depots(*depot_fields)
        form = form_class()
    else:
        form = form_class(data={**prefill(*depot_fields, *prefilled), **(data or {})})
    for name in depot_fields:
        form[name].choices = depot_choices(depots)
    form["item"].choices = item_choices(_("— choose an item —"))
    return form, depots
