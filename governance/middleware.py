"""Request ids (taken from ``X-Request-ID`` when a caller sends a sane one, else generated); the CSP header."""
from __future__ import annotations

import functools
import re
import uuid
from typing import Callable

from csp import constants as csp_constants
from csp import middleware as csp_middleware
from csp import utils as csp_utils
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from audits.context import request_id_var

_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    """Puts the request id where audit appends and error bodies find it, and echoes it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.headers.get("X-Request-ID", "")
        request_id = supplied if _SANE.match(supplied) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class CSPMiddleware(csp_middleware.CSPMiddleware):
    """django-csp's middleware, the headers of the configured policy built once, not per response.

    django-csp rebuilds the policy string from the settings for every response (two ``asdict``
    and two ``build_policy`` calls), about 40 us of each API request, where nothing a response
    may vary on is used: a view that adjusts the policy (``csp_update`` and friends), a nonce a
    template asked for, or DEBUG's exemption of error pages. A response that uses any of these
    goes to django-csp unchanged; every other gets the same headers django-csp would build,
    kept until a policy setting changes (``setting_changed``, as in tests).
    """

    _PER_RESPONSE = ("_csp_config", "_csp_update", "_csp_replace", "_csp_config_ro", "_csp_update_ro",
                     "_csp_replace_ro")

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:  # type: ignore[override]
        if settings.DEBUG or getattr(request, "_csp_nonce", None) is not None \
                or any(getattr(response, name, None) is not None for name in self._PER_RESPONSE):
            return super().process_response(request, response)  # type: ignore[return-value]
        for header, exempt, excluded, value in _csp_headers():
            if value and header not in response and not getattr(response, exempt, False) \
                    and not request.path_info.startswith(excluded):
                response[header] = value
        # As django-csp does: a nonce asked for after the header is written is an error, not a silent gap.
        request.csp_nonce = csp_middleware.CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response


_CSP_SETTINGS = ("CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY", "DEBUG")


@functools.cache
def _csp_headers() -> tuple[tuple[str, str, tuple[str, ...], str], ...]:
    """(header, exemption attribute, excluded path prefixes, value) of both policies, built by django-csp."""
    headers = []
    for header, setting, exempt, report_only in ((csp_constants.HEADER, "CONTENT_SECURITY_POLICY", "_csp_exempt", False),
                                                 (csp_constants.HEADER_REPORT_ONLY,
                                                  "CONTENT_SECURITY_POLICY_REPORT_ONLY", "_csp_exempt_ro", True)):
        policy = getattr(settings, setting, None) or {}
        headers.append((header, exempt, tuple(policy.get("EXCLUDE_URL_PREFIXES", None) or ()),
                        csp_utils.build_policy(report_only=report_only)))
    return tuple(headers)


@receiver(setting_changed)
def _csp_settings_changed(setting: str, **kwargs: object) -> None:
    if setting in _CSP_SETTINGS:
        _csp_headers.cache_clear()
