"""System checks: the roles that must use a second factor must exist."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from governance.roles import ROLES


@checks.register(checks.Tags.security)
def otp_required_roles_exist(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    unknown = sorted(set(getattr(settings, "GOVAUDIT_OTP_REQUIRED_ROLES", [])) - set(ROLES))
    if unknown:
        return [checks.Error(f"GOVAUDIT_OTP_REQUIRED_ROLES names unknown roles {unknown}",
                             hint=f"Use role names from governance.roles: {', '.join(ROLES)}.", id="portal.E001")]
    return []
