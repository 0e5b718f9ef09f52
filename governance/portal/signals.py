"""Receivers: a lockout (django-axes) is audited; a sign-in starts the session's absolute clock."""
from __future__ import annotations

import time
from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from governance.portal import services

SESSION_LOGIN_AT = "portal_login_at"
SESSION_SEEN_AT = "portal_seen_at"


@receiver(user_locked_out, dispatch_uid="govaudit_login_locked_out")
def _locked_out(sender: Any, request: Any = None, username: str | None = None, ip_address: str | None = None,
                **kwargs: Any) -> None:
    services.login_record_lockout(username=str(username or ""), ip=ip_address)


@receiver(user_logged_in, dispatch_uid="govaudit_session_clock")
def _session_clock(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if session is not None:
        now = int(time.time())
        session[SESSION_LOGIN_AT] = now
        session[SESSION_SEEN_AT] = now
