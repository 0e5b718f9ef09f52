"""Domain errors: raised by services, turned into clear JSON 4xx answers by the API's handler.

Each carries a stable ``code`` (for programs) and a ``message`` (for people, saying what to do).
"""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a service raises on purpose; never a 5xx."""

    status_code = 400
    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}


class ValidationFailed(DomainError):
    status_code = 400
    default_code = "invalid"


class NotFound(DomainError):
    """Also what a caller gets for an object that exists but is not theirs to see (no leak)."""

    status_code = 404
    default_code = "not_found"


class PermissionDenied(DomainError):
    status_code = 403
    default_code = "permission_denied"


class Conflict(DomainError):
    status_code = 409
    default_code = "conflict"
