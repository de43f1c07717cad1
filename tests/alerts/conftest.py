"""Alerts raised the way real ones are: stock posted and committed, evaluated by the hook that runs
before each commit that posted stock.

After ``alerted``:
- SC (supply centre): GLOVE at 70 a week, 150 usable = 15 days, below the 21-day minimum of the
  supply centre's PPE safety stock: ``coverage_below_min`` (critical), 130 units short of 28 days.
- MUN (municipality under REG): lot OLD of MASK, expired yesterday, 5 units: ``expired_on_hand``
  (critical); MASK has no baseline under the PPE duty: ``no_baseline`` (info).
- OTHER (municipality outside REG): lot OTH of MASK expired, 7 units, and the same ``no_baseline``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from stockpile.coverage import services as coverage
from stockpile.alerts.models import Alert
from stockpile.inventory.models import Depot, Organisation
from tests import factories

TODAY = factories.TODAY


def days(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


@dataclass
class Alerted:
    world: factories.World
    below_min: Alert        # SC, GLOVE
    expired: Alert          # MUN, lot OLD
    mun_no_baseline: Alert  # MUN, MASK
    other_expired: Alert    # OTHER, lot OTH

    def headers(self, who: str) -> dict[str, str]:
        return self.world.headers(who)


def find(session, rule: str, org_code: str) -> Alert:
    return session.scalars(sa.select(Alert).join(Alert.organisation)
                           .where(Alert.rule == rule, Organisation.code == org_code)).one()


@pytest.fixture
def alerted(session, world) -> Alerted:
    coverage.set_manual_baseline(session, factories.ctx(today=TODAY), organisation=world.centre, item=world.glove,
                                  weekly_use=70, valid_from=days(-30))
    factories.receive(session, world.centre_depot, world.glove, "G1", days(400), 150, today=TODAY)
    factories.receive(session, world.municipal_depot, world.mask, "OLD", days(-1), 5, today=days(-20))
    other_depot = session.scalar(sa.select(Depot).where(Depot.code == "OTHER-D"))
    factories.receive(session, other_depot, world.mask, "OTH", days(-2), 7, today=days(-20))
    session.commit()
    assert session.scalar(sa.select(sa.func.count(Alert.id))) == 5
    return Alerted(world, find(session, "coverage_below_min", "SC"), find(session, "expired_on_hand", "MUN"),
                   find(session, "no_baseline", "MUN"), find(session, "expired_on_hand", "OTHER"))
