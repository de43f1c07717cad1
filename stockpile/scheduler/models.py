"""The scheduler's own tables: each job run, and the SQLite lease that keeps a job from running
twice at once."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Optional

import sqlalchemy as sa
import sqlalchemy.orm as so

from stockpile.db import Base, UTCDateTime, in_enum, utcnow


class JobOutcome(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobRun(Base):
    """One run of a scheduled job: when, how long, how it ended, and the error if it failed."""

    __tablename__ = "job_runs"
    __table_args__ = (
        sa.CheckConstraint(in_enum("outcome", JobOutcome), name="outcome"),
        sa.Index("ix_job_runs_job_started", "job", "started_at"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    job: so.Mapped[str] = so.mapped_column(sa.String(60))
    started_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime, default=utcnow)
    finished_at: so.Mapped[Optional[dt.datetime]] = so.mapped_column(UTCDateTime)
    duration_ms: so.Mapped[Optional[int]]
    outcome: so.Mapped[str] = so.mapped_column(sa.String(12), default=JobOutcome.RUNNING.value)
    summary: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    error: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)
    runner: so.Mapped[str] = so.mapped_column(sa.String(120), default="")  # host and process id


class JobLease(Base):
    """On SQLite, who may run a job right now (PostgreSQL uses an advisory lock instead)."""

    __tablename__ = "job_leases"

    job: so.Mapped[str] = so.mapped_column(sa.String(60), primary_key=True)
    holder: so.Mapped[str] = so.mapped_column(sa.String(120))
    expires_at: so.Mapped[dt.datetime] = so.mapped_column(UTCDateTime)
