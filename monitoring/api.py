"""REST API for evidence (under /api/v1/): dataset intake and reports. Views parse, then call services.

Requesting a report needs the ``register_version`` capability (checked first, then visibility);
reading reports needs visibility of the version's model. Uploading or registering a dataset file
needs ``register_dataset``.
"""
from __future__ import annotations

from typing import Any

import django_filters
from django.http import HttpRequest
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.access import Principal
from governance.api.serializers import StrictSerializer
from governance.errors import ValidationFailed
from monitoring import selectors, services, storage
from monitoring.models import Report, ReportKind, ReportStatus
from registry import selectors as registry_selectors
from registry.api import DatasetOut, team_for_write
from registry.models import DataCategory, Dataset


def _principal(request: Request) -> Principal:
    return Principal.from_request(request)


# --- Serializers ---------------------------------------------------------------------------------

class DatasetUploadIn(serializers.Serializer):
    """Multipart form of an upload (documentation; the view reads the form itself to stream it)."""

    file = serializers.FileField(help_text="CSV (UTF-8, one header row) or Parquet.")
    name = serializers.CharField(max_length=128)
    team = serializers.SlugField(max_length=64, required=False)
    data_categories = serializers.CharField(required=False, help_text="Comma-separated, or the field repeated.")
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)


class DatasetFileIn(StrictSerializer):
    name = serializers.CharField(max_length=128)
    path = serializers.CharField(max_length=1024, help_text="Absolute, or relative to the import root.")
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$", error_messages={
        "invalid": "Must be the file's SHA-256 as 64 lowercase hexadecimal characters."})
    team = serializers.SlugField(max_length=64, required=False)
    data_categories = serializers.ListField(child=serializers.ChoiceField(choices=DataCategory.choices),
                                            required=False, max_length=10)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)


class ReportIn(StrictSerializer):
    kind = serializers.ChoiceField(choices=ReportKind.choices)
    datasets = serializers.DictField(help_text='{"reference": id, "current": id} for drift, '
                                               '{"evaluation": id} for bias and validation.')
    options = serializers.DictField(required=False)


class DatasetBrief(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = ["id", "name", "version", "sha256"]


class ReportOut(serializers.ModelSerializer):
    model = serializers.CharField(source="version.model.name")
    version = serializers.IntegerField(source="version.version")
    datasets = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = ["id", "model", "version", "kind", "status", "datasets", "options", "result", "error",
                  "inputs_digest", "result_digest", "library_versions", "requested_by", "attempts",
                  "created_at", "started_at", "finished_at", "links"]

    def get_datasets(self, obj: Report) -> dict[str, Any]:
        return {role: DatasetBrief(ds).data for role, ds in obj.datasets().items()}

    def get_error(self, obj: Report) -> dict[str, str] | None:
        return {"code": obj.error_code, "message": obj.error_message} if obj.error_code else None

    def get_links(self, obj: Report) -> dict[str, str]:
        name, number = obj.version.model.name, obj.version.version
        return {"self": reverse("monitoring:report-detail", kwargs={"pk": obj.pk}),
                "version": reverse("registry:version-detail", kwargs={"name": name, "number": number}),
                "reports": reverse("monitoring:report-list", kwargs={"name": name, "number": number})}


class ReportFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=ReportKind.choices)
    status = django_filters.ChoiceFilter(choices=ReportStatus.choices)

    class Meta:
        model = Report
        fields = ["kind", "status"]


# --- Datasets ------------------------------------------------------------------------------------

_UPLOAD_FIELDS = {"file", "name", "team", "data_categories", "description"}


def _categories(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


class DatasetUploadView(APIView):
    """Upload a CSV or Parquet file: streamed to storage with its SHA-256, checked, registered."""

    parser_classes = [MultiPartParser]

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        # Before anything reads the body (authentication, CSRF), so our handler is the only one.
        self.upload = storage.StreamingHashUploadHandler(request)
        request.upload_handlers = [self.upload]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(request={"multipart/form-data": DatasetUploadIn}, responses={201: DatasetOut})
    def post(self, request: Request) -> Response:
        principal = _principal(request)
        principal.require("register_dataset", action="registry.dataset.registered")
        try:
            form, files = request.data, request.FILES
            unknown = sorted(set(form) - _UPLOAD_FIELDS)
            if unknown:
                raise ValidationFailed(f"Form fields {unknown} are not accepted; accepted: {sorted(_UPLOAD_FIELDS)}.",
                                       code="invalid")
            if "file" not in files or len(self.upload.staged) != 1:
                raise ValidationFailed("Send the dataset as a multipart file field named 'file' "
                                       "(e.g. curl -F file=@data.csv -F name=my-data ...).", code="file_required")
            name = form.get("name") or ""
            if not name:
                raise ValidationFailed("'name' is required: the dataset's name (versions are numbered per name).",
                                       code="name_required")
            team = team_for_write(principal, form.get("team") or None)
            dataset = services.dataset_upload(actor=principal, team=team, name=name, staged=self.upload.staged[0],
                                              data_categories=_categories(form.getlist("data_categories")),
                                              description=form.get("description") or "")
        finally:
            self.upload.cleanup()
        return Response(DatasetOut(dataset).data, status=status.HTTP_201_CREATED)


class DatasetRegisterFileView(APIView):
    """Register a file already on the service's storage (under the import root), checking its digest."""

    @extend_schema(request=DatasetFileIn, responses={201: DatasetOut})
    def post(self, request: Request) -> Response:
        principal = _principal(request)
        principal.require("register_dataset", action="registry.dataset.registered")
        data = DatasetFileIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        team = team_for_write(principal, values.pop("team", None))
        dataset = services.dataset_register_file(actor=principal, team=team, **values)
        return Response(DatasetOut(dataset).data, status=status.HTTP_201_CREATED)


# --- Reports -------------------------------------------------------------------------------------

class ReportListView(generics.ListAPIView):
    """A version's reports (filter by ``kind``, ``status``); request a new one (202, computed by a worker)."""

    serializer_class = ReportOut
    queryset = Report.objects.none()
    filterset_class = ReportFilter
    ordering_fields = ["created_at", "finished_at"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return self.queryset
        principal = _principal(self.request)
        model = registry_selectors.model_get(principal=principal, name=self.kwargs["name"])
        version = registry_selectors.version_get(principal=principal, model=model, number=self.kwargs["number"])
        return selectors.report_list(principal=principal, version=version)

    @extend_schema(request=ReportIn, responses={202: ReportOut})
    def post(self, request: Request, name: str, number: int) -> Response:
        principal = _principal(request)
        principal.require("register_version", action=services.EVENTS["queued"])
        model = registry_selectors.model_get(principal=principal, name=name)
        version = registry_selectors.version_get(principal=principal, model=model, number=number)
        data = ReportIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        report = services.report_request(actor=principal, version=version, kind=values["kind"],
                                         datasets=values["datasets"], options=values.get("options") or {})
        return Response(ReportOut(report).data, status=status.HTTP_202_ACCEPTED)


class ReportDetailView(APIView):
    """One report: its status, and once final its result (or error) with digests."""

    @extend_schema(responses=ReportOut)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ReportOut(selectors.report_get(principal=_principal(request), pk=pk)).data)
