"""Who is acting: a user (maybe through a token) or the system, and what they may do.

Permissions answer "may this principal ask?"; they never answer "may this version go to that
stage?" (that is what gates are for). Every service takes a ``Principal`` as ``actor``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from django.db import connection, transaction

from audits.context import actor_for, remember_roles, system_actor
from governance.errors import PermissionDenied, ValidationFailed
from governance.roles import capability_perm

if TYPE_CHECKING:
    from governance.models import ApiToken, Team


@dataclass(frozen=True)
class Access:
    """What a user's grants come to: the permission strings, the group ids, the role names.

    Read once per user object (``access_of``) and used for every capability check, team
    membership test and audit actor snapshot of the request.
    """

    perms: frozenset[str]
    group_ids: frozenset[int]
    roles: tuple[str, ...]


def _access_sql() -> str:
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType

    from governance.models import Role

    user_groups = Group.user_set.through._meta.db_table
    user_perms = Permission.user_set.through._meta.db_table
    group_perms = Permission.group_set.through._meta.db_table
    perm, ctype, role = Permission._meta.db_table, ContentType._meta.db_table, Role._meta.db_table
    group = Group._meta.db_table
    # ``||`` concatenates on PostgreSQL and SQLite alike; three arms, one round trip. A role's
    # name is its group's name (what ``audits.context.roles_of`` records).
    return (
        f"SELECT 'g' AS kind, ug.group_id AS gid, CASE WHEN r.id IS NULL THEN NULL ELSE g.name END AS name "
        f"FROM {user_groups} ug "
        f"JOIN {group} g ON g.id = ug.group_id LEFT JOIN {role} r ON r.group_id = ug.group_id "
        f"WHERE ug.user_id = %s "
        f"UNION ALL SELECT 'p', NULL, ct.app_label || '.' || p.codename FROM {user_groups} ug "
        f"JOIN {group_perms} gp ON gp.group_id = ug.group_id JOIN {perm} p ON p.id = gp.permission_id "
        f"JOIN {ctype} ct ON ct.id = p.content_type_id WHERE ug.user_id = %s "
        f"UNION ALL SELECT 'p', NULL, ct.app_label || '.' || p.codename FROM {user_perms} up "
        f"JOIN {perm} p ON p.id = up.permission_id JOIN {ctype} ct ON ct.id = p.content_type_id "
        f"WHERE up.user_id = %s"
    )


def access_rows_sql(user_id_column: str) -> str:
    """The access rows of the user in ``user_id_column`` as one JSON array: a scalar subquery.

    For a read that finds the user anyway (the token lookup of every API request) to bring the
    user's access along in the same round trip; ``remember_access`` takes the array.
    """
    rows = _access_sql().replace("%s", user_id_column)
    if connection.vendor == "postgresql":
        return f"(SELECT COALESCE(json_agg(json_build_array(a.kind, a.gid, a.name)), '[]')::text FROM ({rows}) a)"
    return f"(SELECT json_group_array(json_array(a.kind, a.gid, a.name)) FROM ({rows}) a)"


def remember_access(user: Any, rows: Iterable[Sequence[Any]]) -> Access:
    """Keep the user's access, built from its ``(kind, group id, name)`` rows, on the user object."""
    perms: set[str] = set()
    groups: set[int] = set()
    roles: list[str] = []
    for kind, group_id, name in rows:
        if kind == "p":
            perms.add(name)
        else:
            groups.add(int(group_id))
            if name is not None:
                roles.append(name)
    access = Access(perms=frozenset(perms), group_ids=frozenset(groups), roles=tuple(sorted(roles)))
    user.__dict__["_govaudit_access"] = access
    remember_roles(user, list(access.roles))
    return access


def access_of(user: Any) -> Access:
    """The user's permissions (own and through groups), groups and roles, in one query.

    The same permissions Django's ``ModelBackend`` reads in two queries per request, plus the
    groups (team membership) and the role names (audit snapshots) that other checks of the same
    request would each have queried: on a pipeline's hot path these were five round trips and
    as many ORM query compilations. Remembered on the user object, like Django's own permission
    cache; ``audits.context.forget_roles`` drops it after a role change.
    """
    cached = user.__dict__.get("_govaudit_access")
    if cached is None:
        with connection.cursor() as cur:
            cur.execute(_access_sql(), [user.pk, user.pk, user.pk])
            cached = remember_access(user, cur.fetchall())
    return cached


@dataclass(frozen=True)
class Principal:
    """The acting party. ``system`` is set for work no person started (demo loader, schedules)."""

    user: Any = None
    token: "ApiToken | None" = None
    system: str | None = None

    @classmethod
    def of_system(cls, name: str) -> "Principal":
        return cls(system=name)

    @classmethod
    def from_request(cls, request: Any) -> "Principal":
        from governance.models import ApiToken

        token = request.auth if isinstance(getattr(request, "auth", None), ApiToken) else None
        return cls(user=request.user, token=token)

    @property
    def is_authenticated(self) -> bool:
        return self.system is not None or bool(getattr(self.user, "is_authenticated", False))

    @property
    def team_scope(self) -> "Team | None":
        """The one team a scoped token is limited to, or None."""
        return self.token.team if self.token is not None else None

    def can(self, capability: str) -> bool:
        if self.system is not None:
            return True
        if not self.is_authenticated or not self.user.is_active:
            return False
        # Django's rule (ModelBackend.has_perm): an active superuser holds every permission.
        return bool(self.user.is_superuser) or capability_perm(capability) in access_of(self.user).perms

    @property
    def sees_all(self) -> bool:
        return self.can("view_all_models") and self.team_scope is None

    def snapshot(self) -> dict[str, Any]:
        """What the audit log records about the actor."""
        if self.system is not None:
            return system_actor(self.system)
        return actor_for(self.user, self.token)

    def require(self, capability: str, *, target: Any = None, action: str = "") -> None:
        """Refuse (403) unless the principal holds ``capability``; the refusal is audited."""
        if self.can(capability):
            return
        self.refuse(f"Your roles do not allow this ({capability.replace('_', ' ')}); ask an administrator "
                    "for a role that includes it.", code="permission_denied", target=target, action=action,
                    details={"capability": capability})

    def refuse(self, message: str, *, code: str, target: Any = None, action: str = "",
               details: dict[str, Any] | None = None) -> None:
        """Record a refused attempt in the audit log (in its own transaction), then raise 403."""
        from audits.services import audit_append

        with transaction.atomic():
            audit_append(actor=self.snapshot(), action="security.access.denied", target=target,
                         payload={"attempted": action, "code": code, **(details or {})})
        raise PermissionDenied(message, code=code, details=details or {})


def require_team_member(actor: Principal, team: "Team") -> None:
    """Writers act for their own teams only (those who see all teams, for any)."""
    if actor.system is not None or (actor.can("view_all_models") and actor.team_scope is None):
        return
    scope = actor.team_scope
    if (scope is not None and scope.pk != team.pk) or team.group_id not in access_of(actor.user).group_ids:
        raise ValidationFailed(f"You are not a member of team {team.slug!r}" +
                               (" or your token is scoped to another team" if scope else "") + ".",
                               code="not_team_member")
