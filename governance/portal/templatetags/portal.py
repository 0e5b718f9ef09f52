"""Template filters for the portal's pages."""
from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def actor_name(actor: Any) -> str:
    """The name of an actor snapshot as the audit log records it (user, system or anonymous)."""
    if not isinstance(actor, dict):
        return ""
    return str(actor.get("username") or actor.get("name") or actor.get("type") or "")
