"""Who is acting and under which request: captured once per request, read by every append."""
from __future__ import annotations

import contextvars
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def actor_for(user: Any, token: Any = None) -> dict[str, Any]:
    """A snapshot of the acting user (and token) as it was at the time of the event.

    Roles are copied in, not referenced, so a later role change does not rewrite history.
    """
    if user is None or not getattr(user, "is_authenticated", False):
        return {"type": "anonymous"}
    roles = sorted(g.name for g in user.groups.all() if hasattr(g, "role"))
    actor: dict[str, Any] = {"type": "user", "id": user.pk, "username": user.get_username(), "roles": roles}
    if token is not None:
        actor["token"] = {"id": token.pk, "name": token.name, "prefix": token.prefix}
    return actor


def system_actor(name: str) -> dict[str, Any]:
    """The actor of work no person started (schedules, the sequencer, migrations)."""
    return {"type": "system", "name": name}
