"""Reads on teams and tokens, limited to what the principal may see."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from governance.access import Principal
from governance.errors import NotFound
from governance.models import ApiToken, Team
from governance.queries import by_key


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


def policy_list(*, principal: Principal) -> QuerySet:
    """Every published policy version: policies are public within the organisation (signed in)."""
    from governance.models import PromotionPolicy

    return PromotionPolicy.objects.all()


def policy_get(*, principal: Principal, name: str, version: int | None = None) -> "Any":
    from governance.models import PromotionPolicy

    qs = PromotionPolicy.objects.filter(name=name)
    row = (qs.filter(version=version) if version is not None else qs.order_by("-version")).first()
    if row is None:
        raise NotFound(f"No policy {name!r}" + (f" version {version}" if version else "") + ".",
                       code="policy_not_found")
    return row


def promotion_list(*, principal: Principal) -> QuerySet:
    """Promotion requests on models the principal can see."""
    from governance.models import PromotionRequest
    from registry.selectors import model_list

    return (PromotionRequest.objects.filter(model__in=model_list(principal=principal))
            .select_related("model", "version", "policy"))


def promotion_get(*, principal: Principal, pk: int) -> "Any":
    req = by_key(promotion_list(principal=principal).filter(pk=pk))
    if req is None:
        raise NotFound(f"No promotion request {pk} that you can see.", code="promotion_not_found")
    return req


def waiver_get(*, principal: Principal, pk: int) -> "Any":
    from governance.models import Waiver
    from registry.selectors import model_list

    waiver = Waiver.objects.filter(pk=pk, version__model__in=model_list(principal=principal)) \
        .select_related("version__model").first()
    if waiver is None:
        raise NotFound(f"No waiver {pk} that you can see.", code="waiver_not_found")
    return waiver
