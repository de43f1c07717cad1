"""Small builders for test data. Everything goes through the services, like real data does."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from itertools import count
from zoneinfo import ZoneInfo

import sqlalchemy.orm as so

from stockpile.auth import services as auth
from stockpile.auth.models import User
from stockpile.inventory import services as inventory
from stockpile.inventory.models import Depot, Item, Movement, Organisation

PASSWORD = "correct horse battery"
TODAY = dt.date(2026, 11, 23)  # a fixed evaluation date for hand-worked examples
# The tests' clock (conftest's ``clock`` fixture) starts here, on TODAY, and ticks on.
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
OSLO = ZoneInfo("Europe/Oslo")
_seq = count(1)


def morning(day: dt.date) -> dt.datetime:
    """09:00 in Oslo on ``day``: when the factories' postings on that day happen."""
    return dt.datetime.combine(day, dt.time(9), tzinfo=OSLO)


def ctx(user: User | None = None, *, today: dt.date = TODAY,
        occurred_at: dt.datetime | None = None) -> inventory.Context:
    """A posting context on ``today``, happening that morning unless ``occurred_at`` says when."""
    return inventory.Context(user.id if user else None, occurred_at or morning(today), today)


def org(session: so.Session, code: str | None = None, kind: str = "supply_centre",
        parent: str | None = None) -> Organisation:
    code = code or f"ORG-{next(_seq)}"
    return inventory.create_organisation(session, code=code, name=f"Organisation {code}",
                                         kind=kind, parent=parent)


def depot(session: so.Session, organisation: Organisation, code: str | None = None) -> Depot:
    code = code or f"DEP-{next(_seq)}"
    return inventory.create_depot(session, code=code, name=f"Depot {code}", organisation=organisation)


def item(session: so.Session, code: str | None = None, category: str = "ppe", **kw) -> Item:
    code = code or f"ITEM-{next(_seq)}"
    return inventory.create_item(session, code=code, name=kw.pop("name", f"Item {code}"),
                                 category=category, unit=kw.pop("unit", "piece"), **kw)


def user(session: so.Session, role: str, organisation: Organisation | None = None,
         email: str | None = None) -> User:
    email = email or f"{role}-{next(_seq)}@example.org"
    return auth.create_user(session, email=email, password=PASSWORD, role=role,
                            organisation=organisation)


def receive(session: so.Session, depot_: Depot, item_: Item, lot_number: str, expiry: dt.date | None,
            quantity: int, pool: str = "operational", *, today: dt.date = TODAY,
            occurred_at: dt.datetime | None = None) -> list[Movement]:
    return inventory.receive(session, ctx(today=today, occurred_at=occurred_at), depot=depot_,
                             item=item_, lot_number=lot_number, expiry=expiry,
                             quantity=quantity, pool=pool)


@dataclass
class World:
    """Supply centre SC (depot SC-D) and municipality MUN (depot MUN-D) under region REG,
    items MASK (ppe) and GLOVE (ppe), and one user per role with an API token each."""

    region: Organisation
    centre: Organisation
    municipality: Organisation
    centre_depot: Depot
    municipal_depot: Depot
    mask: Item
    glove: Item
    users: dict[str, User] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def build_world(session: so.Session) -> World:
    region = org(session, "REG", "region")
    centre = org(session, "SC", "supply_centre", parent="REG")
    municipality = org(session, "MUN", "municipality", parent="REG")
    other = org(session, "OTHER", "municipality")
    w = World(region=region, centre=centre, municipality=municipality,
              centre_depot=depot(session, centre, "SC-D"),
              municipal_depot=depot(session, municipality, "MUN-D"),
              mask=item(session, "MASK", "ppe", ppe_group="face_masks", gtin="07032069804988"),
              glove=item(session, "GLOVE", "ppe", ppe_group="gloves"))
    depot(session, other, "OTHER-D")
    people = {
        "admin": ("admin", None),
        "coordinator": ("coordinator", region),
        "supply": ("supply_staff", centre),
        "municipal": ("municipal_staff", municipality),
        "outsider": ("municipal_staff", other),
        "pharmacist": ("pharmacist", centre),
        "viewer": ("viewer", centre),
    }
    for name, (role, organisation) in people.items():
        u = user(session, role, organisation, email=f"{name}@example.org")
        w.users[name] = u
        w.tokens[name] = auth.create_token(session, u)
    session.flush()
    return w
