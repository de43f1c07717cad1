"""Every table of the application in one metadata, for Alembic and the schema checks."""

from __future__ import annotations

import sqlalchemy as sa

from stockpile.alerts import models as alerts  # noqa: F401  (each import adds its tables)
from stockpile.auth import models as auth  # noqa: F401
from stockpile.coverage import models as coverage  # noqa: F401
from stockpile.db import Base
from stockpile.inventory import models as inventory  # noqa: F401
from stockpile.rotation import models as rotation  # noqa: F401
from stockpile.scheduler import models as scheduler  # noqa: F401


def load_models() -> sa.MetaData:
    """``Base.metadata``, knowing every table."""
    return Base.metadata
