"""Scheduled jobs of the rotation package: small and idempotent, each opening its own session.

They are registered in ``stockpile.scheduler.JOBS`` and run there or by hand with
``flask --app stockpile jobs run <name>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from stockpile.db import begin_write
from stockpile.rotation import services as rotation
from stockpile.rotation.models import OPEN_STATES, RotationTask

if TYPE_CHECKING:
    from stockpile.scheduler import JobContext

_OPEN = [state.value for state in OPEN_STATES]


def refresh_rotation(job: JobContext) -> str:
    """Re-plan rotation and bring the tasks up to date for ``job.today``.

    Covers every organisation holding emergency stock and every organisation with open tasks:
    one whose last emergency lot has gone gets those tasks cancelled. Returns the counts of
    what changed and of the open tasks by state.
    """
    with job.session() as session:
        begin_write(session)
        counts = rotation.sync_tasks(session, today=job.today)
        open_by_state = dict(session.execute(
            sa.select(RotationTask.state, sa.func.count()).where(RotationTask.state.in_(_OPEN))
            .group_by(RotationTask.state)).all())
        session.commit()
    open_text = ", ".join(f"{open_by_state.get(state, 0)} {state}" for state in _OPEN)
    return (f"{job.today.isoformat()}: "
            f"{counts['created']} task(s) created, {counts['updated']} updated, "
            f"{counts['cancelled']} cancelled; open: {open_text}")
