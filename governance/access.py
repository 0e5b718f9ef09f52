"""Who is acting: a user (maybe through a token) or the system, and what they may do.

Permissions answer "may this principal ask?"; they never answer "may this version go to that
stage?" (that is what gates are for). Every service takes a ``Principal`` as ``actor``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction

from audits.context import actor_for, system_actor
from governance.errors import PermissionDenied, ValidationFailed
from governance.roles import capability_perm

if TYPE_CHECKING:
    from governance.models import ApiToken, Team


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
        return bool(self.user.has_perm(capability_perm(capability)))

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
    if (scope is not None and scope.pk != team.pk) or not actor.user.groups.filter(pk=team.group_id).exists():
        raise ValidationFailed(f"You are not a member of team {team.slug!r}" +
                               (" or your token is scoped to another team" if scope else "") + ".",
                               code="not_team_member")
