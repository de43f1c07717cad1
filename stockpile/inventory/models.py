"""Organisations, depots, items, lots, the movement ledger and balances (DESIGN.md §2)."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import TYPE_CHECKING, Optional

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.db import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from stockpile.auth.models import User


def _in(column: str, enum_cls: type[enum.Enum]) -> str:
    return f"{column} IN ({', '.join(repr(m.value) for m in enum_cls)})"


class OrganisationKind(enum.StrEnum):
    SUPPLY_CENTRE = "supply_centre"
    HEALTH_TRUST = "health_trust"
    HOSPITAL_PHARMACY = "hospital_pharmacy"
    MUNICIPALITY = "municipality"
    WHOLESALER = "wholesaler"
    REGION = "region"


class Category(enum.StrEnum):
    CONSUMABLE = "consumable"
    PPE = "ppe"
    DRUG = "drug"
    EQUIPMENT = "equipment"


class PPEGroup(enum.StrEnum):
    GLOVES = "gloves"
    FACE_MASKS = "face_masks"
    RESPIRATORS = "respirators"
    GOWNS = "gowns"
    EYE_PROTECTION = "eye_protection"


class LotStatus(enum.StrEnum):
    AVAILABLE = "available"
    QUARANTINED = "quarantined"
    RECALLED = "recalled"


class Pool(enum.StrEnum):
    OPERATIONAL = "operational"
    EMERGENCY = "emergency"


class MovementKind(enum.StrEnum):
    RECEIPT = "receipt"
    ISSUE = "issue"
    TRANSFER = "transfer"
    ADJUSTMENT = "adjustment"
    DISPOSAL = "disposal"


class IssueFlag(enum.StrEnum):
    NORMAL = "normal"
    SURGE = "surge"


class DisposalReason(enum.StrEnum):
    EXPIRED = "expired"
    DAMAGED = "damaged"
    RECALLED = "recalled"
    OTHER = "other"


class LotEventKind(enum.StrEnum):
    STATUS = "status"
    EXTENSION = "extension"


class Organisation(Base):
    __tablename__ = "organisations"
    __table_args__ = (sa.CheckConstraint(_in("kind", OrganisationKind), name="kind"),
                      sa.CheckConstraint("population IS NULL OR population >= 0", name="population"))

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(40), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    kind: so.Mapped[str] = so.mapped_column(sa.String(20))
    parent_id: so.Mapped[Optional[int]] = so.mapped_column(
        sa.ForeignKey("organisations.id", ondelete="RESTRICT"), index=True)
    population: so.Mapped[Optional[int]]
    created_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)

    parent: so.Mapped[Optional[Organisation]] = so.relationship(
        remote_side=[id], back_populates="members")
    members: so.Mapped[list[Organisation]] = so.relationship(back_populates="parent")
    depots: so.Mapped[list[Depot]] = so.relationship(back_populates="organisation")

    def __repr__(self) -> str:
        return f"<Organisation {self.code}>"


class Depot(Base):
    __tablename__ = "depots"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(40), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    organisation_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("organisations.id", ondelete="RESTRICT"), index=True)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)

    organisation: so.Mapped[Organisation] = so.relationship(back_populates="depots")

    def __repr__(self) -> str:
        return f"<Depot {self.code}>"


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        sa.CheckConstraint(_in("category", Category), name="category"),
        sa.CheckConstraint(f"ppe_group IS NULL OR {_in('ppe_group', PPEGroup)}", name="ppe_group"),
        sa.CheckConstraint("pack_size IS NULL OR pack_size > 0", name="pack_size"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(40), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    category: so.Mapped[str] = so.mapped_column(sa.String(20))
    unit: so.Mapped[str] = so.mapped_column(sa.String(40))
    pack_size: so.Mapped[Optional[int]]
    gtin: so.Mapped[Optional[str]] = so.mapped_column(sa.String(14), unique=True)
    atc: so.Mapped[Optional[str]] = so.mapped_column(sa.String(10))
    ppe_group: so.Mapped[Optional[str]] = so.mapped_column(sa.String(20))
    has_expiry: so.Mapped[bool] = so.mapped_column(default=True, server_default=sa.true())
    created_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)

    lots: so.Mapped[list[Lot]] = so.relationship(back_populates="item")

    def __repr__(self) -> str:
        return f"<Item {self.code}>"


class Lot(Base):
    __tablename__ = "lots"
    __table_args__ = (
        sa.UniqueConstraint("item_id", "lot_number"),
        sa.CheckConstraint(_in("status", LotStatus), name="status"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    item_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("items.id", ondelete="RESTRICT"))
    lot_number: so.Mapped[str] = so.mapped_column(sa.String(40))
    expiry: so.Mapped[Optional[dt.date]]
    # The expiry printed on the pack, kept when a shelf-life extension moves ``expiry``.
    original_expiry: so.Mapped[Optional[dt.date]]
    status: so.Mapped[str] = so.mapped_column(sa.String(20), default=LotStatus.AVAILABLE.value)
    received_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)

    item: so.Mapped[Item] = so.relationship(back_populates="lots")
    events: so.Mapped[list[LotEvent]] = so.relationship(
        back_populates="lot", order_by="LotEvent.id")

    def usable_on(self, day: dt.date) -> bool:
        """True when the lot may be issued on ``day``: available and not past its expiry day."""
        return self.status == LotStatus.AVAILABLE and (self.expiry is None or self.expiry >= day)

    def __repr__(self) -> str:
        return f"<Lot {self.lot_number} exp {self.expiry}>"


class LotEvent(Base):
    """A status change or shelf-life extension of a lot: who, when, why, from what to what."""

    __tablename__ = "lot_events"
    __table_args__ = (sa.CheckConstraint(_in("kind", LotEventKind), name="kind"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    lot_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("lots.id", ondelete="RESTRICT"), index=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(20))
    old_value: so.Mapped[Optional[str]] = so.mapped_column(sa.String(40))
    new_value: so.Mapped[str] = so.mapped_column(sa.String(40))
    reason: so.Mapped[str] = so.mapped_column(sa.Text)
    recorded_by_id: so.Mapped[Optional[int]] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="RESTRICT"))
    recorded_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)

    lot: so.Mapped[Lot] = so.relationship(back_populates="events")
    recorded_by: so.Mapped[Optional[User]] = so.relationship()


class Balance(Base):
    """Quantity of one lot in one depot and pool; written only by the posting path."""

    __tablename__ = "balances"
    __table_args__ = (
        sa.UniqueConstraint("lot_id", "depot_id", "pool"),
        sa.CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        sa.CheckConstraint(_in("pool", Pool), name="pool"),
        sa.Index("ix_balances_depot_pool", "depot_id", "pool"),
        sa.Index("ix_balances_on_hand", "depot_id", "pool", postgresql_where=sa.text("quantity > 0"),
                 sqlite_where=sa.text("quantity > 0")),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    lot_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("lots.id", ondelete="RESTRICT"))
    depot_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("depots.id", ondelete="RESTRICT"))
    pool: so.Mapped[str] = so.mapped_column(sa.String(20))
    quantity: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)

    lot: so.Mapped[Lot] = so.relationship()
    depot: so.Mapped[Depot] = so.relationship()


class Movement(Base):
    """One immutable ledger entry. Corrected by a reversing movement, never edited."""

    __tablename__ = "movements"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", MovementKind), name="kind"),
        sa.CheckConstraint(_in("pool", Pool), name="pool"),
        sa.CheckConstraint("quantity <> 0", name="quantity_not_zero"),
        sa.CheckConstraint(f"flag IS NULL OR {_in('flag', IssueFlag)}", name="flag"),
        sa.Index("ix_movements_lot_depot_pool_occurred", "lot_id", "depot_id", "pool", "occurred_at"),
        sa.Index("ix_movements_depot_occurred", "depot_id", "occurred_at"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    # Movements written together (both legs of a transfer, the lots of one FEFO issue).
    posting_id: so.Mapped[str] = so.mapped_column(sa.String(36), index=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(20))
    lot_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("lots.id", ondelete="RESTRICT"))
    depot_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("depots.id", ondelete="RESTRICT"))
    pool: so.Mapped[str] = so.mapped_column(sa.String(20))
    quantity: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    occurred_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime)
    recorded_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    recorded_by_id: so.Mapped[Optional[int]] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="RESTRICT"))
    reference: so.Mapped[Optional[str]] = so.mapped_column(sa.String(200))
    reason: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)
    flag: so.Mapped[Optional[str]] = so.mapped_column(sa.String(10))
    recipient: so.Mapped[Optional[str]] = so.mapped_column(sa.String(200))
    recipient_organisation_id: so.Mapped[Optional[int]] = so.mapped_column(
        sa.ForeignKey("organisations.id", ondelete="RESTRICT"))
    fefo_override: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())
    reversal_of_id: so.Mapped[Optional[int]] = so.mapped_column(
        sa.ForeignKey("movements.id", ondelete="RESTRICT"), unique=True)

    lot: so.Mapped[Lot] = so.relationship()
    depot: so.Mapped[Depot] = so.relationship()
    recorded_by: so.Mapped[Optional[User]] = so.relationship()
    recipient_organisation: so.Mapped[Optional[Organisation]] = so.relationship()
    reversal_of: so.Mapped[Optional[Movement]] = so.relationship(remote_side=[id])


# --- coverage: baselines, policies, item lists, scenarios (DESIGN.md §1, §3, §4) ------------

class BaselineSource(enum.StrEnum):
    MANUAL = "manual"
    COMPUTED = "computed"
    ANNUAL_3Y = "annual_3y"


class PolicyPool(enum.StrEnum):
    OPERATIONAL = "operational"
    EMERGENCY = "emergency"
    ALL = "all"


class Criticality(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ItemListAction(enum.StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"


class Baseline(Base):
    """Normal weekly use of one item at one organisation, as entered (never edited: a newer row
    replaces it). ``computed`` baselines are derived from the ledger when asked for and are not
    stored here."""

    __tablename__ = "baselines"
    __table_args__ = (
        sa.CheckConstraint(f"source IN ('{BaselineSource.MANUAL}', '{BaselineSource.ANNUAL_3Y}')",
                           name="source"),
        sa.CheckConstraint("weekly_use >= 0", name="weekly_use"),
        sa.Index("ix_baselines_org_item", "organisation_id", "item_id", "valid_from"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    organisation_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("organisations.id", ondelete="RESTRICT"))
    item_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("items.id", ondelete="RESTRICT"))
    source: so.Mapped[str] = so.mapped_column(sa.String(20))
    weekly_use: so.Mapped[Decimal] = so.mapped_column(sa.Numeric(16, 4))
    valid_from: so.Mapped[dt.date]
    # § 8a: annual use per calendar year as entered, the three years used (a deviating year
    # replaced by the year before it) and which were replaced, so the figure can be audited.
    annual_use: so.Mapped[Optional[dict[str, int]]] = so.mapped_column(sa.JSON)
    years_used: so.Mapped[Optional[list[int]]] = so.mapped_column(sa.JSON)
    years_replaced: so.Mapped[Optional[dict[str, int]]] = so.mapped_column(sa.JSON)
    note: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)
    recorded_by_id: so.Mapped[Optional[int]] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="RESTRICT"))
    recorded_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)

    organisation: so.Mapped[Organisation] = so.relationship()
    item: so.Mapped[Item] = so.relationship()
    recorded_by: so.Mapped[Optional[User]] = so.relationship()


class ComputedUse(Base):
    """The computed baseline's figures for one organisation and item as evaluated on one day
    (``coverage.computed_use``): kept so that coverage reads one row per pair instead of 13 weeks
    of movements. Every posting deletes the rows of the pairs it touches, and a shelf-life
    extension those of its item, in the same transaction; the evaluation after the commit and
    the daily ``computed_use`` job fill them again. ``issued`` is null when the pair had neither
    stock nor movements in the window (no history)."""

    __tablename__ = "computed_use"

    organisation_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    item_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    evaluated_on: so.Mapped[dt.date] = so.mapped_column(primary_key=True)
    window_weeks: so.Mapped[int] = so.mapped_column(primary_key=True)
    issued: so.Mapped[Optional[int]] = so.mapped_column(sa.BigInteger)
    in_stock_days: so.Mapped[int]
    window_days: so.Mapped[int]


class ItemList(Base):
    """A named, versioned list of items held by one organisation: the emergency list of a supply
    centre, the critical drug list of a hospital pharmacy. Policies name lists by ``code``."""

    __tablename__ = "item_lists"
    __table_args__ = (sa.UniqueConstraint("organisation_id", "code"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    organisation_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("organisations.id", ondelete="RESTRICT"), index=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(40))
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    version: so.Mapped[int] = so.mapped_column(default=1)

    organisation: so.Mapped[Organisation] = so.relationship()
    entries: so.Mapped[list[ItemListEntry]] = so.relationship(
        back_populates="item_list", cascade="all, delete-orphan")
    changes: so.Mapped[list[ItemListChange]] = so.relationship(
        back_populates="item_list", order_by="ItemListChange.id")


item_list_alternatives = sa.Table(
    "item_list_alternatives",
    Base.metadata,
    sa.Column("entry_id", sa.ForeignKey("item_list_entries.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("item_id", sa.ForeignKey("items.id", ondelete="RESTRICT"), primary_key=True),
)


class ItemListEntry(Base):
    __tablename__ = "item_list_entries"
    __table_args__ = (
        sa.UniqueConstraint("item_list_id", "item_id"),
        sa.CheckConstraint("min_days IS NULL OR min_days >= 0", name="min_days"),
        sa.CheckConstraint(f"criticality IS NULL OR {_in('criticality', Criticality)}",
                           name="criticality"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    item_list_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("item_lists.id", ondelete="CASCADE"))
    item_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("items.id", ondelete="RESTRICT"))
    # Per-item minimum days, overriding the policy's minimum (e.g. 21 days for one drug).
    min_days: so.Mapped[Optional[Decimal]] = so.mapped_column(sa.Numeric(10, 4))
    criticality: so.Mapped[Optional[str]] = so.mapped_column(sa.String(10))
    note: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)

    item_list: so.Mapped[ItemList] = so.relationship(back_populates="entries")
    item: so.Mapped[Item] = so.relationship()
    alternatives: so.Mapped[list[Item]] = so.relationship(secondary=item_list_alternatives,
                                                          order_by="Item.name")


class ItemListChange(Base):
    """One change to an item list: who, when, which item, what, and the version it made."""

    __tablename__ = "item_list_changes"
    __table_args__ = (sa.CheckConstraint(_in("action", ItemListAction), name="action"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    item_list_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("item_lists.id", ondelete="CASCADE"), index=True)
    version: so.Mapped[int]
    item_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("items.id", ondelete="RESTRICT"))
    action: so.Mapped[str] = so.mapped_column(sa.String(10))
    detail: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    recorded_by_id: so.Mapped[Optional[int]] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="RESTRICT"))
    recorded_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)

    item_list: so.Mapped[ItemList] = so.relationship(back_populates="changes")
    item: so.Mapped[Item] = so.relationship()
    recorded_by: so.Mapped[Optional[User]] = so.relationship()


class Policy(Base):
    """A coverage target: for which organisations (a kind or one), which items (a category, a
    list code or one item) and which pool; ``min_days``/``target_days``/``max_days``.

    Where several policies meet the same organisation, item and pool, the most specific wins:
    one item over a list over a category, then one organisation over a kind.
    """

    __tablename__ = "policies"
    __table_args__ = (
        sa.CheckConstraint("(organisation_kind IS NULL) <> (organisation_id IS NULL)",
                           name="one_organisation_scope"),
        sa.CheckConstraint("(CASE WHEN category IS NULL THEN 0 ELSE 1 END"
                           " + CASE WHEN item_list IS NULL THEN 0 ELSE 1 END"
                           " + CASE WHEN item_id IS NULL THEN 0 ELSE 1 END) = 1",
                           name="one_item_scope"),
        sa.CheckConstraint(f"organisation_kind IS NULL OR {_in('organisation_kind', OrganisationKind)}",
                           name="organisation_kind"),
        sa.CheckConstraint(f"category IS NULL OR {_in('category', Category)}", name="category"),
        sa.CheckConstraint(_in("pool", PolicyPool), name="pool"),
        sa.CheckConstraint("min_days >= 0 AND target_days >= min_days"
                           " AND (max_days IS NULL OR max_days >= target_days)", name="days"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200), unique=True)
    organisation_kind: so.Mapped[Optional[str]] = so.mapped_column(sa.String(20))
    organisation_id: so.Mapped[Optional[int]] = so.mapped_column(
        sa.ForeignKey("organisations.id", ondelete="RESTRICT"))
    category: so.Mapped[Optional[str]] = so.mapped_column(sa.String(20))
    item_list: so.Mapped[Optional[str]] = so.mapped_column(sa.String(40))
    item_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("items.id", ondelete="RESTRICT"))
    pool: so.Mapped[str] = so.mapped_column(sa.String(20))
    min_days: so.Mapped[Decimal] = so.mapped_column(sa.Numeric(10, 4))
    target_days: so.Mapped[Decimal] = so.mapped_column(sa.Numeric(10, 4))
    max_days: so.Mapped[Optional[Decimal]] = so.mapped_column(sa.Numeric(10, 4))
    active: so.Mapped[bool] = so.mapped_column(default=True, server_default=sa.true())
    updated_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    organisation: so.Mapped[Optional[Organisation]] = so.relationship()
    item: so.Mapped[Optional[Item]] = so.relationship()


class Scenario(Base):
    """A named demand situation: use multiplied per category or item (e.g. a pandemic wave)."""

    __tablename__ = "scenarios"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(100), unique=True)
    description: so.Mapped[str] = so.mapped_column(sa.Text, default="")

    factors: so.Mapped[list[ScenarioFactor]] = so.relationship(
        back_populates="scenario", cascade="all, delete-orphan")


class ScenarioFactor(Base):
    __tablename__ = "scenario_factors"
    __table_args__ = (
        sa.CheckConstraint("(category IS NULL) <> (item_id IS NULL)", name="one_scope"),
        sa.CheckConstraint(f"category IS NULL OR {_in('category', Category)}", name="category"),
        sa.CheckConstraint("factor > 0", name="factor"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    scenario_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("scenarios.id", ondelete="CASCADE"), index=True)
    category: so.Mapped[Optional[str]] = so.mapped_column(sa.String(20))
    item_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("items.id", ondelete="RESTRICT"))
    factor: so.Mapped[Decimal] = so.mapped_column(sa.Numeric(8, 3))

    scenario: so.Mapped[Scenario] = so.relationship(back_populates="factors")
    item: so.Mapped[Optional[Item]] = so.relationship()
