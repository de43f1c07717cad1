"""Sign-in, sign-out and user administration pages."""

from flask import Blueprint

bp = Blueprint("auth", __name__)
