"""The one exception handler: every error is JSON ``{"error": {code, message, details, request_id}}``.

Domain errors keep their status and message; DRF's own errors are reshaped; anything unexpected
becomes a 500 with the request id to quote, never a stack trace.
"""
from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from audits.context import request_id_var
from governance.errors import DomainError

log = logging.getLogger("governance.api")


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        out: list[str] = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            out += _flatten(value, f"{prefix}{name}: " if name else prefix)
        return out
    if isinstance(detail, list):
        return [m for item in detail for m in _flatten(item, prefix)]
    return [f"{prefix}{detail}"]


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {},
                      "request_id": request_id_var.get()}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("too_large", "The request body is larger than this endpoint accepts; "
                                   "send less data (large files go to the upload endpoints)."), status=413)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Nothing here that you can see."), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.ValidationError):
        messages = _flatten(exc.detail)
        return Response(error_body("invalid", "; ".join(messages) or "Invalid input.", exc.detail), status=400)
    if isinstance(exc, drf_exceptions.APIException):
        headers = {}
        if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        message = exc.detail if isinstance(exc.detail, str) else "; ".join(_flatten(exc.detail))
        return Response(error_body(code, str(message)), status=exc.status_code, headers=headers)
    log.exception("unhandled error in API view", extra={"request_id": request_id_var.get()})
    return Response(error_body("internal_error", "Something failed on our side; quote the request id "
                               "when you report it."), status=500)


def json_not_found(request: Any, exception: Exception | None = None) -> JsonResponse:
    """404 for unknown URLs: JSON under /api/, so clients never get an HTML page."""
    return JsonResponse(error_body("not_found", f"No endpoint at {request.path}; see /api/docs/."), status=404)


def json_server_error(request: Any) -> JsonResponse:
    return JsonResponse(error_body("internal_error", "Something failed on our side; quote the request id "
                                   "when you report it."), status=500)
