"""The access review: who holds which role, in which team, with which tokens, used when. Read-only.

For those who read the whole audit log (auditors, compliance officers) or manage roles
(administrators). The one button here, resetting a lost authenticator, is shown to
administrators only and goes through ``otp_device_reset``.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance import selectors as gov_selectors
from governance.models import Team
from governance.portal.site import can_review_access
from governance.portal.views.base import page, portal_principal, portal_view
from governance.roles import ROLES

User = get_user_model()
# A token unused for this long is worth a question in a review.
STALE_TOKEN_AFTER = timedelta(days=90)


@portal_view("GET")
def access_review(request: HttpRequest) -> HttpResponse:
    principal = portal_principal(request)
    if not can_review_access(principal):
        principal.refuse("The access review is for auditors, compliance officers and administrators.",
                         code="permission_denied", action="governance.access.reviewed",
                         details={"capability": "view_audit_log"})
    now = timezone.now()
    required = set(settings.GOVAUDIT_OTP_REQUIRED_ROLES)
    enrolled = set(TOTPDevice.objects.filter(confirmed=True).values_list("user_id", flat=True))
    people: list[dict[str, Any]] = []
    for user in User.objects.prefetch_related("groups__role", "groups__team").order_by("username"):
        groups = list(user.groups.all())
        roles = sorted(g.name for g in groups if g.name in ROLES)
        teams = sorted(g.team.slug for g in groups if hasattr(g, "team"))
        people.append({"user": user, "roles": roles, "role_labels": [ROLES[r].label for r in roles], "teams": teams,
                       "portal": any("use_portal" in ROLES[r].capabilities for r in roles),
                       "otp_required": bool(required & set(roles)), "otp_enrolled": user.pk in enrolled,
                       "service_account": not user.has_usable_password()})
    by_team = []
    for team in Team.objects.order_by("slug"):
        members = [p for p in people if team.slug in p["teams"]]
        by_team.append({"team": team, "members": members})
    tokens = []
    for token in gov_selectors.token_list(principal=principal).order_by("user__username", "-created_at"):
        status = "revoked" if token.revoked_at else ("expired" if token.expires_at <= now else "active")
        stale = status == "active" and (token.last_used_at or token.created_at) < now - STALE_TOKEN_AFTER
        tokens.append({"token": token, "status": status, "stale": stale})
    return page(request, "portal/access_review.html", {
        "people": people, "by_team": by_team, "global_people": [p for p in people if not p["teams"]],
        "tokens": tokens, "required_roles": sorted(required), "generated_at": now,
        "can_reset_otp": principal.can("manage_roles"), "stale_days": STALE_TOKEN_AFTER.days,
    }, title="Access review")
