"""Teaches drf-spectacular about our bearer tokens, so the schema documents how to authenticate."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "governance.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "http", "scheme": "bearer",
                "description": "An API token: create one with POST /api/v1/tokens/ (signed in) or "
                               "`manage.py create_token`."}
