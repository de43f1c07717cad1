"""The duties people are held to: a municipality's 3-month PPE duty and a hospital pharmacy's
critical drug list."""

from flask import Blueprint

bp = Blueprint("duty", __name__)
