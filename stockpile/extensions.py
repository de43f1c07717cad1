"""Extensions created once and bound to the application in ``create_app``: the database (a
session per request or command), sign-in, CSRF protection and translations."""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from stockpile.db import Hooks, Session, begin_write, make_engine


class Database:
    """Binds an engine to each application and hands out one session per request or command."""

    def __init__(self) -> None:
        self.fixed_session: so.Session | None = None  # tests bind one session to a transaction

    def init_app(self, app: Flask, *, hooks: Hooks = Hooks()) -> None:
        """Bind the app's database; every session it hands out calls ``hooks`` (see Session)."""
        engine = make_engine(app.config["DATABASE_URL"])
        app.extensions["stockpile.db"] = so.sessionmaker(engine, class_=Session, expire_on_commit=False,
                                                         hooks=hooks)
        app.teardown_appcontext(self._remove)

    @property
    def engine(self) -> sa.Engine:
        bind = current_app.extensions["stockpile.db"].kw["bind"]
        assert isinstance(bind, sa.Engine)
        return bind

    @property
    def session(self) -> so.Session:
        if self.fixed_session is not None:
            return self.fixed_session
        if "db_session" not in g:
            session = current_app.extensions["stockpile.db"]()
            session.info["timezone"] = current_app.config["TIMEZONE"]
            if has_request_context() and request.method not in {"GET", "HEAD", "OPTIONS"}:
                begin_write(session)
            g.db_session = session
        return g.db_session

    def _remove(self, _exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


db = Database()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
