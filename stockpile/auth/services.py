"""Users, passwords, API tokens, sign-in throttling and who may see or change what.

Access is decided here, where data is read and written, never only in templates:
- administrators see and change everything;
- a member of an organisation (any role) reads its stock; members with a stock role
  (supply staff, municipal staff, pharmacists) also record movements for it;
- coordinators read every organisation below the ones they belong to (their region).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
from collections.abc import Iterable

import sqlalchemy as sa
import sqlalchemy.orm as so
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from stockpile.auth.models import STOCK_ROLES, ApiToken, Membership, Role, User
from stockpile.db import utcnow
from stockpile.errors import Conflict, Forbidden, InvalidInput
from stockpile.inventory.models import Balance, Depot, Lot, Organisation

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.",
                           fields={"password": [f"At least {MIN_PASSWORD_LENGTH} characters."]})
    return _hasher.hash(password)


def create_user(session: so.Session, *, email: str, password: str | None, name: str = "",
                role: str | None = None, organisation: Organisation | None = None) -> User:
    """A new user; ``role`` admin makes an administrator, other roles need an organisation."""
    email = email.strip().lower()
    if "@" not in email:
        raise InvalidInput(f"{email!r} is not an e-mail address.", fields={"email": ["Not an e-mail address."]})
    if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"A user with e-mail {email} already exists.", code="duplicate_email",
                       fields={"email": ["Already registered."]})
    if role is not None:
        _check_membership(role, organisation)
    user = User(email=email, name=name, password_hash=hash_password(password) if password else None)
    session.add(user)
    if role is not None:
        add_membership(session, user, role, organisation)
    session.flush()
    return user


def _check_membership(role: str, organisation: Organisation | None) -> None:
    if role not in set(Role):
        raise InvalidInput(f"Unknown role {role!r}; roles are {', '.join(Role)}.",
                           fields={"role": ["Unknown role."]})
    if role != Role.ADMIN and organisation is None:
        raise InvalidInput(f"The role {role} needs an organisation.",
                           fields={"organisation": ["Required for this role."]})


def add_membership(session: so.Session, user: User, role: str, organisation: Organisation | None) -> None:
    """Give ``user`` a role; admin is global (an organisation is optional), others need one."""
    _check_membership(role, organisation)
    if role == Role.ADMIN:
        user.is_admin = True
        if organisation is None:
            return
    if any(m.organisation_id == organisation.id and m.role == role for m in user.memberships):
        raise Conflict(f"{user.email} already has the role {role} at {organisation.code}.",
                       code="duplicate_membership")
    user.memberships.append(Membership(organisation=organisation, role=role))


def authenticate(session: so.Session, email: str, password: str, *, max_failures: int = 5,
                 lockout: dt.timedelta = dt.timedelta(minutes=15)) -> User | None:
    """The user if the password is right and the account is not locked; counts failures.

    After ``max_failures`` wrong passwords in a row the account refuses sign-in for ``lockout``,
    even with the right password, so passwords cannot be guessed at speed.
    """
    user = session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active or not user.password_hash:
        _hasher.hash("equalise timing")  # do not reveal which e-mails exist by answering faster
        return None
    now = utcnow()
    if user.locked_until is not None and user.locked_until > now:
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        if user.failed_logins >= max_failures:
            user.locked_until = now + lockout
            user.failed_logins = 0
        return None
    user.failed_logins = 0
    user.locked_until = None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def users(session: so.Session) -> list[User]:
    """Every user by e-mail address, with their memberships and organisations."""
    return list(session.scalars(
        sa.select(User).options(so.selectinload(User.memberships).joinedload(Membership.organisation))
        .order_by(User.email)))


def is_locked(user: User) -> bool:
    return user.locked_until is not None and user.locked_until > utcnow()


def lockout_minutes(session: so.Session, email: str) -> int | None:
    """The minutes (at least 1) until the active account of ``email`` may sign in again; None
    when there is no such account or it is not locked."""
    user = session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active or not is_locked(user):
        return None
    assert user.locked_until is not None
    return max(1, math.ceil((user.locked_until - utcnow()).total_seconds() / 60))


def set_active(session: so.Session, user: User, active: bool, *, by: User) -> User:
    """Let ``user`` sign in again (failed attempts and lockout forgotten), or not: a deactivated
    user's sessions and API tokens stop working. Nobody deactivates themselves (``Forbidden``)."""
    if user.id == by.id and not active:
        raise Forbidden("You cannot deactivate your own account; ask another administrator.")
    user.active = active
    if active:
        user.failed_logins = 0
        user.locked_until = None
    session.flush()
    return user


def _token_hash(token: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: so.Session, user: User, name: str = "") -> str:
    """A new API token for ``user``; only its hash is stored, so show the result once."""
    token = "sp_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user=user, token_hash=_token_hash(token), name=name))
    session.flush()
    return token


def token(session: so.Session, token: str) -> ApiToken | None:
    """The live token (not revoked, its user active) matching ``token``, or ``None``."""
    api_token = session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == _token_hash(token),
                                                         ApiToken.revoked_at.is_(None)))
    if api_token is None or not api_token.user.active:
        return None
    return api_token


def user_for_token(session: so.Session, token_text: str) -> User | None:
    api_token = token(session, token_text)
    return api_token.user if api_token is not None else None


def _subtree(session: so.Session, roots: Iterable[int]) -> set[int]:
    children: dict[int | None, list[int]] = {}
    for org_id, parent_id in session.execute(sa.select(Organisation.id, Organisation.parent_id)):
        children.setdefault(parent_id, []).append(org_id)
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        org_id = stack.pop()
        if org_id not in seen:
            seen.add(org_id)
            stack.extend(children.get(org_id, []))
    return seen


def readable_organisation_ids(session: so.Session, user: User) -> set[int] | None:
    """Organisations whose stock ``user`` may read; ``None`` means all (administrators)."""
    if user.is_admin:
        return None
    own = {m.organisation_id for m in user.memberships}
    regions = [m.organisation_id for m in user.memberships if m.role == Role.COORDINATOR]
    return own | _subtree(session, regions) if regions else own


def writable_organisation_ids(user: User) -> set[int] | None:
    """Organisations for which ``user`` may record stock movements; ``None`` means all."""
    if user.is_admin:
        return None
    return {m.organisation_id for m in user.memberships if m.role in STOCK_ROLES}


def can_read(session: so.Session, user: User, organisation_id: int) -> bool:
    ids = readable_organisation_ids(session, user)
    return ids is None or organisation_id in ids


def can_write(user: User, organisation_id: int) -> bool:
    ids = writable_organisation_ids(user)
    return ids is None or organisation_id in ids


def require_read(session: so.Session, user: User, organisation: Organisation) -> None:
    if not can_read(session, user, organisation.id):
        raise Forbidden(f"You have no access to {organisation.code}.")


def require_write(user: User, organisation: Organisation) -> None:
    if not can_write(user, organisation.id):
        raise Forbidden(f"You may not record stock for {organisation.code}.")


def require_lot_change(session: so.Session, user: User, lot: Lot) -> None:
    """A lot's status or expiry may be changed by administrators, and by users who record stock
    for an organisation that holds some of the lot right now."""
    writable = writable_organisation_ids(user)
    if writable is None:
        return
    holders = set(session.scalars(
        sa.select(Depot.organisation_id).join(Balance, Balance.depot_id == Depot.id)
        .where(Balance.lot_id == lot.id, Balance.quantity > 0)))
    if not holders & writable:
        raise Forbidden(f"You may change lot {lot.lot_number} of {lot.item.code} only while an "
                        "organisation you record stock for holds some of it.")


def require_admin(user: User) -> None:
    if not user.is_admin:
        raise Forbidden("Only administrators may do this.")


def records_stock(session: so.Session, user: User) -> bool:
    """Whether ``user`` may record movements anywhere: administrators, and those with a stock
    role at an organisation that has a depot."""
    writable = writable_organisation_ids(user)
    if writable is None:
        return True
    return bool(writable) and session.scalar(
        sa.select(sa.func.count(Depot.id)).where(Depot.organisation_id.in_(writable))) > 0


def can_manage_items(user: User) -> bool:
    """Administrators and supply staff maintain the item catalogue."""
    return user.is_admin or any(m.role == Role.SUPPLY_STAFF for m in user.memberships)


def require_item_manager(user: User) -> None:
    if not can_manage_items(user):
        raise Forbidden("Only administrators and supply staff may create items.")
