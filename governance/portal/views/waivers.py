"""Waivers: the list (active, expired, revoked), granting one and ending one early.

Grant and revoke call ``governance.promotions.waiver_grant`` / ``waiver_revoke``, the services
behind the API's waiver endpoints, after the same ``grant_waiver`` check as the API views.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from governance import promotions, selectors as gov_selectors
from governance.errors import DomainError, PermissionDenied
from governance.models import PromotionState, Waiver
from governance.portal import selectors
from governance.portal.views.base import page, portal_principal, portal_view
from registry import selectors as registry_selectors
from registry.selectors import model_list


class WaiverForm(forms.Form):
    model = forms.CharField(max_length=128, label="Model name")
    version = forms.IntegerField(min_value=1, label="Version number")
    gate = forms.CharField(max_length=200, label="Gate key",
                           help_text="Exactly as a decision shows it, e.g. validation_metric:accuracy>=0.85.")
    justification = forms.CharField(max_length=4000, widget=forms.Textarea(attrs={"rows": 4, "cols": 70}),
                                    help_text="At least 10 characters; auditors read it, and it goes into receipts.")
    expires_at = forms.DateTimeField(label="Expires at (UTC)", input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M",
                                                                               "%Y-%m-%d"],
                                     widget=forms.DateTimeInput(attrs={"type": "datetime-local"},
                                                                format="%Y-%m-%dT%H:%M"),
                                     help_text=f"At most {promotions.MAX_WAIVER_DAYS} days from now.")


def _status(waiver: Waiver, now: Any) -> str:
    if waiver.revoked_at is not None:
        return "revoked"
    return "expired" if waiver.expires_at <= now else "active"


def _list_page(request: HttpRequest, *, form: WaiverForm | None = None, error: str = "",
               status: int = 200) -> HttpResponse:
    principal = portal_principal(request)
    now = timezone.now()
    show = request.GET.get("show", "active")
    qs = Waiver.objects.filter(version__model__in=model_list(principal=principal)) \
        .select_related("version__model", "granted_by").order_by("-granted_at", "-id")
    if show == "active":
        qs = qs.filter(revoked_at__isnull=True, expires_at__gt=now)
    can_grant = principal.can("grant_waiver")
    # Gates that failed on recent blocked requests: what a compliance officer is asked to waive.
    candidates = []
    if can_grant:
        for req, failing in selectors.promotions_blocked(principal=principal, limit=10):
            for gate in failing:
                candidates.append({"req": req, "gate": gate})
    if form is None and can_grant:
        initial = {k: request.GET[k] for k in ("model", "version", "gate") if request.GET.get(k)}
        initial["expires_at"] = (now + timedelta(days=30)).replace(second=0, microsecond=0)
        form = WaiverForm(initial=initial)
    return page(request, "portal/waiver_list.html", {
        "rows": [{"waiver": w, "status": _status(w, now)} for w in qs[:200]], "show": show,
        "can_grant": can_grant, "form": form if can_grant else None, "error": error, "candidates": candidates,
        "blocked_state": PromotionState.BLOCKED,
    }, title="Waivers", status=status)


@portal_view("GET")
def waiver_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request)


@portal_view("POST")
def waiver_grant(request: HttpRequest) -> HttpResponse:
    principal = portal_principal(request)
    principal.require("grant_waiver", action="governance.waiver.granted")
    form = WaiverForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form=form, error="Check the fields below.", status=400)
    data = form.cleaned_data
    try:
        model = registry_selectors.model_get(principal=principal, name=data["model"])
        version = registry_selectors.version_get(principal=principal, model=model, number=data["version"])
        waiver = promotions.waiver_grant(actor=principal, version=version, gate=data["gate"].strip(),
                                         justification=data["justification"], expires_at=data["expires_at"])
    except PermissionDenied:
        raise
    except DomainError as exc:
        return _list_page(request, form=form, error=exc.message, status=exc.status_code)
    messages.success(request, f"Waiver #{waiver.pk} granted for {model.name} v{version.version}, gate "
                              f"{waiver.gate}, until {waiver.expires_at:%Y-%m-%d %H:%M} UTC. A new promotion request "
                              "is judged with it.")
    return redirect("admin:portal-waivers")


@portal_view("POST")
def waiver_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    principal = portal_principal(request)
    principal.require("grant_waiver", action="governance.waiver.revoked")
    waiver = gov_selectors.waiver_get(principal=principal, pk=pk)
    try:
        waiver = promotions.waiver_revoke(actor=principal, waiver=waiver)
    except PermissionDenied:
        raise
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("admin:portal-waivers")
    messages.success(request, f"Waiver #{waiver.pk} ({waiver.gate}) revoked.")
    return redirect("admin:portal-waivers")
