"""Promotions: the list, one request's evidence on one page, and approve / reject with a comment.

Approve and reject call ``governance.promotions.promotion_approve`` / ``promotion_reject``, the
services behind ``POST /api/v1/promotions/{id}/approve/`` and ``.../reject/``, after the same
capability check as the API view; separation of duties is therefore decided where it is for the
API, and a refusal is recorded in the audit log the same way.
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from governance import promotions, selectors as gov_selectors
from governance.errors import DomainError, PermissionDenied
from governance.models import PromotionState
from governance.portal import charts, selectors
from governance.portal.views.base import page, portal_principal, portal_view
from monitoring.models import Report, ReportKind, ReportStatus

PAGE_SIZE = 50


class DecisionForm(forms.Form):
    comment = forms.CharField(max_length=4000, required=False, strip=True,
                              widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
                              help_text="Required to reject; recorded in the audit log and the signed receipt.")


@portal_view("GET")
def promotion_list(request: HttpRequest) -> HttpResponse:
    principal = portal_principal(request)
    state = request.GET.get("state", "")
    qs = gov_selectors.promotion_list(principal=principal).order_by("-id")  # newest first; pages continue by id
    if state in PromotionState.values:
        qs = qs.filter(state=state)
    before = request.GET.get("before", "")
    if before.isdigit():
        qs = qs.filter(pk__lt=int(before))
    rows = list(qs[:PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return page(request, "portal/promotion_list.html", {
        "rows": [(req, selectors.failing_gates(req)) for req in rows], "states": PromotionState.choices,
        "state": state, "older": rows[-1].pk if more and rows else None,
    }, title="Promotions")


def _report_view(report: Report) -> dict[str, Any]:
    """A report with its charts, drawn from its stored result."""
    result = report.result if report.status == ReportStatus.SUCCEEDED and isinstance(report.result, dict) else None
    chart_list = []
    if result is not None:
        if report.kind == ReportKind.DRIFT:
            chart_list = [c for c in [charts.drift_chart(result)] if c]
        elif report.kind == ReportKind.BIAS:
            chart_list = charts.bias_charts(result)
        elif report.kind == ReportKind.VALIDATION:
            chart_list = [c for c in [charts.validation_chart(result)] if c]
    confusion = []
    matrix = (result or {}).get("confusion_matrix") or {}
    if report.kind == ReportKind.VALIDATION and matrix.get("labels") and matrix.get("matrix"):
        confusion = list(zip(matrix["labels"], matrix["matrix"]))
    return {"report": report, "result": result, "charts": chart_list, "confusion": confusion,
            "labels": matrix.get("labels", [])}


def _evidence_page(request: HttpRequest, pk: int, *, form: DecisionForm | None = None, error: str = "",
                   status: int = 200) -> HttpResponse:
    principal = portal_principal(request)
    req = gov_selectors.promotion_get(principal=principal, pk=pk)  # 404 for another team's model
    evidence = selectors.promotion_evidence(principal=principal, req=req)
    return page(request, "portal/promotion_detail.html", {
        "req": req, "ev": evidence,
        "reports": [_report_view(r) | {"used_by": evidence.used_reports.get(r.pk, [])} for r in evidence.reports],
        "options": selectors.decision_options(principal=principal, req=req),
        "form": form or DecisionForm(), "error": error,
    }, title=f"Promotion #{req.pk}: {req.model.name} v{req.version.version} to {req.target_stage}", status=status)


@portal_view("GET")
def promotion_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _evidence_page(request, pk)


def _decide(request: HttpRequest, pk: int, *, approve: bool) -> HttpResponse:
    principal = portal_principal(request)
    action = "governance.promotion.approved" if approve else "governance.promotion.rejected"
    principal.require("approve_promotion", action=action)  # as the API view does, before any lookup
    req = gov_selectors.promotion_get(principal=principal, pk=pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _evidence_page(request, pk, form=form, error="Check the comment.", status=400)
    comment = form.cleaned_data["comment"]
    try:
        if approve:
            req = promotions.promotion_approve(actor=principal, request=req, comment=comment)
        else:
            req = promotions.promotion_reject(actor=principal, request=req, comment=comment)
    except PermissionDenied:
        raise  # separation of duties: the error page, 403 (already recorded)
    except DomainError as exc:
        return _evidence_page(request, pk, form=form, error=exc.message, status=exc.status_code)
    verb = "approved" if approve else "rejected"
    messages.success(request, f"You {verb} promotion #{req.pk}; it is now {req.get_state_display().lower()}.")
    return redirect("admin:portal-promotion", pk=req.pk)


@portal_view("POST")
def promotion_approve(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, approve=True)


@portal_view("POST")
def promotion_reject(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, approve=False)
