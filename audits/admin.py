from django.contrib import admin

from governance.admin_base import ReadOnlyAdmin
from audits.models import AuditCheckpoint, AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    view_capability = "view_audit_log"
    list_display = ["seq", "ts", "action", "actor_name", "target_type", "target_id"]
    list_filter = ["action"]
    search_fields = ["actor_name", "target_id", "action"]
    exclude = ["leaf", "leaf_hash"]
    readonly_fields = ["leaf_text"]

    @admin.display(description="Leaf (canonical JSON)")
    def leaf_text(self, obj: AuditEvent) -> str:
        return bytes(obj.leaf).decode("utf-8")


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    view_capability = "view_audit_log"
    list_display = ["size", "key_name", "created_at"]
    exclude = ["root_hash", "compact_range"]


# Packs, schedules (editable by compliance officers through the services), exports and alerts.
from audits.packs import admin as _packs_admin  # noqa: E402,F401
