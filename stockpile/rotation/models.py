"""Rotation tasks: moving an emergency lot into daily use before it expires (DESIGN.md §5)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Optional

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.db import Base, UTCDateTime, in_enum, utcnow
from stockpile.inventory.models import Depot, Item, Lot, Organisation

if TYPE_CHECKING:
    from stockpile.auth.models import User


class TaskState(enum.StrEnum):
    PLANNED = "planned"
    DUE = "due"
    OVERDUE = "overdue"
    DONE = "done"
    CANCELLED = "cancelled"


OPEN_STATES = (TaskState.PLANNED, TaskState.DUE, TaskState.OVERDUE)


class RotationTask(Base):
    """Move ``quantity`` of an emergency lot into the operational pool from ``rotate_by`` on.

    Created and updated from the rotation plan; completing it posts the movements through the
    ledger and records who did it.
    """

    __tablename__ = "rotation_tasks"
    __table_args__ = (
        sa.CheckConstraint(in_enum("state", TaskState), name="state"),
        sa.CheckConstraint("quantity >= 0 AND at_risk >= 0", name="quantities"),
        sa.Index("ix_rotation_tasks_org_state", "organisation_id", "state"),
        sa.Index("ix_rotation_tasks_lot_depot", "lot_id", "depot_id"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    organisation_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("organisations.id", ondelete="RESTRICT"))
    depot_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("depots.id", ondelete="RESTRICT"))
    item_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("items.id", ondelete="RESTRICT"))
    lot_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("lots.id", ondelete="RESTRICT"))
    quantity: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    at_risk: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    rotate_by: so.Mapped[Optional[dt.date]]
    finish_by: so.Mapped[Optional[dt.date]]
    state: so.Mapped[str] = so.mapped_column(sa.String(12), default=TaskState.PLANNED.value)
    reason: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    created_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    updated_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    completed_at: so.Mapped[Optional[dt.datetime]] = so.mapped_column(UTCDateTime)
    completed_by_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("users.id", ondelete="RESTRICT"))
    # The ledger posting that carried it out (movements share this posting id).
    posting_id: so.Mapped[Optional[str]] = so.mapped_column(sa.String(36))

    organisation: so.Mapped[Organisation] = so.relationship()
    depot: so.Mapped[Depot] = so.relationship()
    item: so.Mapped[Item] = so.relationship()
    lot: so.Mapped[Lot] = so.relationship()
    completed_by: so.Mapped[Optional[User]] = so.relationship()
