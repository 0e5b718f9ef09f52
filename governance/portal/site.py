"""The portal's admin site: who may enter, the navigation, and the portal's own pages.

Entry follows the ``use_portal`` capability (``governance.roles``), read through the same
``Principal`` the API builds, rather than the ``is_staff`` flag Django's admin checks (the role
services keep the two equal; the capability is the source). What each page shows is then
narrowed by the selectors, so a person limited to one team sees only that team's models.
"""
from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, reverse

from governance.access import Principal


class PortalLoginForm(AdminAuthenticationForm):
    """The admin's sign-in form, admitting people whose roles include ``use_portal``."""

    def confirm_login_allowed(self, user: Any) -> None:
        AuthenticationForm.confirm_login_allowed(self, user)  # active accounts only
        if not Principal(user=user).can("use_portal"):
            # Same words as a wrong password: the form does not tell who has an account.
            raise ValidationError(self.error_messages["invalid_login"], code="invalid_login",
                                  params={"username": self.username_field.verbose_name})


def portal_principal(request: HttpRequest) -> Principal:
    """The acting principal of a portal request: the session's user, as the API sees it."""
    principal = getattr(request, "_portal_principal", None)
    if principal is None:
        principal = Principal.from_request(request)
        request._portal_principal = principal  # type: ignore[attr-defined]
    return principal


def can_review_access(principal: Principal) -> bool:
    """The access review is for those who read the whole log (auditors) or manage roles."""
    return principal.can("view_audit_log") or principal.can("manage_roles")


class PortalSite(admin.AdminSite):
    site_header = "govaudit compliance portal"
    site_title = "govaudit"
    index_title = "Dashboard"
    site_url = None  # no public site to link back to
    login_form = PortalLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active) and portal_principal(request).can("use_portal")

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        context["portal_nav"] = self._nav(request) if context["has_permission"] else []
        return context

    def _nav(self, request: HttpRequest) -> list[dict[str, Any]]:
        principal = portal_principal(request)
        items = [("Dashboard", "admin:index", True),
                 ("Models", "admin:portal-models", True),
                 ("Promotions", "admin:portal-promotions", True),
                 ("Audit log", "admin:portal-audit", True),
                 ("Verification", "admin:portal-verifications", principal.can("view_audit_log")),
                 ("Policies", "admin:portal-policies", True),
                 ("Waivers", "admin:portal-waivers", True),
                 ("Audit packs", "admin:portal-packs",
                  principal.can("view_audit_log") and principal.team_scope is None),
                 ("Access review", "admin:portal-access", can_review_access(principal))]
        path = request.path
        nav = []
        for label, name, shown in items:
            if not shown:
                continue
            url = reverse(name)
            active = path == url if name == "admin:index" else path.startswith(url)
            nav.append({"label": label, "url": url, "active": active})
        return nav

    def get_urls(self) -> list[URLPattern]:
        from governance.portal.urls import portal_urls

        return portal_urls(self) + super().get_urls()

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        from governance.portal.views.dashboard import dashboard

        return dashboard(request)

    def password_change(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        from governance.portal.views.account import password_change

        return password_change(request)
