from django.contrib import admin

from governance.admin_base import ReadOnlyAdmin
from governance.models import ApiToken, Team


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
