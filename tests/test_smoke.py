import datetime as dt

from tests import factories


def test_world_builds_and_receipt_posts(world, session):
    moves = factories.receive(session, world.centre_depot, world.mask, "L1", dt.date(2027, 1, 1), 10)
    assert [m.quantity for m in moves] == [10]
