"""Tokens (hash only, expiry, revocation, last use, scope) and sign-ins, with their audit events."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from governance import services as gov
from governance.errors import ValidationFailed
from governance.models import ApiToken
from tests.factories import SYSTEM, Cast


def _bearer(secret: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


def test_token_is_stored_only_as_a_hash_and_shown_once(cast: Cast, client_for: Any, sequenced: Any) -> None:
    session = APIClient()
    session.force_authenticate(cast.users["viewer"])
    r = session.post("/api/v1/tokens/", {"name": "laptop", "expires_in_days": 7}, format="json")
    assert r.status_code == 201
    secret = r.json()["secret"]
    token = ApiToken.objects.get(pk=r.json()["id"])
    assert secret not in (token.token_hash, token.prefix) and secret.startswith(token.prefix)
    assert all(secret not in str(getattr(token, f.attname)) for f in ApiToken._meta.fields)
    listed = client_for("viewer").get(f"/api/v1/tokens/{token.pk}/").json()
    assert "secret" not in listed
    assert _bearer(secret).get("/api/v1/me/").json()["username"] == "viewer"
    events = [e for e in sequenced() if e.action == "governance.token.created" and e.target_id == str(token.pk)]
    assert len(events) == 1 and secret.encode() not in bytes(events[0].leaf)


def test_revoked_and_expired_tokens_answer_401(cast: Cast, sequenced: Any) -> None:
    token, secret = gov.token_create(actor=SYSTEM, user=cast.users["viewer"], name="t", expires_in_days=1)
    api = _bearer(secret)
    assert api.get("/api/v1/models/").status_code == 200
    gov.token_revoke(actor=SYSTEM, token=token)
    r = api.get("/api/v1/models/")
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    token2, secret2 = gov.token_create(actor=SYSTEM, user=cast.users["viewer"], name="t2", expires_in_days=1)
    ApiToken.objects.filter(pk=token2.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _bearer(secret2).get("/api/v1/models/").status_code == 401
    assert _bearer("gva_not-a-real-token").get("/api/v1/models/").status_code == 401
    assert APIClient().get("/api/v1/models/").status_code == 401
    reasons = [e for e in sequenced() if e.action == "security.token.rejected"]
    assert len(reasons) == 3


def test_last_used_is_recorded(cast: Cast) -> None:
    token, secret = gov.token_create(actor=SYSTEM, user=cast.users["viewer"], name="t")
    assert token.last_used_at is None
    _bearer(secret).get("/api/v1/me/")
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_tokens_cannot_mint_tokens(cast: Cast, client_for: Any) -> None:
    r = client_for("viewer").post("/api/v1/tokens/", {"name": "child"}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "token_cannot_mint"


def test_session_user_creates_and_revokes_own_token(cast: Cast) -> None:
    api = APIClient()
    api.force_authenticate(cast.users["viewer"])
    r = api.post("/api/v1/tokens/", {"name": "ci", "team": "alpha"}, format="json")
    assert r.status_code == 201 and r.json()["team"] == "alpha"
    assert api.post(f"/api/v1/tokens/{r.json()['id']}/revoke/").status_code == 200
    again = api.post(f"/api/v1/tokens/{r.json()['id']}/revoke/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_revoked"
    bad_scope = api.post("/api/v1/tokens/", {"name": "x", "team": "beta"}, format="json")
    assert bad_scope.status_code == 400 and bad_scope.json()["error"]["code"] == "invalid_team_scope"
    too_long = api.post("/api/v1/tokens/", {"name": "x", "expires_in_days": 1000}, format="json")
    assert too_long.status_code == 400


def test_service_account_token_needs_manage_tokens(cast: Cast) -> None:
    with pytest.raises(Exception) as info:
        gov.token_create(actor=gov.Principal(user=cast.users["ml_engineer"]), user=cast.users["pipeline"], name="x")
    assert getattr(info.value, "status_code", None) == 403
    token, _ = gov.token_create(actor=gov.Principal(user=cast.users["administrator"]), user=cast.users["pipeline"],
                                name="ci")
    assert token.user == cast.users["pipeline"]


def test_logins_are_audited(cast: Cast, sequenced: Any) -> None:
    gov.user_create(actor=SYSTEM, username="olivia", password="correct horse battery", roles=["compliance_officer"])
    client = Client()
    assert not client.login(username="olivia", password="wrong password here")
    assert client.login(username="olivia", password="correct horse battery")
    actions = [(e.action, e.actor_name) for e in sequenced() if e.action.startswith("security.login")]
    assert actions == [("security.login.failed", ""), ("security.login.succeeded", "olivia")]
    assert b"wrong password" not in b"".join(bytes(e.leaf) for e in sequenced())


def test_role_changes_set_portal_access(cast: Cast) -> None:
    user = cast.users["viewer"]
    assert not user.is_staff
    gov.role_grant(actor=SYSTEM, user=user, role="auditor")
    user.refresh_from_db()
    assert user.is_staff
    gov.role_revoke(actor=SYSTEM, user=user, role="auditor")
    user.refresh_from_db()
    assert not user.is_staff
    with pytest.raises(ValidationFailed):
        gov.role_grant(actor=SYSTEM, user=user, role="superhero")


def test_weak_passwords_are_refused(db: Any) -> None:
    with pytest.raises(ValidationFailed) as info:
        gov.user_create(actor=SYSTEM, username="bob", password="password")
    assert info.value.code == "weak_password"


def test_api_user_and_role_management(cast: Cast, client_for: Any) -> None:
    admin = client_for("administrator")
    r = admin.post("/api/v1/users/", {"username": "svc-ci", "roles": ["pipeline"], "teams": ["beta"]}, format="json")
    assert r.status_code == 201 and r.json() == {"username": "svc-ci", "email": "", "roles": ["pipeline"],
                                                  "teams": ["beta"]}
    assert admin.post("/api/v1/users/svc-ci/roles/", {"role": "viewer"}, format="json").json()["roles"] == \
        ["pipeline", "viewer"]
    dup = admin.post("/api/v1/users/svc-ci/roles/", {"role": "viewer"}, format="json")
    assert dup.status_code == 409
    assert admin.delete("/api/v1/users/svc-ci/roles/viewer/").json()["roles"] == ["pipeline"]
    assert admin.post("/api/v1/teams/alpha/members/", {"username": "svc-ci"}, format="json").status_code == 204
    assert admin.delete("/api/v1/teams/alpha/members/svc-ci/").status_code == 204
    assert admin.delete("/api/v1/teams/alpha/members/svc-ci/").status_code == 404
    assert admin.post("/api/v1/users/", {"username": "svc-ci"}, format="json").status_code == 409
    assert admin.post("/api/v1/teams/", {"name": "Gamma"}, format="json").json()["slug"] == "gamma"
