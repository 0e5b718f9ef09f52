"""Writes on people, teams, roles and tokens. Each runs in one transaction with its audit event."""
from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.text import slugify

from audits.context import actor_for, forget_roles
from audits.services import Target, audit_append
from governance.access import Principal, access_rows_sql, remember_access
from governance.errors import Conflict, NotFound, ValidationFailed
from governance.models import ApiToken, Role, Team
from governance.queries import Compiled
from governance.roles import ROLES

User = get_user_model()

TOKEN_PREFIX = "gva_"
MAX_TOKEN_DAYS = 365
# last_used_at is refreshed at most this often, so token use does not write on every request.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def _user_target(user: Any) -> Target:
    return Target("auth.user", str(user.pk), user.get_username())


def _team_target(team: Team) -> Target:
    return Target("governance.team", team.slug, team.name)


def _refresh_staff_flag(user: Any) -> None:
    """Portal access follows the roles: staff exactly when a role grants ``use_portal``.

    Called after every change of a user's roles, so it also drops the roles and permissions
    remembered on that user object (``audits.context.forget_roles``).
    """
    forget_roles(user)
    portal = any(ROLES[g.name].capabilities.__contains__("use_portal")
                 for g in user.groups.all() if g.name in ROLES)
    if user.is_staff != portal:
        user.is_staff = portal
        user.save(update_fields=["is_staff"])


def user_create(*, actor: Principal, username: str, email: str = "", password: str | None = None,
                roles: list[str] | None = None, teams: list[Team] | None = None) -> Any:
    """Create a person (or a pipeline's service account when ``password`` is None)."""
    actor.require("manage_roles", action="governance.user.created")
    if not username or len(username) > 150:
        raise ValidationFailed("A username of 1 to 150 characters is required.", code="invalid_username")
    unknown = sorted(set(roles or []) - set(ROLES))
    if unknown:
        raise ValidationFailed(f"Unknown roles {unknown}; known roles are {sorted(ROLES)}.", code="unknown_role")
    if password is not None:
        try:
            validate_password(password)
        except DjangoValidationError as exc:
            raise ValidationFailed(" ".join(exc.messages), code="weak_password") from exc
    with transaction.atomic():
        if User.objects.filter(username=username).exists():
            raise Conflict(f"A user named {username!r} already exists.", code="duplicate_user")
        user = User(username=username, email=email)
        if password is None:
            user.set_unusable_password()
        else:
            user.set_password(password)
        user.save()
        for role in roles or []:
            user.groups.add(Role.objects.get(name=role).group)
        for team in teams or []:
            user.groups.add(team.group)
        _refresh_staff_flag(user)
        audit_append(actor=actor.snapshot(), action="governance.user.created", target=_user_target(user),
                     payload={"roles": sorted(roles or []), "teams": sorted(t.slug for t in teams or []),
                              "service_account": password is None})
    return user


def role_grant(*, actor: Principal, user: Any, role: str) -> None:
    """Give ``user`` a role; a no-op grant is refused so the log never records a non-change."""
    actor.require("manage_roles", target=_user_target(user), action="governance.role.granted")
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role {role!r}; known roles are {sorted(ROLES)}.", code="unknown_role")
    with transaction.atomic():
        group = Role.objects.select_related("group").get(name=role).group
        if user.groups.filter(pk=group.pk).exists():
            raise Conflict(f"{user.get_username()} already holds the role {role}.", code="already_granted")
        user.groups.add(group)
        _refresh_staff_flag(user)
        audit_append(actor=actor.snapshot(), action="governance.role.granted", target=_user_target(user),
                     payload={"role": role})


def role_revoke(*, actor: Principal, user: Any, role: str) -> None:
    """Withdraw a role."""
    actor.require("manage_roles", target=_user_target(user), action="governance.role.revoked")
    with transaction.atomic():
        group = Group.objects.filter(name=role, role__isnull=False).first()
        if group is None or not user.groups.filter(pk=group.pk).exists():
            raise NotFound(f"{user.get_username()} does not hold the role {role!r}.", code="role_not_held")
        user.groups.remove(group)
        _refresh_staff_flag(user)
        audit_append(actor=actor.snapshot(), action="governance.role.revoked", target=_user_target(user),
                     payload={"role": role})


def team_create(*, actor: Principal, name: str, slug: str = "", description: str = "") -> Team:
    """Create a team and the group its object permissions are granted to."""
    actor.require("manage_teams", action="governance.team.created")
    slug = slug or slugify(name)
    if not slug or len(slug) > 64 or not name or len(name) > 120:
        raise ValidationFailed("A team needs a name (1-120 characters) and a slug (1-64 characters).",
                               code="invalid_team")
    with transaction.atomic():
        if Team.objects.filter(slug=slug).exists() or Team.objects.filter(name=name).exists():
            raise Conflict(f"A team named {name!r} or with slug {slug!r} already exists.", code="duplicate_team")
        try:
            group = Group.objects.create(name=f"team:{slug}")
        except IntegrityError as exc:
            raise Conflict(f"A group named team:{slug} already exists.", code="duplicate_team") from exc
        team = Team.objects.create(slug=slug, name=name, description=description, group=group)
        audit_append(actor=actor.snapshot(), action="governance.team.created", target=_team_target(team),
                     payload={"description": description})
    return team


def team_member_add(*, actor: Principal, team: Team, user: Any) -> None:
    """Add ``user`` to ``team``: they now see and act on the team's models."""
    actor.require("manage_teams", target=_team_target(team), action="governance.team.member_added")
    with transaction.atomic():
        if user.groups.filter(pk=team.group_id).exists():
            raise Conflict(f"{user.get_username()} is already a member of {team.slug}.", code="already_member")
        user.groups.add(team.group)
        audit_append(actor=actor.snapshot(), action="governance.team.member_added", target=_team_target(team),
                     payload={"user": {"id": user.pk, "username": user.get_username()}})


def team_member_remove(*, actor: Principal, team: Team, user: Any) -> None:
    """Remove ``user`` from ``team``."""
    actor.require("manage_teams", target=_team_target(team), action="governance.team.member_removed")
    with transaction.atomic():
        if not user.groups.filter(pk=team.group_id).exists():
            raise NotFound(f"{user.get_username()} is not a member of {team.slug}.", code="not_member")
        user.groups.remove(team.group)
        audit_append(actor=actor.snapshot(), action="governance.team.member_removed", target=_team_target(team),
                     payload={"user": {"id": user.pk, "username": user.get_username()}})


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(*, actor: Principal, user: Any, name: str, expires_in_days: int = 90,
                 team: Team | None = None) -> tuple[ApiToken, str]:
    """Issue a token for ``user`` and return it with its secret, which is never shown again.

    People create their own tokens; creating one for someone else (a service account) needs
    ``manage_tokens``. A team scope must be one of the user's teams.
    """
    if actor.system is None and actor.user.pk != user.pk:
        actor.require("manage_tokens", target=_user_target(user), action="governance.token.created")
    if actor.token is not None:
        raise ValidationFailed("Tokens cannot mint tokens; sign in to create one.", code="token_cannot_mint")
    if not name or len(name) > 100:
        raise ValidationFailed("A token needs a name of 1 to 100 characters.", code="invalid_token_name")
    if not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise ValidationFailed(f"expires_in_days must be between 1 and {MAX_TOKEN_DAYS}.", code="invalid_expiry")
    if team is not None and not user.groups.filter(pk=team.group_id).exists():
        raise ValidationFailed(f"{user.get_username()} is not a member of team {team.slug}; a token can only be "
                               "scoped to one of its owner's teams.", code="invalid_team_scope")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, prefix=secret[: len(TOKEN_PREFIX) + 6], token_hash=_hash_secret(secret),
            team=team, expires_at=timezone.now() + timedelta(days=expires_in_days),
        )
        audit_append(actor=actor.snapshot(), action="governance.token.created",
                     target=Target("governance.token", str(token.pk), token.name),
                     payload={"owner": user.get_username(), "team": team.slug if team else None,
                              "expires_at": token.expires_at.isoformat(), "prefix": token.prefix})
    return token, secret


def token_revoke(*, actor: Principal, token: ApiToken) -> None:
    """Revoke a token at once. Owners revoke their own; ``manage_tokens`` revokes anyone's."""
    if actor.system is None and actor.user.pk != token.user_id:
        actor.require("manage_tokens", target=Target("governance.token", str(token.pk), token.name),
                      action="governance.token.revoked")
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is not None:
            raise Conflict(f"Token {token.name!r} was already revoked at {token.revoked_at.isoformat()}.",
                           code="already_revoked")
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_append(actor=actor.snapshot(), action="governance.token.revoked",
                     target=Target("governance.token", str(token.pk), token.name),
                     payload={"owner": token.user.get_username(), "prefix": token.prefix})


def _token_by_hash(token_hash: str) -> QuerySet[ApiToken]:
    """The token with its user, team and the user's access rows (``access_rows_sql``): one round trip."""
    quote = connection.ops.quote_name
    user_id = f"{quote(ApiToken._meta.db_table)}.{quote('user_id')}"
    return (ApiToken.objects.select_related("user", "team").filter(token_hash=token_hash)
            .annotate(access_rows=RawSQL(access_rows_sql(user_id), [], output_field=TextField())).order_by()[:1])


# Every API request runs this read: compiled once per connection (governance.queries.Compiled).
_TOKEN_BY_HASH = Compiled("token_by_hash", _token_by_hash, token_hash=str)


def token_authenticate(*, secret: str) -> ApiToken | None:
    """The active token with this secret, or None; a rejected token is a security event."""
    token = None
    if secret.startswith(TOKEN_PREFIX) and len(secret) < 200:
        token = _TOKEN_BY_HASH.one(token_hash=_hash_secret(secret))
    now = timezone.now()
    if token is None or not token.is_active(now) or not token.user.is_active:
        reason = "unknown" if token is None else ("revoked" if token.revoked_at else
                                                   "expired" if token.expires_at <= now else "user_inactive")
        with transaction.atomic():
            audit_append(actor={"type": "anonymous"}, action="security.token.rejected",
                         target=Target("governance.token", str(token.pk), token.name) if token else None,
                         payload={"reason": reason, "prefix": secret[:10] if secret.startswith(TOKEN_PREFIX) else ""})
        return None
    remember_access(token.user, json.loads(token.access_rows))  # what access_of would read next
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        # Bookkeeping, not a governed change: no audit event for each use.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def login_record_success(*, user: Any, ip: str | None) -> None:
    """A person signed in to the portal."""
    with transaction.atomic():
        audit_append(actor=actor_for(user), action="security.login.succeeded", target=_user_target(user),
                     payload={"ip": ip})


def login_record_failure(*, username: str, ip: str | None) -> None:
    """A sign-in failed; the attempted name is kept (it may not exist), never the password."""
    with transaction.atomic():
        audit_append(actor={"type": "anonymous"}, action="security.login.failed", target=None,
                     payload={"username": username[:150], "ip": ip})
