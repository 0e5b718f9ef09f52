from django.contrib import admin

from governance.admin_base import ReadOnlyAdmin
from governance.models import ApiToken, Team, WebhookDelivery, WebhookEndpoint


@admin.register(Team)
class TeamAdmin(ReadOnlyAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    view_capability = "view_audit_log"
    list_display = ["name", "prefix", "user", "team", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["team"]
    list_select_related = ["user", "team"]
    exclude = ["token_hash"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    """Endpoints, for review (changes go through the API's services); the secret is never shown."""

    view_capability = "view_audit_log"
    list_display = ["name", "url", "active", "team", "created_by", "created_at"]
    list_filter = ["active", "team"]
    list_select_related = ["team", "created_by"]
    exclude = ["secret_encrypted"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """Every delivery and how its attempts went; failed ones are those given up on."""

    view_capability = "view_audit_log"
    list_display = ["event_type", "endpoint", "status", "attempts", "last_status_code", "next_attempt_at",
                    "created_at", "delivered_at"]
    list_filter = ["status", "event_type", "endpoint"]
    list_select_related = ["endpoint"]
    exclude = ["payload"]
    readonly_fields = ["payload_json"]

    @admin.display(description="payload")
    def payload_json(self, obj: WebhookDelivery) -> str:
        return bytes(obj.payload).decode("utf-8")
