"""Reads on teams and tokens, limited to what the principal may see."""
from __future__ import annotations

from django.db.models import QuerySet

from governance.access import Principal
from governance.errors import NotFound
from governance.models import ApiToken, Team


def team_list(*, principal: Principal) -> QuerySet[Team]:
    if principal.sees_all or principal.can("manage_teams"):
        return Team.objects.all()
    if principal.system is not None:
        return Team.objects.all()
    return Team.objects.filter(group__user=principal.user)


def teams_of(*, principal: Principal) -> QuerySet[Team]:
    """The teams the principal belongs to (what it may create models for)."""
    if principal.system is not None:
        return Team.objects.all()
    qs = Team.objects.filter(group__user=principal.user)
    return qs.filter(pk=principal.team_scope.pk) if principal.team_scope else qs


def team_get(*, principal: Principal, slug: str) -> Team:
    team = team_list(principal=principal).filter(slug=slug).first()
    if team is None:
        raise NotFound(f"No team {slug!r} that you can see.", code="team_not_found")
    return team


def token_list(*, principal: Principal) -> QuerySet[ApiToken]:
    """One's own tokens; everyone's for those who manage tokens or review access."""
    qs = ApiToken.objects.select_related("user", "team")
    if principal.system is not None or principal.can("manage_tokens") or principal.can("view_audit_log"):
        return qs
    return qs.filter(user=principal.user)


def token_get(*, principal: Principal, pk: int) -> ApiToken:
    token = token_list(principal=principal).filter(pk=pk).first()
    if token is None:
        raise NotFound(f"No token with id {pk} that you can see.", code="token_not_found")
    return token
