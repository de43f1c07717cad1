"""Domain errors: a stable code, a message a person can act on, and per-field details.

Services raise these; the API turns them into the JSON error shape of API.md and the pages
into a flashed message. Nothing is posted when one is raised: the caller rolls back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class DomainError(Exception):
    status = 422
    code = "refused"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields = fields or {}
        self.details = details or {}

    def with_status(self, status: int) -> DomainError:
        """The same error answered with another HTTP status (e.g. 400 for malformed input)."""
        self.status = status
        return self


class InvalidInput(DomainError):
    status = 400
    code = "invalid"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class InsufficientStock(DomainError):
    code = "insufficient_stock"


class LotExpired(DomainError):
    code = "lot_expired"


class LotNotUsable(DomainError):
    code = "lot_not_usable"


def field_error(field: str, message: str, cls: type[InvalidInput] = InvalidInput) -> InvalidInput:
    """An error about one field of the input, its message shown beside that field."""
    return cls(message, fields={field: [message]})


def check_choice(field: str, value: str, allowed: Iterable[str]) -> str:
    allowed = [str(a) for a in allowed]
    if value not in allowed:
        raise field_error(field, f"{field} must be one of {', '.join(allowed)}; got {value!r}.")
    return value


def check_positive(field: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise field_error(field, f"{field} must be a whole number above zero; got {value!r}.")
    return value


def required_text(field: str, value: str | None) -> str:
    if value is None or not value.strip():
        raise field_error(field, f"{field} is required.")
    return value.strip()
