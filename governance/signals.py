"""Django only reports sign-ins as signals; these hand them straight to the services."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from governance import services


def _ip(request: Any) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


@receiver(user_logged_in, dispatch_uid="govaudit_login_ok")
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    services.login_record_success(user=user, ip=_ip(request))


@receiver(user_login_failed, dispatch_uid="govaudit_login_failed")
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    services.login_record_failure(username=str(credentials.get("username", "")), ip=_ip(request))
