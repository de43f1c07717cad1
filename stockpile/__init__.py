"""stockpile — emergency-stockpile inventory for health preparedness."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from stockpile import api, cli, extensions
from stockpile.alerts import api as alerts_api
from stockpile.alerts.services import evaluate_after_posting
from stockpile.alerts import views as alerts_views
from stockpile.auth import views as auth_views
from stockpile.config import from_environment
from stockpile.coverage import api as coverage_api
from stockpile.coverage import views as coverage_views
from stockpile.coverage.services import forget_item, forget_stock_changed
from stockpile.db import Hooks
from stockpile.duty import views as duty_views
from stockpile.inventory import api as inventory_api
from stockpile.inventory import views as inventory_views
from stockpile.rotation import api as rotation_api
from stockpile.rotation import views as rotation_views
from stockpile.scheduler import views as scheduler_views
from stockpile.web import security_headers

# What every session (requests, commands, the scheduler's jobs) does when the ledger changes:
# coverage forgets the computed use it kept for the stock that changed, in the same transaction;
# alerts are evaluated for what was posted once it has committed.
HOOKS = Hooks(stock_changed=[forget_stock_changed], lot_changed=[forget_item],
              after_commit=[evaluate_after_posting])

BLUEPRINTS = (api.bp, inventory_api.bp, coverage_api.bp, auth_views.bp, inventory_views.bp,
              coverage_views.bp, duty_views.bp, rotation_api.bp, rotation_views.bp, alerts_api.bp,
              scheduler_views.bp,  # the job-run page only; the scheduler runs elsewhere
              alerts_views.bp)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application: settings from the environment, then ``config`` on top."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(from_environment(app.instance_path))
    if config:
        app.config.update(config)
    if not app.config.get("SECRET_KEY"):
        if not (app.debug or app.testing):
            raise RuntimeError(
                "SECRET_KEY is not set. Set it in the environment to a long random value "
                "(e.g. python -c 'import secrets; print(secrets.token_hex(32))').")
        app.config["SECRET_KEY"] = "insecure-development-key"

    extensions.db.init_app(app, hooks=HOOKS)
    extensions.login_manager.init_app(app)
    extensions.csrf.init_app(app)
    extensions.babel.init_app(app)
    api.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.after_request(security_headers)
    cli.register(app)
    return app
