"""What every portal page shares: the admin's context, and domain errors shown as pages.

A service's refusal keeps its status: 403 for a capability the person lacks (already recorded
in the audit log by ``Principal.require``), 404 for an object they cannot see, 409 for a state
that does not allow the action, 400 for bad input; the page says what to do, in the admin's look.
"""
from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from governance.errors import DomainError
from governance.portal.site import portal_principal

View = Callable[..., HttpResponse]

__all__ = ["page", "error_page", "portal_view", "portal_principal"]


def page(request: HttpRequest, template: str, context: dict[str, Any], *, title: str,
         status: int = 200) -> HttpResponse:
    return TemplateResponse(request, template, {**admin.site.each_context(request), "title": title, **context},
                            status=status)


ERROR_TITLES = {400: "Not done", 403: "Not allowed", 404: "Not found", 409: "Not possible now"}


def error_page(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return page(request, "portal/error.html", {"message": exc.message, "code": exc.code},
                title=ERROR_TITLES.get(exc.status_code, "Not done"), status=exc.status_code)


def portal_view(*methods: str) -> Callable[[View], View]:
    """Limit a view to ``methods`` (405 otherwise) and turn domain errors into pages."""
    allowed = list(methods or ("GET",))

    def decorate(view: View) -> View:
        @require_http_methods(allowed)
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except DomainError as exc:
                return error_page(request, exc)

        return wrapped

    return decorate
