"""stockpile — emergency-stockpile inventory for health preparedness."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from stockpile.config import from_environment
from stockpile import extensions


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

    from stockpile.alerts import services as alerts

    # Bound here, not imported by name: ``stockpile.db`` is the module, not the extension.
    # Every session (requests, commands, the scheduler's jobs) evaluates alerts for what its
    # postings changed, after they committed.
    extensions.db.init_app(app, after_commit=[alerts.evaluate_after_posting])
    extensions.login_manager.init_app(app)
    extensions.csrf.init_app(app)
    extensions.babel.init_app(app)

    from stockpile import api, cli, scheduler
    from stockpile.alerts import api as alerts_api
    from stockpile.alerts import views as alerts_views
    from stockpile.auth import views as auth_views
    from stockpile.inventory import api as inventory_api
    from stockpile.inventory import coverage_api, coverage_views, duty_views
    from stockpile.inventory import views as inventory_views
    from stockpile.rotation import api as rotation_api
    from stockpile.rotation import views as rotation_views

    api.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(inventory_api.bp)
    app.register_blueprint(coverage_api.bp)
    app.register_blueprint(auth_views.bp)
    app.register_blueprint(inventory_views.bp)
    app.register_blueprint(coverage_views.bp)
    app.register_blueprint(duty_views.bp)
    app.register_blueprint(rotation_api.bp)
    app.register_blueprint(rotation_views.bp)
    app.register_blueprint(alerts_api.bp)
    app.register_blueprint(scheduler.bp)  # the job-run page only; the scheduler runs elsewhere
    app.register_blueprint(alerts_views.bp)
    cli.register(app)
    return app
