"""Production entry point: ``gunicorn wsgi:app``."""

from stockpile import create_app

app = create_app()
