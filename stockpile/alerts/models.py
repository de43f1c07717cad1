"""Alert rules (configurable), alerts with their lifecycle and history, and where they are sent."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any, Optional

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.db import Base, UTCDateTime, utcnow
from stockpile.inventory.models import Item, Lot, Organisation
from stockpile.db import in_enum

if TYPE_CHECKING:
    from stockpile.auth.models import User


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AlertEventKind(enum.StrEnum):
    OPENED = "opened"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    REOPENED = "reopened"


class AlertRule(Base):
    """One rule of DESIGN.md §6: on or off, how severe, and its thresholds (``params``)."""

    __tablename__ = "alert_rules"
    __table_args__ = (sa.CheckConstraint(in_enum("severity", Severity), name="severity"),)

    code: so.Mapped[str] = so.mapped_column(sa.String(40), primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    enabled: so.Mapped[bool] = so.mapped_column(default=True, server_default=sa.true())
    severity: so.Mapped[str] = so.mapped_column(sa.String(10))
    params: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)


class Alert(Base):
    """One condition, once: deduplicated by rule, organisation, item and lot (and pool)."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.CheckConstraint(in_enum("state", AlertState), name="state"),
        sa.CheckConstraint(in_enum("severity", Severity), name="severity"),
        sa.Index("ix_alerts_org_state", "organisation_id", "state"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    key: so.Mapped[str] = so.mapped_column(sa.String(200), unique=True)
    rule: so.Mapped[str] = so.mapped_column(sa.ForeignKey("alert_rules.code", ondelete="RESTRICT"))
    organisation_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("organisations.id", ondelete="RESTRICT"))
    item_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("items.id", ondelete="RESTRICT"))
    lot_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("lots.id", ondelete="RESTRICT"))
    severity: so.Mapped[str] = so.mapped_column(sa.String(10))
    state: so.Mapped[str] = so.mapped_column(sa.String(14), default=AlertState.OPEN.value)
    message: so.Mapped[str] = so.mapped_column(sa.Text)
    first_seen: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    last_seen: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    # When it last became open (first seen, or re-opened): what a digest calls "new".
    opened_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow, index=True)
    resolved_at: so.Mapped[Optional[dt.datetime]] = so.mapped_column(UTCDateTime)

    organisation: so.Mapped[Organisation] = so.relationship()
    item: so.Mapped[Optional[Item]] = so.relationship()
    lot: so.Mapped[Optional[Lot]] = so.relationship()
    events: so.Mapped[list[AlertEvent]] = so.relationship(back_populates="alert", order_by="AlertEvent.id")


class AlertEvent(Base):
    """The history of an alert: opened, acknowledged (by whom, with a comment), resolved, re-opened."""

    __tablename__ = "alert_events"
    __table_args__ = (sa.CheckConstraint(in_enum("kind", AlertEventKind), name="kind"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    alert_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(14))
    at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    user_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("users.id", ondelete="RESTRICT"))
    comment: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)

    alert: so.Mapped[Alert] = so.relationship(back_populates="events")
    user: so.Mapped[Optional[User]] = so.relationship()


class DigestSetting(Base):
    """A user's choice for the daily e-mail digest, and when the last one went out."""

    __tablename__ = "digest_settings"
    __table_args__ = (sa.CheckConstraint(in_enum("min_severity", Severity), name="min_severity"),)

    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    enabled: so.Mapped[bool] = so.mapped_column(default=True, server_default=sa.true())
    min_severity: so.Mapped[str] = so.mapped_column(sa.String(10), default=Severity.WARNING.value)
    last_sent_at: so.Mapped[Optional[dt.datetime]] = so.mapped_column(UTCDateTime)


class Webhook(Base):
    """Where an organisation wants its alerts POSTed (JSON, signed with HMAC-SHA256)."""

    __tablename__ = "webhooks"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    organisation_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), unique=True)
    url: so.Mapped[str] = so.mapped_column(sa.String(500))
    secret: so.Mapped[str] = so.mapped_column(sa.String(200))
    active: so.Mapped[bool] = so.mapped_column(default=True, server_default=sa.true())

    organisation: so.Mapped[Organisation] = so.relationship()


class WebhookDelivery(Base):
    """One alert change to deliver to a webhook, retried with back-off; failures recorded."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_webhook_deliveries_pending", "delivered_at", "next_attempt_at"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    webhook_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("webhooks.id", ondelete="CASCADE"))
    alert_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alerts.id", ondelete="CASCADE"))
    payload: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON)
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    next_attempt_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    delivered_at: so.Mapped[Optional[dt.datetime]] = so.mapped_column(UTCDateTime)
    failed_at: so.Mapped[Optional[dt.datetime]] = so.mapped_column(UTCDateTime)  # gave up
    last_error: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)

    webhook: so.Mapped[Webhook] = so.relationship()
    alert: so.Mapped[Alert] = so.relationship()
