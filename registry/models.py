"""Registry models.

Immutability is enforced where it matters: a version's artifact, digest and lineage are never
written after registration (services refuse it, the admin shows them read-only, the API rejects
them on PATCH), and stages move only through ``registry.services.stage_move``.
"""
from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from governance.models import Team

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
name_validator = RegexValidator(
    NAME_RE, "Use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit.", code="invalid_name")
sha256_validator = RegexValidator(
    r"^[0-9a-f]{64}$", "A SHA-256 digest is exactly 64 lowercase hexadecimal characters.", code="invalid_digest")


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class DataCategory(models.TextChoices):
    """What kinds of data a model or dataset touches; decides which frameworks apply."""

    PHI = "phi", "Protected health information (HIPAA)"
    PERSONAL = "personal", "Personal data (GDPR)"
    SPECIAL = "special_category", "Special-category data (GDPR Art. 9)"


class Stage(models.TextChoices):
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"
    ARCHIVED = "archived", "Archived"


SINGLE_HOLDER_STAGES = (Stage.STAGING, Stage.PRODUCTION)


class RegisteredModel(models.Model):
    """A model under governance, owned by a team. Models with versions are archived, not deleted."""

    name = models.CharField(max_length=128, unique=True, validators=[name_validator])
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="models")
    description = models.TextField(blank=True, max_length=10_000)
    risk_tier = models.CharField(max_length=16, choices=RiskTier.choices, default=RiskTier.MEDIUM)
    intended_use = models.TextField(blank=True, max_length=10_000)
    data_categories = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    archived = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        default_permissions = ("view", "change")

    def __str__(self) -> str:
        return self.name


class Dataset(models.Model):
    """A dataset by digest. Versions are numbered per name by the server."""

    name = models.CharField(max_length=128, validators=[name_validator])
    version = models.PositiveIntegerField()
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="datasets")
    sha256 = models.CharField(max_length=64, validators=[sha256_validator])
    storage_uri = models.CharField(max_length=1024)
    schema = models.JSONField(default=dict, blank=True)
    rows = models.BigIntegerField(null=True, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    data_categories = models.JSONField(default=list, blank=True)
    description = models.TextField(blank=True, max_length=10_000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-version"]
        default_permissions = ("view",)
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="dataset_name_version_unique"),
            models.UniqueConstraint(fields=["team", "sha256"], name="dataset_team_digest_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class ModelVersion(models.Model):
    """One registered artifact of a model. Artifact, digest and lineage never change."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    artifact_uri = models.CharField(max_length=1024)
    artifact_sha256 = models.CharField(max_length=64, validators=[sha256_validator])
    artifact_size = models.BigIntegerField(null=True, blank=True)
    framework = models.CharField(max_length=64, blank=True)
    code_ref = models.CharField(max_length=256, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    training_datasets = models.ManyToManyField(Dataset, blank=True, related_name="+")
    evaluation_datasets = models.ManyToManyField(Dataset, blank=True, related_name="+")
    pipeline_run_id = models.CharField(max_length=256, blank=True)
    description = models.TextField(blank=True, max_length=10_000)
    tags = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model__name", "-version"]
        default_permissions = ("view",)
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="version_number_unique"),
            models.UniqueConstraint(fields=["model", "artifact_sha256"], name="version_digest_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"


class StageAssignment(models.Model):
    """A version holding a stage over an interval; ``ended_at`` is null while it still holds it.

    The partial unique constraints are the last line of defence against two versions in one
    stage: even a service bug or a concurrent writer cannot commit that state.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="stage_history")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="stage_history")
    stage = models.CharField(max_length=16, choices=Stage.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    started_by = models.JSONField(default=dict, help_text="Actor snapshot, as in the audit log.")
    reason = models.TextField(blank=True, max_length=2000)

    class Meta:
        ordering = ["-started_at", "-id"]
        default_permissions = ("view",)
        constraints = [
            models.UniqueConstraint(
                fields=["model", "stage"], condition=Q(ended_at__isnull=True) & Q(stage__in=["staging", "production"]),
                name="one_current_holder_per_stage"),
            models.UniqueConstraint(
                fields=["version"], condition=Q(ended_at__isnull=True), name="one_current_stage_per_version"),
        ]
        # stage_current_lookup serves reads of a model's current stints (any stage). The stage
        # move's own read of "who holds this stage now" names its stage as a literal
        # (registry.services._current_stints), so its generic plan uses the partial unique index
        # above instead: the unique check on every new stint keeps that one free of ended stints,
        # while this one keeps them until a vacuum (docs/benchmarks/promotions.md).
        indexes = [models.Index(fields=["model", "stage", "started_at"], name="stage_history_lookup"),
                   models.Index(fields=["model", "stage"], condition=Q(ended_at__isnull=True),
                                name="stage_current_lookup")]

    def __str__(self) -> str:
        return f"{self.version} in {self.stage}"


# Direct foreign-key object permissions: django-guardian joins these on the primary key, instead of
# comparing a text object_pk against every row of its generic table (measured: the generic table
# turned a team member's model lookup into sequential scans as models grew).
class RegisteredModelGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE)


class RegisteredModelUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE)


class DatasetGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Dataset, on_delete=models.CASCADE)


class DatasetUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Dataset, on_delete=models.CASCADE)
