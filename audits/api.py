"""Audit log API: public keys and checkpoint without login; events, proofs, export, verify by role."""
from __future__ import annotations

from typing import Any

import django_filters
from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audits import selectors
from audits.checkpoints import latest_checkpoint, tree_size
from audits.keys import trusted_keys
from audits.models import AuditEvent
from audits.services import Target, audit_append
from audits.verification import verification_run
from governance.access import Principal
from governance.api.serializers import StrictSerializer
from governance.errors import NotFound, ValidationFailed


def _int_param(request: Request, name: str, default: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise ValidationFailed(f"The query parameter '{name}' is required.", code=f"missing_{name}")
        return default
    if not raw.isdigit() or len(raw) > 18:
        raise ValidationFailed(f"'{name}' must be a non-negative integer.", code=f"invalid_{name}")
    return int(raw)


class KeysView(APIView):
    """The verifier keys of every checkpoint signer this log has used (public, no login)."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response({"origin": settings.AUDIT_LOG_ORIGIN, "keys": [
            {"name": k.verifier.name, "key_id": k.verifier.key_id_hex, "verifier_key": k.verifier.encode(),
             "active": k.active} for k in trusted_keys()]})


class CheckpointView(APIView):
    """The latest signed checkpoint, as the C2SP signed note text (public, no login)."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request: Request) -> HttpResponse:
        cp = latest_checkpoint()
        if cp is None:
            raise NotFound("No checkpoint has been signed yet; one is made every few minutes while events arrive.",
                           code="no_checkpoint")
        return HttpResponse(cp.note, content_type="text/plain; charset=utf-8")


class EventOut(serializers.Serializer):
    seq = serializers.IntegerField()
    event = serializers.DictField()
    leaf_hash = serializers.CharField()


class EventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_name")
    actor_id = django_filters.NumberFilter(field_name="actor_id")
    action = django_filters.CharFilter(field_name="action")
    action_prefix = django_filters.CharFilter(field_name="action", lookup_expr="startswith")
    target_type = django_filters.CharFilter(field_name="target_type")
    target_id = django_filters.CharFilter(field_name="target_id")
    since = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields: list[str] = []


class EventListView(generics.ListAPIView):
    """Audit events, filterable by actor, action, target and time; newest first by default."""

    serializer_class = EventOut
    queryset = AuditEvent.objects.none()
    filterset_class = EventFilter
    ordering_fields = ["seq"]
    ordering = ["-seq"]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.event_list(principal=Principal.from_request(self.request))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response([selectors.event_json(e) for e in page])


class EventDetailView(APIView):
    """One event, with its inclusion proof against the latest checkpoint when it is covered."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, seq: int) -> Response:
        event = selectors.event_list(principal=Principal.from_request(request)).filter(seq=seq).first()
        if event is None:
            raise NotFound(f"No audit event {seq} that you can see.", code="event_not_found")
        body = selectors.event_json(event)
        cp = latest_checkpoint()
        body["checkpoint"] = cp.note if cp else None
        body["inclusion"] = selectors.inclusion(index=seq, size=cp.size) if cp and seq < cp.size else None
        return Response(body)


class _AuditReader(APIView):
    """Whole-log endpoints: for roles that read the entire audit log."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        Principal.from_request(request).require("view_audit_log", action="audits.log.read")


class InclusionProofView(_AuditReader):
    @extend_schema(parameters=[OpenApiParameter("index", int, required=True),
                               OpenApiParameter("size", int, required=True)], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(selectors.inclusion(index=_int_param(request, "index"), size=_int_param(request, "size")))


class ConsistencyProofView(_AuditReader):
    @extend_schema(parameters=[OpenApiParameter("old", int, required=True),
                               OpenApiParameter("new", int, required=True)], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(selectors.consistency(old=_int_param(request, "old"), new=_int_param(request, "new")))


class ExportView(_AuditReader):
    """The log as JSON Lines, streamed; every download is itself recorded."""

    @extend_schema(parameters=[OpenApiParameter("start", int), OpenApiParameter("end", int)],
                   responses={(200, "application/jsonl"): OpenApiTypes.STR})
    def get(self, request: Request) -> StreamingHttpResponse:
        start = _int_param(request, "start", 0)
        end = _int_param(request, "end", tree_size())
        principal = Principal.from_request(request)
        with transaction.atomic():
            audit_append(actor=principal.snapshot(), action="audits.export.downloaded",
                         target=Target("audits.log", "export", f"events [{start}, {end})"),
                         payload={"start": start, "end": end})
        response = StreamingHttpResponse(selectors.export_lines(start=start, end=end),
                                         content_type="application/jsonl")
        response["Content-Disposition"] = f'attachment; filename="audit-log-{start}-{end}.jsonl"'
        return response


class VerifyIn(StrictSerializer):
    checkpoint = serializers.CharField(max_length=10_000, trim_whitespace=False, help_text="A signed checkpoint kept outside the database.")


class VerifyView(_AuditReader):
    """Verify the whole log now (GET), or also against an outside checkpoint (POST)."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        record, report = verification_run()
        return Response(report.as_dict() | {"verification_id": record.pk})

    @extend_schema(request=VerifyIn, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        data = VerifyIn(data=request.data)
        data.is_valid(raise_exception=True)
        record, report = verification_run(external_checkpoint=data.validated_data["checkpoint"].encode("utf-8"))
        return Response(report.as_dict() | {"verification_id": record.pk})
