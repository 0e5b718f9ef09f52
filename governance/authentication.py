"""``Authorization: Bearer <token>`` for pipelines and people."""
from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions

from governance import services


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """Looks the token up by its hash; expired, revoked or unknown tokens answer 401."""

    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0] != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send 'Authorization: Bearer <token>' with exactly one token.")
        token = services.token_authenticate(secret=parts[1])
        if token is None:
            raise exceptions.AuthenticationFailed(
                "This token is unknown, expired or revoked; create a new one with POST /api/v1/tokens/.")
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
