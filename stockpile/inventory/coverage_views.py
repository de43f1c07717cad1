"""Coverage pages: the supply centre's coverage, an item's projection, the coordinator's region,
and administration of policies, scenarios and baselines."""

from flask import Blueprint

bp = Blueprint("coverage", __name__)
