"""The admin is read-mostly: it lists and shows; every change goes through services (portal views)."""
from __future__ import annotations

from typing import Any

from django.contrib import admin

from governance.access import Principal


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shows rows to portal users whose roles let them see them; never adds, edits or deletes."""

    view_capability = "view_all_models"
    actions = None

    def has_view_permission(self, request: Any, obj: Any = None) -> bool:
        principal = Principal.from_request(request)
        return principal.can("use_portal") and principal.can(self.view_capability)

    def has_module_permission(self, request: Any) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
