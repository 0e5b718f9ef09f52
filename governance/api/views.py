"""API for people, teams, roles and tokens. Views check input, then call a service."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import selectors, services
from governance.access import Principal
from governance.api.serializers import StrictSerializer
from governance.errors import NotFound
from governance.models import ApiToken, Team
from governance.roles import ROLES

User = get_user_model()


def _user_by_name(principal: Principal, username: str) -> Any:
    """Only those who manage people may look them up by name."""
    if not (principal.can("manage_roles") or principal.can("manage_teams")):
        raise NotFound(f"No user {username!r} that you can see.", code="user_not_found")
    user = User.objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"No user {username!r}.", code="user_not_found")
    return user


class TeamOut(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["slug", "name", "description", "created_at"]


class MeOut(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    teams = TeamOut(many=True)
    capabilities = serializers.ListField(child=serializers.CharField())
    token = serializers.DictField(allow_null=True)


class MeView(APIView):
    """Who am I: roles, teams, capabilities and the token in use."""

    @extend_schema(responses=MeOut)
    def get(self, request: Request) -> Response:
        principal = Principal.from_request(request)
        user = request.user
        caps = sorted({c for g in user.groups.all() if g.name in ROLES for c in ROLES[g.name].capabilities})
        token = principal.token
        return Response({
            "username": user.get_username(), "email": user.email,
            "roles": sorted(g.name for g in user.groups.all() if g.name in ROLES),
            "teams": TeamOut(selectors.teams_of(principal=principal), many=True).data,
            "capabilities": caps,
            "token": None if token is None else {"id": token.pk, "name": token.name,
                                                 "team": token.team.slug if token.team else None},
        })


class TeamIn(StrictSerializer):
    name = serializers.CharField(max_length=120)
    slug = serializers.SlugField(max_length=64, required=False, allow_blank=True)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class TeamListView(generics.ListAPIView):
    """Teams one belongs to (all of them for administrators and read-all roles)."""

    serializer_class = TeamOut
    queryset = Team.objects.none()

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return self.queryset
        return selectors.team_list(principal=Principal.from_request(self.request))


    @extend_schema(request=TeamIn, responses={201: TeamOut})
    def post(self, request: Request) -> Response:
        principal = Principal.from_request(request)
        principal.require("manage_teams", action="governance.team.created")
        data = TeamIn(data=request.data)
        data.is_valid(raise_exception=True)
        team = services.team_create(actor=principal, **data.validated_data)
        return Response(TeamOut(team).data, status=status.HTTP_201_CREATED)


class TeamDetailView(APIView):
    @extend_schema(responses=TeamOut)
    def get(self, request: Request, slug: str) -> Response:
        return Response(TeamOut(selectors.team_get(principal=Principal.from_request(request), slug=slug)).data)


class MemberIn(StrictSerializer):
    username = serializers.CharField(max_length=150)


class TeamMembersView(APIView):
    """Add a member (``manage_teams``)."""

    @extend_schema(request=MemberIn, responses={204: None})
    def post(self, request: Request, slug: str) -> Response:
        principal = Principal.from_request(request)
        principal.require("manage_teams", action="governance.team.member_added")
        data = MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        team = selectors.team_get(principal=principal, slug=slug)
        services.team_member_add(actor=principal, team=team,
                                 user=_user_by_name(principal, data.validated_data["username"]))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamMemberView(APIView):
    """Remove a member (``manage_teams``)."""

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, username: str) -> Response:
        principal = Principal.from_request(request)
        principal.require("manage_teams", action="governance.team.member_removed")
        team = selectors.team_get(principal=principal, slug=slug)
        services.team_member_remove(actor=principal, team=team, user=_user_by_name(principal, username))
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserIn(StrictSerializer):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True)
    password = serializers.CharField(required=False, write_only=True, max_length=256)
    roles = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=20)
    teams = serializers.ListField(child=serializers.SlugField(max_length=64), required=False, max_length=50)


class UserOut(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    teams = serializers.ListField(child=serializers.CharField())


def _user_out(user: Any) -> dict[str, Any]:
    groups = list(user.groups.select_related("team").all())
    return {"username": user.get_username(), "email": user.email,
            "roles": sorted(g.name for g in groups if g.name in ROLES),
            "teams": sorted(g.team.slug for g in groups if hasattr(g, "team"))}


class UserListView(APIView):
    """Create a person or a service account (``manage_roles``)."""

    @extend_schema(request=UserIn, responses={201: UserOut})
    def post(self, request: Request) -> Response:
        principal = Principal.from_request(request)
        principal.require("manage_roles", action="governance.user.created")
        data = UserIn(data=request.data)
        data.is_valid(raise_exception=True)
        teams = []
        for slug in data.validated_data.pop("teams", []):
            team = Team.objects.filter(slug=slug).first()
            if team is None:
                raise NotFound(f"No team {slug!r}.", code="team_not_found")
            teams.append(team)
        user = services.user_create(actor=principal, teams=teams, **data.validated_data)
        return Response(_user_out(user), status=status.HTTP_201_CREATED)


class RoleIn(StrictSerializer):
    role = serializers.ChoiceField(choices=sorted(ROLES))


class UserRolesView(APIView):
    """Grant a role (``manage_roles``)."""

    @extend_schema(request=RoleIn, responses={200: UserOut})
    def post(self, request: Request, username: str) -> Response:
        principal = Principal.from_request(request)
        principal.require("manage_roles", action="governance.role.granted")
        data = RoleIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = _user_by_name(principal, username)
        services.role_grant(actor=principal, user=user, role=data.validated_data["role"])
        return Response(_user_out(user))


class UserRoleView(APIView):
    """Withdraw a role (``manage_roles``)."""

    @extend_schema(responses={200: UserOut})
    def delete(self, request: Request, username: str, role: str) -> Response:
        principal = Principal.from_request(request)
        principal.require("manage_roles", action="governance.role.revoked")
        user = _user_by_name(principal, username)
        services.role_revoke(actor=principal, user=user, role=role)
        return Response(_user_out(user))


class TokenOut(serializers.ModelSerializer):
    owner = serializers.CharField(source="user.username")
    team = serializers.CharField(source="team.slug", allow_null=True, default=None)
    active = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "owner", "team", "created_at", "expires_at", "revoked_at",
                  "last_used_at", "active"]

    def get_active(self, obj: ApiToken) -> bool:
        return obj.is_active()


class TokenCreatedOut(TokenOut):
    secret = serializers.CharField()

    class Meta(TokenOut.Meta):
        fields = [*TokenOut.Meta.fields, "secret"]


class TokenIn(StrictSerializer):
    name = serializers.CharField(max_length=100)
    expires_in_days = serializers.IntegerField(min_value=1, max_value=services.MAX_TOKEN_DAYS, default=90)
    team = serializers.SlugField(max_length=64, required=False, allow_null=True)
    owner = serializers.CharField(max_length=150, required=False,
                                  help_text="Another user (a service account); needs manage_tokens.")


class TokenListView(generics.ListAPIView):
    """One's tokens (everyone's for token managers and auditors); create a token (shown once)."""

    serializer_class = TokenOut
    queryset = ApiToken.objects.none()

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return self.queryset
        return selectors.token_list(principal=Principal.from_request(self.request))


    @extend_schema(request=TokenIn, responses={201: TokenCreatedOut})
    def post(self, request: Request) -> Response:
        principal = Principal.from_request(request)
        data = TokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        owner = request.user
        if data.validated_data.get("owner"):
            owner = _user_by_name(principal, data.validated_data["owner"]) \
                if data.validated_data["owner"] != request.user.get_username() else request.user
        team = None
        if data.validated_data.get("team"):
            team = Team.objects.filter(slug=data.validated_data["team"]).first()
            if team is None:
                raise NotFound(f"No team {data.validated_data['team']!r}.", code="team_not_found")
        token, secret = services.token_create(actor=principal, user=owner, name=data.validated_data["name"],
                                              expires_in_days=data.validated_data["expires_in_days"], team=team)
        body = TokenOut(token).data | {"secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetailView(APIView):
    @extend_schema(responses=TokenOut)
    def get(self, request: Request, pk: int) -> Response:
        return Response(TokenOut(selectors.token_get(principal=Principal.from_request(request), pk=pk)).data)


class TokenRevokeView(APIView):
    """Revoke a token at once."""

    @extend_schema(request=None, responses=TokenOut)
    def post(self, request: Request, pk: int) -> Response:
        principal = Principal.from_request(request)
        token = selectors.token_get(principal=principal, pk=pk)
        services.token_revoke(actor=principal, token=token)
        token.refresh_from_db()
        return Response(TokenOut(token).data)
