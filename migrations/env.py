"""Alembic environment: runs on a connection handed in by stockpile, or on DATABASE_URL."""

import os

from alembic import context

from stockpile.db import make_engine
from stockpile.models import load_models

config = context.config
target_metadata = load_models()


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("Set DATABASE_URL to the database to migrate.")
    engine = make_engine(url)
    with engine.begin() as conn:
        run(conn)
    engine.dispose()
