"""Evidence models: a report is one drift, bias or validation computation for a model version.

A report row is saved (queued) before any work is enqueued, so a worker always finds it by id;
its status only moves forward (queued -> running -> succeeded | failed), and once final nothing
about it changes: ``monitoring.services`` refuses, and the task returns early. The digests make
the evidence checkable later: ``inputs_digest`` fixes what was computed on (artifact, datasets,
options, kind) and ``result_digest`` what came out (canonical JSON, RFC 8785).
"""
from __future__ import annotations

from django.db import models
from django.utils import timezone

from registry.models import Dataset, ModelVersion


class ReportKind(models.TextChoices):
    VALIDATION = "validation", "Validation"
    BIAS = "bias", "Bias"
    DRIFT = "drift", "Drift"


class ReportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


FINAL_STATUSES = (ReportStatus.SUCCEEDED, ReportStatus.FAILED)


class Report(models.Model):
    """One evidence computation. Immutable once ``status`` is succeeded or failed."""

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="reports")
    kind = models.CharField(max_length=16, choices=ReportKind.choices)
    status = models.CharField(max_length=16, choices=ReportStatus.choices, default=ReportStatus.QUEUED)
    # Drift compares ``current`` with ``reference``; bias and validation read ``evaluation``.
    reference = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    current = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    evaluation = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    options = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    inputs_digest = models.CharField(max_length=64)
    result_digest = models.CharField(max_length=64, blank=True)
    library_versions = models.JSONField(default=dict, blank=True)
    requested_by = models.JSONField(default=dict, help_text="Actor snapshot, as in the audit log.")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        default_permissions = ("view",)
        indexes = [
            models.Index(fields=["version", "kind", "status"], name="report_version_kind_status"),
            # The reaper's query: running reports by start time.
            models.Index(fields=["status", "started_at"], name="report_status_started"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} report {self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def datasets(self) -> dict[str, Dataset]:
        """The datasets by role, only the roles this report uses."""
        roles = {"reference": self.reference, "current": self.current, "evaluation": self.evaluation}
        return {role: ds for role, ds in roles.items() if ds is not None}
