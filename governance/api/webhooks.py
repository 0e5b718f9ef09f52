"""API for webhook endpoints and their deliveries (``manage_policies``). Views parse, then call services.

The signing secret appears in exactly two answers: the creation (201) and a PATCH that rotates
it. No other answer, no list and no audit event carries it.
"""
from __future__ import annotations

import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import notifications
from governance.access import Principal
from governance.api.serializers import StrictSerializer
from governance.errors import ValidationFailed
from governance.models import Team, WebhookDelivery, WebhookEndpoint


def _events(**kwargs: Any) -> serializers.ListField:
    """A list of event types; unknown ones are named in the error with the known ones."""
    event = serializers.ChoiceField(
        choices=list(notifications.EVENT_TYPES),
        error_messages={"invalid_choice": f"'{{input}}' is not an event type; known: "
                                          f"{list(notifications.EVENT_TYPES)}."})
    return serializers.ListField(child=event, min_length=1, max_length=len(notifications.EVENT_TYPES), **kwargs)


class WebhookOut(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", allow_null=True, default=None)
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    events = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "name", "url", "events", "active", "team", "created_by", "created_at", "updated_at"]


class WebhookSecretOut(WebhookOut):
    secret = serializers.CharField(help_text="The signing secret. Shown in this answer only: store it now.")

    class Meta(WebhookOut.Meta):
        fields = [*WebhookOut.Meta.fields, "secret"]


class _WebhookFields(StrictSerializer):
    """Shared checks: ``active`` must be a JSON boolean (DRF would take "yes" or 1)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for key in ("active", "rotate_secret"):
            if key in self.initial_data and not isinstance(self.initial_data[key], bool):
                raise serializers.ValidationError({key: [f"'{key}' must be true or false."]})
        return attrs


class WebhookIn(_WebhookFields):
    name = serializers.CharField(max_length=notifications.MAX_NAME)
    url = serializers.CharField(max_length=notifications.MAX_URL, help_text="https:// (http:// in development).")
    events = _events()
    team = serializers.SlugField(max_length=64, required=False, allow_null=True,
                                 help_text="Only decisions on this team's models; omit for every model.")
    active = serializers.BooleanField(default=True)


class WebhookPatchIn(_WebhookFields):
    name = serializers.CharField(max_length=notifications.MAX_NAME, required=False)
    url = serializers.CharField(max_length=notifications.MAX_URL, required=False)
    events = _events(required=False)
    team = serializers.SlugField(max_length=64, required=False, allow_null=True)
    active = serializers.BooleanField(required=False)
    rotate_secret = serializers.BooleanField(required=False, default=False,
                                             help_text="Issue a new secret (returned in this answer only).")


def _team(slug: str | None) -> Team | None:
    if slug is None:
        return None
    team = Team.objects.filter(slug=slug).first()
    if team is None:
        raise ValidationFailed(f"No team {slug!r}; give the slug of an existing team, or null for every model.",
                               code="unknown_team")
    return team


class WebhookListView(generics.ListAPIView):
    """Webhook endpoints; register one (its secret is in this answer only)."""

    serializer_class = WebhookOut
    queryset = WebhookEndpoint.objects.none()

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        principal = Principal.from_request(self.request)
        principal.require("manage_policies", action="governance.webhook.read")
        return notifications.webhook_list(principal=principal)

    @extend_schema(request=WebhookIn, responses={201: WebhookSecretOut})
    def post(self, request: Request) -> Response:
        principal = Principal.from_request(request)
        principal.require("manage_policies", action="governance.webhook.created")
        data = WebhookIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        endpoint, secret = notifications.webhook_create(actor=principal, team=_team(values.pop("team", None)),
                                                        **values)
        return Response(WebhookOut(endpoint).data | {"secret": secret}, status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    """One endpoint: read, change (or rotate its secret), delete with its delivery records."""

    def _get(self, request: Request, pk: int) -> tuple[Principal, WebhookEndpoint]:
        principal = Principal.from_request(request)
        action = {"GET": "governance.webhook.read", "PATCH": "governance.webhook.updated",
                  "DELETE": "governance.webhook.deleted"}.get(request.method or "", "governance.webhook.read")
        principal.require("manage_policies", action=action)
        return principal, notifications.webhook_get(principal=principal, pk=pk)

    @extend_schema(responses=WebhookOut)
    def get(self, request: Request, pk: int) -> Response:
        return Response(WebhookOut(self._get(request, pk)[1]).data)

    @extend_schema(request=WebhookPatchIn, responses=WebhookSecretOut,
                   description="`secret` is in the answer only when `rotate_secret` was true.")
    def patch(self, request: Request, pk: int) -> Response:
        principal, endpoint = self._get(request, pk)
        data = WebhookPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        changes = {k: v for k, v in data.validated_data.items() if k in data.initial_data and k != "rotate_secret"}
        if "team" in changes:
            changes["team"] = _team(changes["team"])
        endpoint, secret = notifications.webhook_update(actor=principal, endpoint=endpoint, changes=changes,
                                                        rotate_secret=data.validated_data["rotate_secret"])
        body = WebhookOut(endpoint).data
        return Response(body | {"secret": secret} if secret else body)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        principal, endpoint = self._get(request, pk)
        notifications.webhook_delete(actor=principal, endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryOut(serializers.ModelSerializer):
    endpoint = serializers.CharField(source="endpoint.name")
    # Plain text in the schema: a second enum named "status" (reports have one) would collide.
    status = serializers.CharField(help_text="pending, delivered or failed (given up on; see last_error).")
    payload = serializers.SerializerMethodField()

    class Meta:
        model = WebhookDelivery
        fields = ["id", "endpoint", "event_id", "event_type", "status", "attempts", "last_status_code", "last_error",
                  "next_attempt_at", "created_at", "updated_at", "delivered_at", "payload"]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_payload(self, obj: WebhookDelivery) -> Any:
        return json.loads(bytes(obj.payload))


class WebhookDeliveriesView(generics.ListAPIView):
    """An endpoint's deliveries, newest first; ``?status=failed`` lists those given up on."""

    serializer_class = DeliveryOut
    queryset = WebhookDelivery.objects.none()
    filterset_fields = ["status", "event_type"]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        principal = Principal.from_request(self.request)
        principal.require("manage_policies", action="governance.webhook.read")
        endpoint = notifications.webhook_get(principal=principal, pk=self.kwargs["pk"])
        return notifications.delivery_list(principal=principal, endpoint=endpoint)


class DeliveryRedeliverView(APIView):
    """Send a finished delivery again, same event id and bytes (409 while it is still pending)."""

    @extend_schema(request=None, responses=DeliveryOut)
    def post(self, request: Request, pk: int, delivery: int) -> Response:
        principal = Principal.from_request(request)
        principal.require("manage_policies", action="governance.webhook.redelivered")
        endpoint = notifications.webhook_get(principal=principal, pk=pk)
        return Response(DeliveryOut(notifications.webhook_redeliver(actor=principal, endpoint=endpoint,
                                                                    delivery_id=delivery)).data)
