"""One's own account: the second factor (enrol, verify), the password; an administrator's OTP reset.

Enrolment keeps the new secret in the session until the person proves, with a code, that their
app holds it; only then is the device saved (``otp_device_enrol``). The secret is shown as text
and as an ``otpauth://`` URI, which authenticator apps accept typed or pasted.
"""
from __future__ import annotations

import base64
import secrets
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.errors import DomainError, NotFound
from governance.portal import services
from governance.portal.views.base import page, portal_principal, portal_view

User = get_user_model()
SESSION_PENDING_KEY = "portal_otp_pending_key"


class TokenForm(forms.Form):
    token = forms.CharField(label="Code from your authenticator app", min_length=6, max_length=8,
                            widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                          "autofocus": True}))


class PasswordForm(forms.Form):
    old_password = forms.CharField(label="Current password", strip=False,
                                   widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    new_password1 = forms.CharField(label="New password", strip=False,
                                    widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    new_password2 = forms.CharField(label="New password again", strip=False,
                                    widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("new_password1") and data.get("new_password1") != data.get("new_password2"):
            raise forms.ValidationError("The two new passwords differ.")
        return data


def _next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()},
                                                     require_https=request.is_secure()):
        return candidate
    return reverse("admin:index")


def _otpauth_uri(user: Any, key_hex: str) -> tuple[str, str]:
    """The base32 secret (grouped for typing) and the provisioning URI for the pending key."""
    device = TOTPDevice(user=user, name="authenticator", key=key_hex)
    secret = base64.b32encode(bytes.fromhex(key_hex)).decode("ascii")
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)), device.config_url


@portal_view("GET", "POST")
def otp_enrol(request: HttpRequest) -> HttpResponse:
    principal = portal_principal(request)
    user = request.user
    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        return page(request, "portal/otp_enrol.html", {"enrolled": True}, title="Second factor")
    key_hex = request.session.get(SESSION_PENDING_KEY)
    if not key_hex:
        key_hex = secrets.token_hex(20)
        request.session[SESSION_PENDING_KEY] = key_hex
    form = TokenForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            device = services.otp_device_enrol(actor=principal, key_hex=key_hex, token=form.cleaned_data["token"])
        except DomainError as exc:
            form.add_error("token", exc.message)
            status = exc.status_code
        else:
            request.session.pop(SESSION_PENDING_KEY, None)
            otp_login(request, device)
            messages.success(request, "Your authenticator is set up; you will be asked for a code at every sign-in.")
            return redirect(_next_url(request))
    elif request.method == "POST":
        status = 400
    secret, uri = _otpauth_uri(user, key_hex)
    return page(request, "portal/otp_enrol.html", {
        "form": form, "secret": secret, "uri": uri, "required": services.otp_required_for(user),
        "next": _next_url(request),
    }, title="Set up a second factor", status=status)


@portal_view("GET", "POST")
def otp_verify(request: HttpRequest) -> HttpResponse:
    principal = portal_principal(request)
    user = request.user
    if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        return redirect(f"{reverse('admin:portal-otp-enrol')}?{urlencode({'next': _next_url(request)})}")
    form = TokenForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            device = services.otp_verify(actor=principal, token=form.cleaned_data["token"],
                                         ip=request.META.get("REMOTE_ADDR"))
        except DomainError as exc:
            form.add_error("token", exc.message)
            status = exc.status_code
        else:
            otp_login(request, device)
            return redirect(_next_url(request))
    elif request.method == "POST":
        status = 400
    return page(request, "portal/otp_verify.html", {"form": form, "next": _next_url(request)},
                title="Second factor", status=status)


@portal_view("POST")
def otp_reset(request: HttpRequest, pk: int) -> HttpResponse:
    principal = portal_principal(request)
    principal.require("manage_roles", action="security.otp.reset")
    user = User.objects.filter(pk=pk).first()
    if user is None:
        raise NotFound(f"No user {pk}.", code="user_not_found")
    services.otp_device_reset(actor=principal, user=user)
    messages.success(request, f"{user.get_username()}'s authenticator was removed; they set up a new one at their "
                              "next sign-in.")
    return redirect("admin:portal-access")


@portal_view("GET", "POST")
def password_change(request: HttpRequest) -> HttpResponse:
    principal = portal_principal(request)
    form = PasswordForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.password_change(actor=principal, old_password=form.cleaned_data["old_password"],
                                         new_password=form.cleaned_data["new_password1"])
            except DomainError as exc:
                form.add_error(None, exc.message)
                status = exc.status_code
            else:
                update_session_auth_hash(request, request.user)
                messages.success(request, "Your password was changed.")
                return redirect("admin:index")
        else:
            status = 400
    return page(request, "portal/password_change.html", {"form": form}, title="Change your password", status=status)
