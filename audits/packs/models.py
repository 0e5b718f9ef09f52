"""Audit packs, their export schedules, the exports a schedule wrote, and alerts for people.

These are part of the ``audits`` app (``audits/models.py`` imports them), so their migrations
live in ``audits/migrations``. A pack row is saved (queued) before its task is enqueued and its
status only moves forward, like a report's. An export row remembers every file a schedule wrote,
so retention deletes only files the service itself wrote, and never before they expire.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class PackFramework(models.TextChoices):
    HIPAA = "hipaa", "HIPAA Security Rule"
    GDPR = "gdpr", "GDPR"
    SOC2 = "soc2", "SOC 2 (Trust Services Criteria)"


class PackStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


PACK_FINAL_STATUSES = (PackStatus.SUCCEEDED, PackStatus.FAILED)


class AuditPack(models.Model):
    """One generated (or generating) pack: a framework, a period and a set of models."""

    framework = models.CharField(max_length=16, choices=PackFramework.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    model_names = models.JSONField(default=list, blank=True,
                              help_text="Model names asked for; empty means every model the framework applies to.")
    scope = models.JSONField(default=list, blank=True, help_text="The model names the pack covers (set when built).")
    status = models.CharField(max_length=16, choices=PackStatus.choices, default=PackStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done while running.")
    stage = models.CharField(max_length=80, blank=True, help_text="What the generator is doing now.")
    requested_by = models.JSONField(default=dict, help_text="Actor snapshot, as in the audit log.")
    requested_by_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                          on_delete=models.PROTECT, related_name="+")
    schedule = models.ForeignKey("audits.PackSchedule", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="packs")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    file_name = models.CharField(max_length=200, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the zip.")
    manifest_sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of manifest.json.")
    checkpoint_size = models.BigIntegerField(null=True, blank=True)
    checkpoint_root = models.CharField(max_length=64, blank=True, help_text="Hex root of the anchoring checkpoint.")
    event_count = models.BigIntegerField(null=True, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True)
    summary = models.JSONField(default=dict, blank=True, help_text="Control counts once built.")
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.get_framework_display()} pack {self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in PACK_FINAL_STATUSES


class PackSchedule(models.Model):
    """A recurring export: which pack, when (cron, UTC), where to, and how long to keep it.

    The service keeps a django-celery-beat ``PeriodicTask`` in step with each schedule; beat then
    starts ``audits.packs.run_schedule`` with the schedule's id. Credentials for S3-compatible
    destinations come from the environment, never from this row.
    """

    name = models.CharField(max_length=100, unique=True)
    framework = models.CharField(max_length=16, choices=PackFramework.choices)
    model_names = models.JSONField(default=list, blank=True,
                              help_text="Model names; empty means every model the framework applies to.")
    cron = models.CharField(max_length=120, help_text="Five cron fields in UTC: minute hour day-of-month month "
                                                      "day-of-week, e.g. '0 3 1 * *' (03:00 on the 1st).")
    period_days = models.PositiveIntegerField(default=30, help_text="Each run covers the days up to the run.")
    destination = models.CharField(max_length=1024, help_text="A folder under GOVAUDIT_PACK_EXPORT_ROOT "
                                                              "(relative path), or s3://bucket/prefix.")
    s3_endpoint_url = models.CharField(max_length=300, blank=True,
                                       help_text="For S3-compatible storage other than AWS (e.g. MinIO).")
    s3_region = models.CharField(max_length=40, blank=True)
    retention_days = models.PositiveIntegerField(help_text="Exports are kept at least this long; HIPAA needs six "
                                                           "years (2192 days) or more.")
    enabled = models.BooleanField(default=True)
    periodic_task = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+")
    created_by = models.JSONField(default=dict, help_text="Actor snapshot, as in the audit log.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["name"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return self.name


class PackExport(models.Model):
    """One file a schedule wrote to its destination; deleted only after ``expires_at``."""

    schedule = models.ForeignKey(PackSchedule, null=True, on_delete=models.SET_NULL, related_name="exports")
    pack = models.ForeignKey(AuditPack, on_delete=models.PROTECT, related_name="exports")
    destination = models.CharField(max_length=1024)
    s3_endpoint_url = models.CharField(max_length=300, blank=True)
    s3_region = models.CharField(max_length=40, blank=True)
    name = models.CharField(max_length=400, help_text="The file's name inside the destination.")
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    exported_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-exported_at", "-id"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.destination}/{self.name}"


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    """Something a person must look at (a failed scheduled export, ...); open until resolved."""

    kind = models.CharField(max_length=80, help_text="Stable dotted name, e.g. 'audits.pack_schedule.failed'.")
    severity = models.CharField(max_length=16, choices=[("warning", "Warning"), ("error", "Error")],
                                default="error")
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    title = models.CharField(max_length=200)
    message = models.TextField()
    source_type = models.CharField(max_length=60, blank=True)
    source_id = models.CharField(max_length=120, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        default_permissions = ("view",)
        indexes = [models.Index(fields=["status", "created_at"], name="alert_status_created")]

    def __str__(self) -> str:
        return f"{self.title} ({self.status})"
