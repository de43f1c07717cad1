"""REST endpoints for master data and stock movements (API.md)."""

from flask import Blueprint

from stockpile.api import PREFIX

bp = Blueprint("inventory_api", __name__, url_prefix=PREFIX)
