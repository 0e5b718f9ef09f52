from django.contrib import admin

from governance.admin_base import ReadOnlyAdmin
from registry.models import Dataset, ModelVersion, RegisteredModel, StageAssignment


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ReadOnlyAdmin):
    list_display = ["name", "team", "risk_tier", "archived", "updated_at"]
    list_filter = ["risk_tier", "archived", "team"]
    list_select_related = ["team"]
    search_fields = ["name"]


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["model", "version", "artifact_sha256", "framework", "created_at"]
    list_select_related = ["model"]
    search_fields = ["model__name", "artifact_sha256"]


@admin.register(Dataset)
class DatasetAdmin(ReadOnlyAdmin):
    list_display = ["name", "version", "team", "sha256", "rows", "created_at"]
    list_select_related = ["team"]
    search_fields = ["name", "sha256"]


@admin.register(StageAssignment)
class StageAssignmentAdmin(ReadOnlyAdmin):
    list_display = ["model", "version", "stage", "started_at", "ended_at"]
    list_filter = ["stage"]
    list_select_related = ["model", "version"]
