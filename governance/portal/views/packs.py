"""Audit packs: generate one, follow it, download it, verify an uploaded one; export schedules; alerts.

Everything calls ``audits.packs`` (issue #6): ``pack_request`` / ``pack_download`` and the
selectors, which hold packs to ``view_audit_log`` as the API does; an uploaded pack is checked
with ``audits.pack_verifier.verify_pack`` against this service's log keys and certificates, as
``POST /api/v1/audit-packs/verify/`` does. Export schedules are edited in the admin's form for
them (``audits/packs/admin.py``), which calls the schedule services; this page lists them.
Resolving an alert calls ``alert_resolve``.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone as dt_timezone
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from audits.packs import selectors as pack_selectors, services as pack_services
from audits.packs.models import Alert, PackFramework, PackStatus
from governance.errors import DomainError, NotFound, PermissionDenied
from governance.portal import schedules
from governance.portal.views.base import page, portal_principal, portal_view


class PackForm(forms.Form):
    framework = forms.ChoiceField(choices=PackFramework.choices)
    period_start = forms.DateField(label="From (UTC day)", widget=forms.DateInput(attrs={"type": "date"}))
    period_end = forms.DateField(label="To (UTC day, inclusive)", required=False,
                                 widget=forms.DateInput(attrs={"type": "date"}), help_text="Empty: up to now.")
    models = forms.CharField(required=False, max_length=5000, label="Models",
                             help_text="Comma-separated names; empty: every model the framework applies to.")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start = data.get("period_start")
        end = data.get("period_end")
        if start is not None:
            data["start"] = datetime.combine(start, time.min, tzinfo=dt_timezone.utc)
            data["end"] = (min(datetime.combine(end + timedelta(days=1), time.min, tzinfo=dt_timezone.utc),
                               timezone.now()) if end else None)
        data["model_list"] = [n.strip() for n in (data.get("models") or "").split(",") if n.strip()]
        return data


class VerifyForm(forms.Form):
    file = forms.FileField(label="Audit pack (zip)")


def _list_page(request: HttpRequest, *, form: PackForm | None = None, error: str = "",
               status: int = 200) -> HttpResponse:
    principal = portal_principal(request)
    packs = list(pack_selectors.pack_list(principal=principal).order_by("-created_at", "-id")[:50])
    today = timezone.now().date()
    return page(request, "portal/pack_list.html", {
        "packs": packs, "form": form or PackForm(initial={"framework": PackFramework.SOC2,
                                                          "period_start": today - timedelta(days=30)}),
        "error": error, "schedules": schedules.pack_schedules(),
        "can_edit_schedules": principal.can(pack_services.SCHEDULE_CAPABILITY),
    }, title="Audit packs", status=status)


@portal_view("GET", "POST")
def pack_list(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _list_page(request)
    principal = portal_principal(request)
    pack_services.require_pack_reader(principal, action="audits.pack.requested")
    form = PackForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form=form, error="Check the fields below.", status=400)
    data = form.cleaned_data
    try:
        pack = pack_services.pack_request(actor=principal, framework=data["framework"], period_start=data["start"],
                                          period_end=data["end"], models=data["model_list"])
    except PermissionDenied:
        raise
    except DomainError as exc:
        return _list_page(request, form=form, error=exc.message, status=exc.status_code)
    messages.success(request, f"Pack #{pack.pk} requested; it is generated in the background.")
    return redirect("admin:portal-pack", pk=pack.pk)


@portal_view("GET")
def pack_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pack = pack_selectors.pack_get(principal=portal_principal(request), pk=pk)
    return page(request, "portal/pack_detail.html", {
        "pack": pack, "working": pack.status in (PackStatus.QUEUED, PackStatus.RUNNING),
        "controls": sorted((pack.summary or {}).items()),
    }, title=f"Audit pack #{pack.pk}")


@portal_view("GET")
def pack_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The zip; the service records every download in the audit log."""
    principal = portal_principal(request)
    pack = pack_selectors.pack_get(principal=principal, pk=pk, action="audits.pack.downloaded")
    path = pack_services.pack_download(actor=principal, pack=pack)
    response = FileResponse(path.open("rb"), as_attachment=True, filename=pack.file_name,
                            content_type="application/zip")
    response["X-Content-SHA256"] = pack.sha256
    return response


@portal_view("GET", "POST")
def pack_verify(request: HttpRequest) -> HttpResponse:
    principal = portal_principal(request)
    pack_services.require_pack_reader(principal, action="audits.pack.verified")
    form = VerifyForm(request.POST or None, request.FILES or None)
    report = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > settings.GOVAUDIT_PACK_MAX_UPLOAD_BYTES:
                form.add_error("file", f"The pack is larger than {settings.GOVAUDIT_PACK_MAX_UPLOAD_BYTES} bytes; "
                                       "verify it with the standalone verifier (audits/pack_verifier.py) instead.")
                status = 413
            else:
                from audits.keys import trusted_keys
                from audits.pack_verifier import verify_pack
                from audits.packs.signing import trusted_certificates

                report = verify_pack(upload.file, log_keys=[k.verifier.encode() for k in trusted_keys()],
                                     pdf_certs=trusted_certificates())
                status = 200 if report.ok else 422
        else:
            status = 400
    return page(request, "portal/pack_verify.html", {"form": form, "report": report,
                                                     "facts": sorted(report.facts.items()) if report else []},
                title="Verify an audit pack", status=status)


class ResolveForm(forms.Form):
    note = forms.CharField(required=False, max_length=2000, widget=forms.TextInput(attrs={"size": 50}),
                           help_text="What was done (recorded with the alert).")


@portal_view("POST")
def alert_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    principal = portal_principal(request)
    principal.require(pack_services.SCHEDULE_CAPABILITY, action="audits.alert.resolved")
    alert = Alert.objects.filter(pk=pk).first()
    if alert is None:
        raise NotFound(f"No alert {pk}.", code="alert_not_found")
    form = ResolveForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        pack_services.alert_resolve(actor=principal, alert=alert, note=note)
    except PermissionDenied:
        raise
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Alert “{alert.title}” resolved.")
    return redirect("admin:index")

