"""Sign-in, sign-out and user administration pages."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response

from stockpile import pages
from stockpile.auth import services as auth
from stockpile.auth.forms import LoginForm, MembershipForm, TokenForm, UserCreateForm, role_label
from stockpile.auth.models import User
from stockpile.errors import DomainError
from stockpile.extensions import db, login_manager
from stockpile.forms import DomainForm
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Organisation

bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please sign in to see this page.")
login_manager.login_message_category = "info"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    try:
        user = db.session.get(User, int(user_id))
    except ValueError:
        return None
    # A deactivated account loses its open sessions at the next request.
    return user if user is not None and user.active else None


@login_manager.unauthorized_handler
def unauthorised() -> Response:
    flash(_("Please sign in to see this page."), "info")
    target = None
    if request.method == "GET":
        target = request.full_path.rstrip("?") if request.query_string else request.path
    return redirect(url_for("auth.login", next=target))


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_url = safe_next(request.values.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("inventory.index"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        config = current_app.config
        user = auth.authenticate(
            db.session, form.email.data or "", form.password.data or "",
            max_failures=config["LOGIN_MAX_FAILURES"],
            lockout=dt.timedelta(minutes=config["LOGIN_LOCKOUT_MINUTES"]))
        # Failed attempts are counted in the database, so commit either way.
        db.session.commit()
        if user is not None:
            session.clear()  # nothing from before sign-in survives it (session fixation)
            login_user(user, remember=bool(form.remember.data))
            return redirect(next_url or url_for("inventory.index"))
        minutes = auth.lockout_minutes(db.session, form.email.data or "")
        if minutes is not None:
            form.refusal = _("This account is temporarily locked after too many failed sign-ins. "
                             "Try again in %(minutes)s minutes, or ask an administrator.",
                             minutes=minutes)
        else:
            form.refusal = _("The e-mail address or the password is wrong.")
    elif request.method == "POST":
        status = 422
    return render_template("auth/login.html", form=form, next=next_url), status


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    # POST only (with the CSRF token every form carries): a link or an image cannot sign anyone out.
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.app_errorhandler(CSRFError)
def csrf_refused(error: CSRFError) -> tuple[str, int]:
    db.session.rollback()
    refusal = DomainError(_("The form has expired or did not come from this site (%(reason)s). "
                            "Nothing was recorded: go back, reload the page and try again.",
                            reason=error.description), code="csrf")
    return render_template("error.html", error=refusal.with_status(400)), 400


def user_context(user: User) -> dict[str, Any]:
    """What the navigation shows: the user's organisations and the sections they may use."""
    if not user.is_authenticated:
        return {}
    organisations = sorted({m.organisation.name for m in user.memberships})
    return {"nav_can_record": auth.records_stock(db.session, user), "nav_is_admin": user.is_admin,
            "nav_can_manage_items": auth.can_manage_items(user),
            "nav_organisations": organisations}


@bp.app_context_processor
def inject_user_context() -> dict[str, Any]:
    return {"html_lang": str(get_locale() or "en"), "role_label": role_label,
            **user_context(current_user)}


def _user_or_404(user_id: int) -> User:
    return pages.get_or_404(User, user_id, _("No user with id %(id)s.", id=user_id))


def _organisation_from(form: DomainForm, field: str) -> Organisation | None:
    code = (form[field].data or "").strip()
    return inventory.by_code(db.session, Organisation, code, field=field) if code else None


def _users_page(create_form: UserCreateForm | None = None, status: int = 200,
                token: tuple[User, str] | None = None) -> tuple[str, int]:
    if create_form is None:
        create_form = UserCreateForm(formdata=None)
    create_form.organisation.choices = pages.organisation_choices(blank="—")
    membership_form = MembershipForm(formdata=None)
    membership_form.organisation.choices = pages.organisation_choices()
    return render_template("admin/users.html", users=auth.users(db.session), form=create_form,
                           membership_form=membership_form, token_form=TokenForm(formdata=None),
                           action_form=DomainForm(formdata=None), new_token=token), status


@bp.route("/admin/users", methods=["GET", "POST"])
@login_required
def users() -> Any:
    auth.require_admin(current_user)
    form = UserCreateForm()
    form.organisation.choices = pages.organisation_choices(blank="—")
    submitted = pages.submit(form, lambda: auth.create_user(
        db.session, email=form.email.data or "", password=form.password.data, name=(form.name.data or "").strip(),
        role=form.role.data, organisation=_organisation_from(form, "organisation")))
    if submitted.done:
        flash(_("User %(email)s created as %(role)s.", email=submitted.result.email,
                role=role_label(form.role.data)), "success")
        return redirect(url_for("auth.users"))
    return _users_page(form, submitted.status)


@bp.route("/admin/users/<int:user_id>/memberships", methods=["POST"])
@login_required
def add_membership(user_id: int) -> Any:
    auth.require_admin(current_user)
    user = _user_or_404(user_id)
    form = MembershipForm()
    form.organisation.choices = pages.organisation_choices()
    if not form.validate_on_submit():
        flash(_("Choose a role and an organisation."), "error")
        return redirect(url_for("auth.users"))
    try:
        organisation = _organisation_from(form, "organisation")
        auth.add_membership(db.session, user, form.role.data, organisation)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        flash(_("%(email)s already has this role there.", email=user.email) if error.code == "duplicate_membership"
              else error.message, "error")
        return redirect(url_for("auth.users"))
    flash(_("%(email)s is now %(role)s at %(organisation)s.", email=user.email,
            role=role_label(form.role.data), organisation=organisation.name if organisation else ""),
          "success")
    return redirect(url_for("auth.users"))


@bp.route("/admin/users/<int:user_id>/active", methods=["POST"])
@login_required
def set_active(user_id: int) -> Any:
    auth.require_admin(current_user)
    active = request.form.get("active") == "1"
    user = auth.set_active(db.session, _user_or_404(user_id), active, by=current_user)
    db.session.commit()
    flash(_("%(email)s can sign in again.", email=user.email) if active
          else _("%(email)s is deactivated: their sessions and API tokens no longer work.",
                 email=user.email), "success")
    return redirect(url_for("auth.users"))


@bp.route("/admin/users/<int:user_id>/tokens", methods=["POST"])
@login_required
def create_token(user_id: int) -> Any:
    auth.require_admin(current_user)
    user = _user_or_404(user_id)
    form = TokenForm()
    if not form.validate_on_submit():
        flash(_("The token name is at most 100 characters."), "error")
        return redirect(url_for("auth.users"))
    token = auth.create_token(db.session, user, (form.name.data or "").strip())
    db.session.commit()
    # Rendered in this response only: the token is never stored or put in the session cookie.
    page, _status = _users_page(token=(user, token))
    response = current_app.make_response((page, 201))
    response.headers["Cache-Control"] = "no-store"
    return response
