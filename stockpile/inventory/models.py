"""Organisations, depots, items, lots, the movement ledger and balances (DESIGN.md §2)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Optional

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.ext.hybrid import hybrid_method

from stockpile.db import Base, UTCDateTime, in_enum, utcnow

if TYPE_CHECKING:
    from stockpile.auth.models import User


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


def lot_usable(status: str, expiry: dt.date | None, day: dt.date) -> bool:
    """A lot may be issued and counts as usable stock on ``day`` when it is available (not
    quarantined or recalled) and not past its expiry day (DESIGN.md §2)."""
    return status == LotStatus.AVAILABLE.value and (expiry is None or expiry >= day)


class Organisation(Base):
    __tablename__ = "organisations"
    __table_args__ = (sa.CheckConstraint(in_enum("kind", OrganisationKind), name="kind"),
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
        sa.CheckConstraint(in_enum("category", Category), name="category"),
        sa.CheckConstraint(f"ppe_group IS NULL OR {in_enum('ppe_group', PPEGroup)}", name="ppe_group"),
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
        sa.CheckConstraint(in_enum("status", LotStatus), name="status"),
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

    @hybrid_method
    def usable_on(self, day: dt.date) -> bool:
        """True when the lot may be issued on ``day`` (``lot_usable``); in a query, the same as SQL."""
        return lot_usable(self.status, self.expiry, day)

    @usable_on.inplace.expression
    @classmethod
    def _usable_on_expression(cls, day: dt.date) -> sa.ColumnElement[bool]:
        return sa.and_(cls.status == LotStatus.AVAILABLE.value, sa.or_(cls.expiry.is_(None), cls.expiry >= day))

    def __repr__(self) -> str:
        return f"<Lot {self.lot_number} exp {self.expiry}>"


class LotEvent(Base):
    """A status change or shelf-life extension of a lot: who, when, why, from what to what."""

    __tablename__ = "lot_events"
    __table_args__ = (sa.CheckConstraint(in_enum("kind", LotEventKind), name="kind"),)

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
        sa.CheckConstraint(in_enum("pool", Pool), name="pool"),
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
        sa.CheckConstraint(in_enum("kind", MovementKind), name="kind"),
        sa.CheckConstraint(in_enum("pool", Pool), name="pool"),
        sa.CheckConstraint("quantity <> 0", name="quantity_not_zero"),
        sa.CheckConstraint(f"flag IS NULL OR {in_enum('flag', IssueFlag)}", name="flag"),
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
