"""What every ``/api/v1`` endpoint shares: bearer-token sign-in, the JSON error shape,
``Idempotency-Key`` replay, input parsing and pagination (API.md, *Conventions*)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import Blueprint, Flask, Response, g, jsonify, render_template, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from stockpile.auth import services as auth
from stockpile.auth.models import IdempotencyRecord, User
from stockpile.db import utcnow
from stockpile.errors import DomainError
from stockpile.extensions import csrf, db

PREFIX = "/api/v1"
MAX_PER_PAGE = 500

bp = Blueprint("api", __name__, url_prefix=PREFIX)


def error_response(status: int, code: str, message: str,
                   fields: dict[str, Any] | None = None, **extra: Any) -> tuple[Response, int]:
    body: dict[str, Any] = {"code": code, "message": message, "fields": fields or {}}
    body.update(extra)
    return jsonify({"error": body}), status


def current_user() -> User:
    """The user whose bearer token signed this API request."""
    return g.api_user


def _is_api_request() -> bool:
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


def _authenticate() -> tuple[Response, int] | None:
    if not _is_api_request() or request.endpoint == "api.openapi":
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error_response(401, "unauthenticated",
                              "Send an API token as 'Authorization: Bearer <token>'.")
    user_token = auth.token(db.session, token.strip())
    user = user_token.user if user_token is not None else None
    if user is None:
        return error_response(401, "invalid_token", "The API token is unknown or revoked.")
    if request.method not in {"GET", "HEAD", "OPTIONS"}:
        # Recorded with the request's own commit; reads do not write (no lock for a GET).
        user_token.last_used_at = utcnow()
    g.api_user = user
    return None


# No request of the API nests deeper than a few levels; far deeper JSON is refused before
# anything walks it (Python's parser and printer recurse, and give up near 1,000 levels).
MAX_JSON_DEPTH = 32


def _malformed(message: str) -> DomainError:
    return DomainError(message, code="malformed", fields={"_body": [message]}).with_status(400)


def json_body() -> Any:
    """The request's JSON (None when there is none or it does not parse); 400 ``malformed``
    when it nests deeper than ``MAX_JSON_DEPTH``."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise _malformed(f"The JSON nests deeper than {MAX_JSON_DEPTH} levels.") from None
    stack = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise _malformed(f"The JSON nests deeper than {MAX_JSON_DEPTH} levels.")
            stack.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))
    return body


def load(schema: ma.Schema, data: Any = None) -> dict[str, Any]:
    """Parse the JSON body (or ``data``) with ``schema``; 400 with field errors if it is wrong."""
    if data is None:
        data = json_body()
        if data is None:
            raise DomainError("The body must be a JSON object.", code="malformed",
                              fields={"_body": ["Expected a JSON object."]}).with_status(400)
    try:
        return schema.load(data)
    except ma.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_body": exc.messages}
        names = ", ".join(sorted(messages))
        raise DomainError(f"Invalid input in: {names}.", code="invalid",
                          fields=messages).with_status(400) from exc


def load_args(schema: ma.Schema) -> dict[str, Any]:
    """Parse the query string with ``schema``; 400 with field errors if it is wrong."""
    return load(schema, request.args.to_dict())


class PageArgs(ma.Schema):
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=1_000_000))
    per_page = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=MAX_PER_PAGE))

    class Meta:
        unknown = ma.EXCLUDE


def paginate(stmt: sa.Select[Any], schema: ma.Schema) -> Response:
    """One page of ``stmt`` as ``{"items", "page", "per_page", "total"}``."""
    args = load_args(PageArgs())
    session = db.session
    total = session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery()))
    rows = session.scalars(stmt.limit(args["per_page"]).offset((args["page"] - 1) * args["per_page"]))
    return jsonify({"items": schema.dump(rows.unique().all(), many=True), "page": args["page"],
                    "per_page": args["per_page"], "total": total})


def _request_hash() -> str:
    body = json_body()
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")) if body is not None else request.get_data(as_text=True)
    return hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()


def writes(view: Callable[..., tuple[Any, int]]) -> Callable[..., Response | tuple[Response, int]]:
    """Run a recording endpoint as one transaction, honouring ``Idempotency-Key``.

    The view returns ``(payload, status)`` and does not commit. On success the result (and,
    with a key, the answer to replay) is committed together; on a ``DomainError`` nothing is.
    The same key with the same body returns the first answer again; with another body, 409.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response | tuple[Response, int]:
        session = db.session
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 200:
            return error_response(400, "invalid", "Idempotency-Key is at most 200 characters.",
                                  {"Idempotency-Key": ["Too long."]})
        digest = _request_hash() if key else ""
        if key:
            replay = _replay(key, digest)
            if replay is not None:
                return replay
        try:
            payload, status = view(*args, **kwargs)
            if key:
                session.add(IdempotencyRecord(user_id=current_user().id, key=key, request_hash=digest,
                                              status_code=status, response=payload))
            session.commit()
        except DomainError:
            session.rollback()
            raise
        except IntegrityError:
            # A concurrent request with the same key won the race; answer as it did.
            session.rollback()
            replay = _replay(key, digest) if key else None
            if replay is not None:
                return replay
            raise
        return jsonify(payload), status

    return wrapper


def _replay(key: str, digest: str) -> tuple[Response, int] | None:
    record = db.session.scalar(sa.select(IdempotencyRecord).where(
        IdempotencyRecord.user_id == current_user().id, IdempotencyRecord.key == key))
    if record is None:
        return None
    if record.request_hash != digest:
        return error_response(409, "idempotency_key_reused",
                              "This Idempotency-Key was already used with a different request.",
                              {"Idempotency-Key": ["Already used with a different body."]})
    response = jsonify(record.response)
    response.headers["Idempotent-Replayed"] = "true"
    return response, record.status_code


def _domain_error(error: DomainError) -> tuple[Response, int] | DomainError:
    db.session.rollback()
    extra = {"details": error.details} if error.details else {}
    return error_response(error.status, error.code, error.message, error.fields, **extra)


def _http_error(error: HTTPException) -> Any:
    if not _is_api_request():
        if error.code is None or error.code < 400 or error.code == 401:
            return error
        page_error = DomainError(error.description or error.name, code=error.name.lower().replace(" ", "_"))
        return render_template("error.html", error=page_error.with_status(error.code)), error.code
    codes = {400: "malformed", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
             405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}
    return error_response(error.code or 500, codes.get(error.code or 500, "error"),
                          error.description or error.name)


def init_app(app: Flask) -> None:
    csrf.exempt(bp)
    app.before_request(_authenticate)

    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError) -> Any:
        if _is_api_request():
            return _domain_error(error)
        db.session.rollback()
        return render_template("error.html", error=error), error.status

    app.register_error_handler(HTTPException, _http_error)
