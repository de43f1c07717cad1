"""Pages for items, lots, stock cards and the movement forms."""

from flask import Blueprint

bp = Blueprint("inventory", __name__)
