"""REST endpoints for alerts (API.md, *Rotation and alerts*): the alerts of the organisations a
user may read, one alert with its history, and acknowledging one.

Reading follows ``auth.readable_organisation_ids`` (a coordinator reads their region); an alert
is acknowledged only by those who record stock for its organisation, and administrators.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from stockpile.alerts import schemas
from stockpile.alerts import services as alerts
from stockpile.alerts.models import Alert
from stockpile.api import PREFIX, current_user, load, load_args, paginate, writes
from stockpile.auth import services as auth
from stockpile.db import get
from stockpile.errors import Forbidden, NotFound
from stockpile.extensions import csrf, db
from stockpile.inventory.api import readable_organisation

bp = Blueprint("alerts_api", __name__, url_prefix=PREFIX)
# The API is authenticated by bearer tokens, not cookies, so there is no session to forge.
csrf.exempt(bp)

ALERT = schemas.AlertOutputSchema()
ALERT_DETAIL = schemas.AlertDetailOutputSchema()


@bp.get("/alerts")
def list_alerts() -> Response:
    args = load_args(schemas.AlertQueryInputSchema())
    session = db.session
    organisation = readable_organisation(args["organisation"]) if args["organisation"] else None
    rule = alerts.require_rule(session, args["rule"]) if args["rule"] is not None else None
    return paginate(alerts.visible_alerts(session, auth.readable_organisation_ids(session, current_user()),
                                          state=args["state"], severity=args["severity"],
                                          organisation=organisation, rule=rule), ALERT)


def _alert(alert_id: int, *, lock: bool = False) -> Alert:
    """The alert if the user may read its organisation; 404 as if it did not exist otherwise."""
    # Locked when it is about to change, so two acknowledgements cannot both see it open.
    alert = get(db.session, Alert, alert_id, with_for_update=lock, populate_existing=lock)
    if alert is None or not auth.can_read(db.session, current_user(), alert.organisation_id):
        raise NotFound(f"No alert {alert_id}.")
    return alert


@bp.get("/alerts/<int:alert_id>")
def get_alert(alert_id: int) -> Response:
    return jsonify(ALERT_DETAIL.dump(_alert(alert_id)))


@bp.post("/alerts/<int:alert_id>/acknowledge")
@writes
def acknowledge(alert_id: int) -> tuple[dict[str, Any], int]:
    # The body is optional: an acknowledgement needs no comment.
    data = load(schemas.AcknowledgeInputSchema(), {} if not request.get_data().strip() else None)
    alert = _alert(alert_id, lock=True)
    if not auth.can_write(current_user(), alert.organisation_id):
        raise Forbidden(f"You may not acknowledge alerts of {alert.organisation.code}: only those who "
                        "record its stock, and administrators, may.")
    alerts.acknowledge(db.session, alert, user_id=current_user().id, comment=data["comment"])
    return ALERT_DETAIL.dump(alert), 200
