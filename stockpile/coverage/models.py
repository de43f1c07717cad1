"""Coverage's data: baselines, kept computed use, item lists, policies and scenarios
(DESIGN.md §1, §3, §4). Each refers to the inventory's organisations and items."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import TYPE_CHECKING, Optional

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.db import Base, UTCDateTime, in_enum, utcnow
from stockpile.inventory.models import Category, Item, Organisation, OrganisationKind

if TYPE_CHECKING:
    from stockpile.auth.models import User


# The codes of the item lists the application itself knows: a pharmacy's critical drug list
# and a supply centre's emergency list.
CRITICAL_DRUG_LIST = "critical-drugs"
EMERGENCY_LIST = "emergency"


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
        sa.CheckConstraint(f"criticality IS NULL OR {in_enum('criticality', Criticality)}",
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
    __table_args__ = (sa.CheckConstraint(in_enum("action", ItemListAction), name="action"),)

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
        sa.CheckConstraint(f"organisation_kind IS NULL OR {in_enum('organisation_kind', OrganisationKind)}",
                           name="organisation_kind"),
        sa.CheckConstraint(f"category IS NULL OR {in_enum('category', Category)}", name="category"),
        sa.CheckConstraint(in_enum("pool", PolicyPool), name="pool"),
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

    def applies_to(self, organisation: Organisation) -> bool:
        """A policy is for one organisation, or for every organisation of a kind."""
        if self.organisation_id:
            return self.organisation_id == organisation.id
        return self.organisation_kind == organisation.kind

    @property
    def specificity(self) -> tuple[int, int]:
        """Of the policies that reach one item and pool at an organisation, the most specific
        counts (DESIGN.md §3): an item's over a list's over a category's, then one for the
        organisation itself over one for its kind. Equal ones: the first (lowest id)."""
        item_scope = 3 if self.item_id else 2 if self.item_list else 1
        return item_scope, 1 if self.organisation_id else 0


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
        sa.CheckConstraint(f"category IS NULL OR {in_enum('category', Category)}", name="category"),
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
