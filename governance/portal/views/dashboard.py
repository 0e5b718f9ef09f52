"""The dashboard: where models stand, what waits for this person, what went wrong, the log's health."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from governance.portal import schedules, selectors
from governance.portal.views.base import page, portal_principal, portal_view


@portal_view("GET")
def dashboard(request: HttpRequest) -> HttpResponse:
    principal = portal_principal(request)
    state = selectors.log_state()
    return page(request, "portal/dashboard.html", {
        "matrix": selectors.models_by_stage_and_tier(principal=principal),
        "stage_columns": selectors.STAGE_COLUMNS,
        "awaiting": selectors.promotions_awaiting(principal=principal),
        "can_approve": principal.can("approve_promotion"),
        "blocked": selectors.promotions_blocked(principal=principal),
        "alerts": selectors.open_alerts(principal=principal, state=state),
        "log": state,
        "scheduled": schedules.upcoming_exports(),
        "can_see_packs": principal.can("view_audit_log"),
        "can_resolve": principal.can("manage_policies"),
    }, title="Dashboard")
