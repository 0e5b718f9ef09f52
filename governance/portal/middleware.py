"""Session rules for people signed in with a session: expiry, and the second factor when required.

* A session ends after ``GOVAUDIT_SESSION_IDLE_SECONDS`` without a request, and in any case
  ``SESSION_COOKIE_AGE`` after sign-in (saving the session on activity would otherwise extend it
  for ever).
* Someone who must use a second factor (a role in ``GOVAUDIT_OTP_REQUIRED_ROLES``, or an
  authenticator they enrolled) reaches nothing but sign-out and the enrol/verify pages until this
  session passed it, whatever the URL: portal pages redirect there, and the API, which also
  accepts the session cookie, answers 403.

Bearer-token requests carry no session and are not affected.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from governance.portal.signals import SESSION_LOGIN_AT, SESSION_SEEN_AT

# Pages a person who still owes a second factor may reach.
OTP_EXEMPT = {"admin:login", "admin:logout", "admin:portal-otp-enrol", "admin:portal-otp-verify", "healthz"}
# The last-seen time is written at most this often (each write is a session save).
_SEEN_RESOLUTION = 30


class PortalSessionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is not None and SESSION_LOGIN_AT in session and request.user.is_authenticated:
            now = int(time.time())
            idle = now - int(session.get(SESSION_SEEN_AT, 0))
            age = now - int(session[SESSION_LOGIN_AT])
            if idle > settings.GOVAUDIT_SESSION_IDLE_SECONDS or age > settings.SESSION_COOKIE_AGE:
                logout(request)
                messages.info(request, "Your session expired; sign in again.")
            elif idle >= _SEEN_RESOLUTION:
                session[SESSION_SEEN_AT] = now
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Any, view_args: Any,
                     view_kwargs: Any) -> HttpResponse | None:
        user = request.user
        if not user.is_authenticated:
            return None
        match = request.resolver_match
        if match is not None and match.view_name in OTP_EXEMPT:
            return None
        if user.is_verified():  # set by django_otp's middleware
            return None
        from governance.portal.services import otp_required_for

        if not otp_required_for(user):
            return None
        if request.path.startswith("/api/"):
            return JsonResponse({"error": {"code": "otp_required", "details": {},
                                           "message": "Your account must pass a second factor: sign in to the portal "
                                                      "and enter your authenticator code, or use an API token.",
                                           "request_id": getattr(request, "request_id", None)}}, status=403)
        from django_otp.plugins.otp_totp.models import TOTPDevice

        enrolled = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        target = reverse("admin:portal-otp-verify" if enrolled else "admin:portal-otp-enrol")
        return redirect(f"{target}?{urlencode({'next': request.get_full_path()})}")
