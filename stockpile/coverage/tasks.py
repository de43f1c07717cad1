"""Scheduled jobs of the inventory package: small and idempotent, each opening its own session.

Registered in ``stockpile.scheduler.JOBS``; run by hand with ``flask --app stockpile jobs run <name>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from stockpile.db import begin_write
from stockpile.coverage import services as coverage
from stockpile.coverage.models import ComputedUse
from stockpile.inventory.models import Organisation

if TYPE_CHECKING:
    from stockpile.scheduler import JobContext


def keep_computed_use(job: JobContext) -> str:
    """Compute the day's computed baselines of every organisation and keep them, so that the
    first coverage reads of the day do not each read 13 weeks of movements; forget older days'."""
    with job.session() as session:
        begin_write(session)
        coverage.forget_computed_use(session, before=job.today)
        organisations = list(session.scalars(sa.select(Organisation).order_by(Organisation.id)))
        coverage.evaluate(session, organisations, today=job.today, keep_computed=True)
        kept = session.scalar(sa.select(sa.func.count()).select_from(ComputedUse)
                              .where(ComputedUse.evaluated_on == job.today))
        session.commit()
    return f"{job.today.isoformat()}: computed baselines kept for {kept} organisation × item pair(s)"
