"""Portal pages for packs, schedules, exports and alerts.

Everything is read-only (``ReadOnlyAdmin``) except export schedules, which compliance officers
edit here as the issue asks; even then the admin only collects the form and calls the schedule
services, which check the capability, keep django-celery-beat in step and audit the change.
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from audits.packs import schedules, services
from audits.packs.models import Alert, AuditPack, PackExport, PackSchedule
from governance.access import Principal
from governance.admin_base import ReadOnlyAdmin
from governance.errors import DomainError


@admin.register(AuditPack)
class AuditPackAdmin(ReadOnlyAdmin):
    view_capability = services.PACK_CAPABILITY
    list_display = ["id", "framework", "period_start", "period_end", "status", "progress", "created_at", "sha256"]
    list_filter = ["framework", "status"]


@admin.register(PackExport)
class PackExportAdmin(ReadOnlyAdmin):
    view_capability = services.PACK_CAPABILITY
    list_display = ["name", "destination", "schedule", "exported_at", "expires_at", "deleted_at"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    view_capability = services.PACK_CAPABILITY
    list_display = ["title", "kind", "severity", "status", "created_at", "resolved_at"]
    list_filter = ["status", "kind"]


class PackScheduleForm(forms.ModelForm):
    model_names = forms.CharField(required=False, label="Models",
                                  help_text="Comma-separated model names; empty: every model the framework applies to.")
    retention_days = forms.IntegerField(required=False, min_value=1,
                                        help_text="Days to keep each export; empty: GOVAUDIT_PACK_RETENTION_DAYS "
                                                  "(six years). HIPAA: at least 2192.")

    class Meta:
        model = PackSchedule
        fields = ["name", "framework", "model_names", "cron", "period_days", "destination", "s3_endpoint_url",
                  "s3_region", "retention_days", "enabled"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["model_names"] = ", ".join(self.instance.model_names or [])

    def clean_model_names(self) -> list[str]:
        return [n.strip() for n in (self.cleaned_data.get("model_names") or "").split(",") if n.strip()]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        try:
            self.service_fields = schedules.clean_fields({k: data.get(k) for k in schedules.EDITABLE})
        except DomainError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from exc
        return data


@admin.register(PackSchedule)
class PackScheduleAdmin(ReadOnlyAdmin):
    """Compliance officers add, change and delete schedules; auditors and others may only look."""

    view_capability = services.PACK_CAPABILITY
    form = PackScheduleForm
    list_display = ["name", "framework", "cron", "destination", "retention_days", "enabled", "last_run_at",
                    "last_status"]
    readonly_fields = ["periodic_task", "created_by", "created_at", "updated_at", "last_run_at", "last_status"]

    def _may_edit(self, request: Any) -> bool:
        principal = Principal.from_request(request)
        return principal.can("use_portal") and principal.can(services.SCHEDULE_CAPABILITY)

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return self._may_edit(request)

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return self._may_edit(request)

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return self._may_edit(request)

    def save_model(self, request: Any, obj: PackSchedule, form: Any, change: bool) -> None:
        actor = Principal.from_request(request)
        fields = form.service_fields
        if change:
            saved = schedules.pack_schedule_update(actor=actor, schedule=PackSchedule.objects.get(pk=obj.pk),
                                                   changes=fields)
        else:
            saved = schedules.pack_schedule_create(actor=actor, **fields)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: Any, obj: PackSchedule) -> None:
        schedules.pack_schedule_delete(actor=Principal.from_request(request), schedule=obj)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        for obj in queryset:
            self.delete_model(request, obj)
