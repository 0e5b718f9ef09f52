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
    actor: dict[str, Any] = {"type": "user", "id": user.pk, "username": user.get_username(),
                             "roles": roles_of(user)}
    if token is not None:
        actor["token"] = {"id": token.pk, "name": token.name, "prefix": token.prefix}
    return actor


def roles_of(user: Any) -> list[str]:
    """The names of the role groups ``user`` is in; one query, then remembered on the user object.

    A request snapshots its actor for every event it records; like Django's own permission cache
    on the user object, this is read once per request. Services that change a user's roles call
    ``forget_roles`` on the instance they changed.
    """
    cached = user.__dict__.get("_audit_roles")
    if cached is None:
        cached = sorted(user.groups.filter(role__isnull=False).values_list("name", flat=True))
        user.__dict__["_audit_roles"] = cached
    return list(cached)


def remember_roles(user: Any, roles: list[str]) -> None:
    """Seed ``roles_of``'s memory with role names read elsewhere (``governance.access.access_of``)."""
    user.__dict__["_audit_roles"] = sorted(roles)


def forget_roles(user: Any) -> None:
    """Drop what ``roles_of`` remembered (and Django's permission caches) after a role change."""
    for attr in ("_audit_roles", "_govaudit_access", "_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(attr, None)


def system_actor(name: str) -> dict[str, Any]:
    """The actor of work no person started (schedules, the sequencer, migrations)."""
    return {"type": "system", "name": name}
