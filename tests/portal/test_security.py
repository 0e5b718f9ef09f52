"""Portal security with Django's test client: CSRF, lockout, audited sign-ins, second factor, CSP, expiry."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.models import Approval, PromotionRequest
from tests.factories import Cast
from tests.portal.scenario import PASSWORD, set_password

LOGIN = "/admin/login/"


def _sign_in(client: Client, username: str, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post(f"{LOGIN}?next=/admin/", {"username": username, "password": password}, **extra)


def _actions(sequenced: Any, prefix: str) -> list[tuple[str, str]]:
    return [(e.action, e.actor_name) for e in sequenced() if e.action.startswith(prefix)]


# --- CSRF ------------------------------------------------------------------------------------------

def test_every_portal_form_carries_a_csrf_token_and_posts_without_one_are_refused(cast: Cast) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.users["administrator"])
    for url in ["/admin/portal/policy-publish/", "/admin/portal/waivers/", "/admin/portal/audit/verifications/",
                "/admin/portal/account/otp/enrol/", "/admin/password_change/"]:
        page = client.get(url).content.decode()
        assert page.count('method="post"') == page.count('name="csrfmiddlewaretoken"'), url
    req = PromotionRequest.objects.get(version=cast.versions["alpha2"])
    for url, data in [(reverse("admin:portal-promotion-reject", args=[req.pk]), {"comment": "no"}),
                      (reverse("admin:portal-waiver-revoke", args=[cast.versions["alpha2"].waivers.first().pk]), {}),
                      ("/admin/portal/audit/verifications/", {})]:
        response = client.post(url, data)
        assert response.status_code == 403 and b"CSRF" in response.content, url
    assert not Approval.objects.exists()
    assert cast.versions["alpha2"].waivers.first().revoked_at is None


# --- Sign-in: refused roles, audited failures, lockout -----------------------------------------------

def test_only_roles_with_portal_access_can_sign_in(cast: Cast) -> None:
    for who in ("viewer", "ml_engineer"):
        set_password(cast.users[who])
        response = _sign_in(Client(), who)
        assert response.status_code == 200 and b"Please enter the correct" in response.content, who
    set_password(cast.users["auditor"])
    response = _sign_in(Client(), "auditor")
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_failed_sign_ins_are_audited_and_repeated_ones_lock_the_account_out(cast: Cast, sequenced: Any,
                                                                           settings: Any) -> None:
    set_password(cast.users["approver"])
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(client, "approver", "wrong-password-1").status_code == 200
    locked = _sign_in(client, "approver", "wrong-password-1")  # the limit: locked out from now on
    assert locked.status_code == 429 and b"Sign-in locked" in locked.content
    # now even the right password is refused, without being checked
    again = _sign_in(client, "approver", PASSWORD)
    assert again.status_code == 429 and "_auth_user_id" not in client.session
    actions = _actions(sequenced, "security.login")
    assert actions.count(("security.login.failed", "")) == settings.AXES_FAILURE_LIMIT + 1
    # the lockout, and again for the attempt made while locked out (which restarts the wait)
    assert actions.count(("security.login.locked_out", "")) == 2
    assert ("security.login.succeeded", "approver") not in actions
    lockout = [e for e in sequenced() if e.action == "security.login.locked_out"][0]
    payload = json.loads(bytes(lockout.leaf))["payload"]
    assert payload["username"] == "approver" and payload["ip"] == "127.0.0.1"
    assert b"wrong-password" not in b"".join(bytes(e.leaf) for e in sequenced())
    # another address is not locked out (the lock is per name and address)
    assert _sign_in(Client(), "approver", REMOTE_ADDR="10.0.0.9").status_code == 302


def test_a_successful_sign_in_resets_the_failure_count(cast: Cast, settings: Any) -> None:
    set_password(cast.users["approver"])
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in(Client(), "approver", "wrong-password-2")
    assert _sign_in(Client(), "approver").status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(Client(), "approver", "wrong-password-2").status_code == 200
    assert _sign_in(Client(), "approver").status_code == 302


# --- Second factor ----------------------------------------------------------------------------------

def _code(key_hex: str) -> str:
    return f"{TOTP(bytes.fromhex(key_hex)).token():06d}"


def test_roles_that_must_use_a_second_factor_enrol_before_any_portal_page(cast: Cast, settings: Any,
                                                                          sequenced: Any) -> None:
    settings.GOVAUDIT_OTP_REQUIRED_ROLES = ["approver", "compliance_officer"]
    set_password(cast.users["approver"])
    client = Client()
    assert _sign_in(client, "approver").status_code == 302
    for url in ["/admin/", "/admin/portal/promotions/", "/admin/registry/registeredmodel/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/portal/account/otp/enrol/")
    # the API, which also takes the session, refuses too
    api = client.get("/api/v1/models/")
    assert api.status_code == 403 and api.json()["error"]["code"] == "otp_required"

    enrol = client.get("/admin/portal/account/otp/enrol/?next=/admin/portal/promotions/")
    assert enrol.status_code == 200 and b"otpauth://totp/govaudit%3Aapprover" in enrol.content
    key = client.session["portal_otp_pending_key"]
    wrong = client.post("/admin/portal/account/otp/enrol/", {"token": "123456", "next": "/admin/portal/promotions/"})
    assert wrong.status_code == 400 and not TOTPDevice.objects.exists()
    done = client.post("/admin/portal/account/otp/enrol/", {"token": _code(key), "next": "/admin/portal/promotions/"})
    assert done.status_code == 302 and done["Location"] == "/admin/portal/promotions/"
    assert client.get("/admin/").status_code == 200
    assert client.get("/api/v1/models/").status_code == 200

    # a new session: sign in, then the code; a wrong one is recorded and refused
    second = Client()
    _sign_in(second, "approver")
    assert second.get("/admin/")["Location"].startswith("/admin/portal/account/otp/verify/")
    assert second.post("/admin/portal/account/otp/verify/", {"token": "000000"}).status_code == 400
    TOTPDevice.objects.update(last_t=-1)  # the enrolment used this time step's code; allow it once more
    TOTPDevice.objects.update(throttling_failure_count=0, throttling_failure_timestamp=None)
    ok = second.post("/admin/portal/account/otp/verify/", {"token": _code(key), "next": "/admin/portal/models/"})
    assert ok.status_code == 302 and ok["Location"] == "/admin/portal/models/"
    assert second.get("/admin/").status_code == 200
    actions = [a for a, _ in _actions(sequenced, "security.otp")]
    assert actions == ["security.otp.enrolled", "security.otp.failed", "security.otp.verified"]


def test_other_roles_are_not_asked_for_a_second_factor_unless_they_set_one_up(cast: Cast, settings: Any) -> None:
    settings.GOVAUDIT_OTP_REQUIRED_ROLES = ["approver"]
    client = Client()
    client.force_login(cast.users["auditor"])
    assert client.get("/admin/").status_code == 200


def test_a_next_parameter_never_leaves_the_site(cast: Cast) -> None:
    client = Client()
    client.force_login(cast.users["auditor"])
    client.get("/admin/portal/account/otp/enrol/")
    key = client.session["portal_otp_pending_key"]
    response = client.post("/admin/portal/account/otp/enrol/", {"token": _code(key), "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_an_administrator_resets_a_lost_authenticator(cast: Cast, settings: Any) -> None:
    settings.GOVAUDIT_OTP_REQUIRED_ROLES = ["approver"]
    approver = Client()
    approver.force_login(cast.users["approver"])
    approver.get("/admin/portal/account/otp/enrol/")
    key = approver.session["portal_otp_pending_key"]
    approver.post("/admin/portal/account/otp/enrol/", {"token": _code(key)})
    assert TOTPDevice.objects.filter(user=cast.users["approver"]).exists()
    admin = Client()
    admin.force_login(cast.users["administrator"])
    review = admin.get("/admin/portal/access/").content.decode()
    assert reverse("admin:portal-otp-reset", args=[cast.users["approver"].pk]) in review
    assert admin.post(reverse("admin:portal-otp-reset", args=[cast.users["approver"].pk])).status_code == 302
    assert not TOTPDevice.objects.exists()


# --- Content-Security-Policy, cookies, expiry -------------------------------------------------------

def test_pages_carry_a_content_security_policy_without_inline_scripts(cast: Cast) -> None:
    client = Client()
    client.force_login(cast.users["compliance_officer"])
    for url in ["/admin/", "/admin/login/", f"/admin/portal/promotions/{PromotionRequest.objects.first().pk}/",
                "/api/v1/me/"]:
        response = client.get(url)
        policy = response["Content-Security-Policy"]
        directives = dict((d.split(" ", 1) + [""])[:2] for d in policy.split("; "))
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'", policy
        assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'", policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        body = response.content.decode()
        assert "<script>" not in body and " style=" not in body and "javascript:" not in body, url


def test_the_api_docs_load_their_script_from_our_own_origin(client: Any) -> None:
    page = client.get("/api/docs/").content.decode()
    assert "<script>" not in page  # the initialisation script is a separate file (CSP script-src 'self')
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    # Swagger UI's page keeps one inline <style>: allowed there, and only there; scripts never inline
    policy = client.get("/api/docs/")["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy and "script-src 'self';" in policy + ";"
    assert "unsafe-inline" not in client.get("/healthz")["Content-Security-Policy"]


def test_our_csp_middleware_writes_what_django_csps_writes(settings: Any) -> None:
    """The headers built once (``governance.middleware.CSPMiddleware``) are django-csp's own, case by case."""
    from csp.decorators import csp_exempt, csp_update
    from csp.exceptions import CSPNonceError
    from csp.middleware import CSPMiddleware as Theirs
    from django.http import HttpResponse
    from django.test import RequestFactory

    from governance.middleware import CSPMiddleware as Ours

    def responses() -> list[tuple[str, Any]]:
        plain = HttpResponse("x")
        updated = csp_update({"style-src": ["'unsafe-inline'"]})(lambda request: HttpResponse("y"))(None)
        exempt = csp_exempt()(lambda request: HttpResponse("z"))(None)
        preset = HttpResponse("w")
        preset["Content-Security-Policy"] = "default-src 'none'"
        return [("/api/v1/me/", plain), ("/api/docs/", updated), ("/x/", exempt), ("/y/", preset),
                ("/static/app.css", HttpResponse("s"))]

    def headers(middleware: Any, nonce: bool = False) -> list[dict[str, str]]:
        out = []
        for path, response in responses():
            request = RequestFactory().get(path)
            middleware.process_request(request)
            if nonce:
                str(request.csp_nonce)  # a template asked for a nonce
            middleware.process_response(request, response)
            out.append({k: v.replace(getattr(request, "_csp_nonce", "") or "\0", "NONCE")
                        for k, v in response.items() if k.startswith("Content-Security-Policy")})
        return out

    ours, theirs = Ours(lambda r: HttpResponse()), Theirs(lambda r: HttpResponse())
    assert headers(ours) == headers(theirs) and headers(ours, nonce=True) == headers(theirs, nonce=True)
    assert "Content-Security-Policy" in headers(ours)[0]
    # A changed policy is picked up at once, report-only and excluded prefixes included.
    settings.CONTENT_SECURITY_POLICY = {"EXCLUDE_URL_PREFIXES": ["/static/"],
                                        "DIRECTIVES": {"default-src": ["'self'"], "img-src": ["https://img.example"]}}
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    changed = headers(ours)
    assert changed == headers(theirs) and "img.example" in changed[0]["Content-Security-Policy"]
    assert changed[0]["Content-Security-Policy-Report-Only"] and "Content-Security-Policy" not in changed[4]
    request = RequestFactory().get("/")
    ours.process_request(request)
    ours.process_response(request, HttpResponse())
    with pytest.raises(CSPNonceError):
        str(request.csp_nonce)  # too late for a nonce: an error, as with django-csp


def test_sessions_expire_when_idle_and_after_their_lifetime(cast: Cast, settings: Any) -> None:
    set_password(cast.users["auditor"])
    client = Client()
    _sign_in(client, "auditor")
    assert client.get("/admin/").status_code == 200
    session = client.session
    session["portal_seen_at"] = int(time.time()) - settings.GOVAUDIT_SESSION_IDLE_SECONDS - 5
    session.save()
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)

    _sign_in(client, "auditor")
    session = client.session
    session["portal_login_at"] = int(time.time()) - settings.SESSION_COOKIE_AGE - 5
    session.save()
    assert client.get("/admin/").status_code == 302


def test_production_cookies_are_secure_and_host_only(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE"}}
    env.update(GOVAUDIT_ENV="production", SECRET_KEY="s" * 60, ALLOWED_HOSTS="gov.example.org",
               GOVAUDIT_DATA_DIR=str(tmp_path))
    code = ("from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
            "s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_NAME, s.CSRF_COOKIE_NAME, s.SESSION_EXPIRE_AT_BROWSER_CLOSE)")
    out = subprocess.run([sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
                         cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "True", "True", "__Host-sessionid", "__Host-csrftoken", "True"], out.stderr


@pytest.mark.parametrize("who", ["auditor", "approver"])
def test_password_change_goes_through_the_service_and_is_audited(who: str, cast: Cast, sequenced: Any) -> None:
    set_password(cast.users[who])
    client = Client()
    _sign_in(client, who)
    weak = client.post("/admin/password_change/", {"old_password": PASSWORD, "new_password1": "short",
                                                   "new_password2": "short"})
    assert weak.status_code == 400
    wrong = client.post("/admin/password_change/", {"old_password": "not-it", "new_password1": "a-new-long-pass-2026",
                                                    "new_password2": "a-new-long-pass-2026"})
    assert wrong.status_code == 400 and b"current password is not correct" in wrong.content
    done = client.post("/admin/password_change/", {"old_password": PASSWORD, "new_password1": "a-new-long-pass-2026",
                                                   "new_password2": "a-new-long-pass-2026"})
    assert done.status_code == 302
    assert client.get("/admin/").status_code == 200  # still signed in
    assert _actions(sequenced, "security.password") == [("security.password.changed", who)]


def test_authenticators_are_listed_for_administrators_and_never_edited_in_the_admin(cast: Cast) -> None:
    from governance.access import Principal
    from governance.portal import services

    key = "3132333435363738393031323334353637383930"
    device = services.otp_device_enrol(actor=Principal(user=cast.users["approver"]), key_hex=key, token=_code(key))
    admin = Client()
    admin.force_login(cast.users["administrator"])
    assert admin.get("/admin/otp_totp/totpdevice/").status_code == 200
    page = admin.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")
    assert page.status_code == 200 and device.key.encode() not in page.content
    assert admin.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin.get("/admin/otp_totp/totpdevice/add/").status_code == 403
    auditor = Client()
    auditor.force_login(cast.users["auditor"])
    assert auditor.get("/admin/otp_totp/totpdevice/").status_code == 403
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
