"""Every portal URL, for every caller, with GET and POST: who may read, who may act, who is refused.

Like ``tests/governance/test_authorization_matrix.py`` for the API (which skips the admin's URL
names): a portal page added without an expectation here fails ``test_every_portal_url_is_covered``.
Sessions come from ``force_login`` and posts carry no CSRF token (the test client does not check
it; ``test_security.py`` does). A post with an empty form gets past authorization and answers the
status listed (usually 400); a role that may not act gets 403 (recorded in the audit log); people
whose roles do not include the portal, and anonymous callers, are sent to the sign-in page (302).
"""
from __future__ import annotations

from typing import Any, Callable

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.factories import ALL_ROLES, SYSTEM, Cast
from tests.portal.conftest import add_portal_viewer

PORTAL_VIEWER = "alpha_portal_viewer"  # a viewer of alpha given use_portal: the portal narrows to alpha
WHO = ["anonymous", *ALL_ROLES, "beta_viewer", PORTAL_VIEWER]
PORTAL = {"approver", "compliance_officer", "auditor", "administrator", PORTAL_VIEWER}
DECIDERS = {"approver", "compliance_officer", "administrator"}
LOG_READERS = {"compliance_officer", "auditor", "administrator"}
POLICY_EDITORS = {"compliance_officer", "administrator"}
ADMINS = {"administrator"}


def rule(ok: int, allowed: set[str], *, refused: int = 403, overrides: dict[str, int] | None = None) -> dict[str, int]:
    """``ok`` for ``allowed``, ``refused`` for other portal users, 302 (to sign in) for everyone else."""
    out = {who: (ok if who in allowed else refused) if who in PORTAL else 302 for who in WHO}
    out.update(overrides or {})
    return out


ALL = rule(200, PORTAL)
NOT_ALLOWED = rule(405, PORTAL)  # the method is not served (portal users); others still go to sign in

# url name -> method -> caller -> status
EXPECT: dict[str, dict[str, dict[str, int]]] = {
    "admin:index": {"get": ALL, "post": NOT_ALLOWED},
    "admin:password_change": {"get": ALL, "post": rule(400, PORTAL)},
    "admin:portal-models": {"get": ALL, "post": NOT_ALLOWED},
    "admin:portal-model": {"get": ALL, "post": NOT_ALLOWED},
    "admin:portal-promotions": {"get": ALL, "post": NOT_ALLOWED},
    "admin:portal-promotion": {"get": ALL, "post": NOT_ALLOWED},
    # the cast's promotion is closed (blocked): past authorization, approving answers 409
    "admin:portal-promotion-approve": {"get": NOT_ALLOWED, "post": rule(409, DECIDERS)},
    "admin:portal-promotion-reject": {"get": NOT_ALLOWED, "post": rule(400, DECIDERS)},  # a comment is required
    "admin:portal-audit": {"get": ALL, "post": NOT_ALLOWED},
    "admin:portal-audit-event": {"get": ALL, "post": NOT_ALLOWED},  # an event about alpha-model
    "admin:portal-verifications": {"get": rule(200, LOG_READERS), "post": rule(302, LOG_READERS)},
    "admin:portal-verification": {"get": rule(200, LOG_READERS), "post": NOT_ALLOWED},
    "admin:portal-policies": {"get": ALL, "post": NOT_ALLOWED},
    "admin:portal-policy": {"get": ALL, "post": NOT_ALLOWED},
    "admin:portal-policy-publish": {"get": rule(200, POLICY_EDITORS), "post": rule(400, POLICY_EDITORS)},
    "admin:portal-waivers": {"get": ALL, "post": NOT_ALLOWED},
    "admin:portal-waiver-grant": {"get": NOT_ALLOWED, "post": rule(400, POLICY_EDITORS)},
    "admin:portal-waiver-revoke": {"get": NOT_ALLOWED, "post": rule(302, POLICY_EDITORS)},
    "admin:portal-packs": {"get": rule(200, LOG_READERS), "post": rule(400, LOG_READERS)},
    "admin:portal-pack-verify": {"get": rule(200, LOG_READERS), "post": rule(400, LOG_READERS)},
    "admin:portal-pack": {"get": rule(200, LOG_READERS), "post": NOT_ALLOWED},
    # the pack failed: past authorization, there is nothing to download (409)
    "admin:portal-pack-download": {"get": rule(409, LOG_READERS), "post": NOT_ALLOWED},
    "admin:portal-alert-resolve": {"get": NOT_ALLOWED, "post": rule(302, POLICY_EDITORS)},
    "admin:portal-access": {"get": rule(200, LOG_READERS | ADMINS), "post": NOT_ALLOWED},
    # the approver has no authenticator to reset: past authorization, 404
    "admin:portal-otp-reset": {"get": NOT_ALLOWED, "post": rule(404, ADMINS)},
    "admin:portal-otp-enrol": {"get": ALL, "post": rule(400, PORTAL)},
    # nobody in the cast has an authenticator yet: verifying sends them to enrol
    "admin:portal-otp-verify": {"get": rule(302, PORTAL), "post": rule(302, PORTAL)},
}


def _portal_names() -> set[str]:
    """The portal's own pages: every admin URL name starting with "portal-", plus the pages it replaces."""
    names = set()

    def walk(resolver: URLResolver, ns: str) -> None:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                walk(entry, f"{ns}{entry.namespace}:" if entry.namespace else ns)
            elif isinstance(entry, URLPattern) and entry.name and ns == "admin:" and entry.name.startswith("portal-"):
                names.add(f"admin:{entry.name}")

    walk(get_resolver(), "")
    return names | {"admin:index", "admin:password_change"}


def test_every_portal_url_is_covered() -> None:
    names = _portal_names()
    assert names == set(EXPECT), f"missing: {sorted(names - set(EXPECT))}; stale: {sorted(set(EXPECT) - names)}"
    for name in EXPECT:
        assert set(EXPECT[name]) == {"get", "post"} and all(set(v) == set(WHO) for v in EXPECT[name].values()), name


def _url(name: str, cast: Cast) -> str:
    from audits.models import AuditEvent
    from audits.models import AuditVerification
    from django.utils import timezone
    from governance.models import PromotionRequest, Waiver

    def verification() -> int:
        run = AuditVerification.objects.first() or AuditVerification.objects.create(
            started_at=timezone.now(), finished_at=timezone.now(), size=1, ok=True)
        return run.pk

    def pack() -> int:
        from audits.packs.models import AuditPack

        row = AuditPack.objects.first() or AuditPack.objects.create(
            framework="soc2", period_start=timezone.now(), period_end=timezone.now(), status="failed",
            error_code="internal_error", error_message="for the matrix")
        return row.pk

    def alert() -> int:
        from audits.packs import services as packs
        from audits.packs.models import Alert

        row = Alert.objects.first() or packs.alert_raise(actor=SYSTEM, kind="audits.pack_schedule.failed",
                                                         title="Export failed", message="for the matrix")
        return row.pk

    def promotion() -> dict[str, int]:
        return {"pk": PromotionRequest.objects.get(version=cast.versions["alpha2"]).pk}

    kwargs: dict[str, Callable[[], dict[str, Any]]] = {
        "admin:portal-pack": lambda: {"pk": pack()},
        "admin:portal-pack-download": lambda: {"pk": pack()},
        "admin:portal-alert-resolve": lambda: {"pk": alert()},
        "admin:portal-model": lambda: {"name": "alpha-model"},
        "admin:portal-promotion": promotion,
        "admin:portal-promotion-approve": promotion,
        "admin:portal-promotion-reject": promotion,
        "admin:portal-audit-event": lambda: {"seq": AuditEvent.objects.get(
            action="registry.model.created", target_id=str(cast.models["alpha"].pk)).seq},
        "admin:portal-verification": lambda: {"pk": verification()},
        "admin:portal-policy": lambda: {"name": "critical-staging"},
        "admin:portal-waiver-revoke": lambda: {"pk": Waiver.objects.get(version=cast.versions["alpha2"]).pk},
        "admin:portal-otp-reset": lambda: {"pk": cast.users["approver"].pk},
    }
    return reverse(name, kwargs=kwargs[name]() if name in kwargs else {})


@pytest.mark.parametrize("who", WHO)
def test_portal_authorization(who: str, cast: Cast) -> None:
    """Every URL and method for one caller (one cast per caller: building it is the slow part)."""
    add_portal_viewer(cast)
    client = Client()
    if who != "anonymous":
        client.force_login(cast.users[who])
    wrong = []
    for name, methods in EXPECT.items():
        for method, expected_by_who in methods.items():
            url = _url(name, cast)
            response = client.post(url, {}) if method == "post" else client.get(url)
            expected = expected_by_who[who]
            if response.status_code != expected:
                wrong.append(f"{method.upper()} {url}: expected {expected}, got {response.status_code}: "
                             f"{response.content[:200]!r}")
            elif expected == 302 and who not in PORTAL and not response["Location"].startswith("/admin/login/"):
                wrong.append(f"{method.upper()} {url}: sent to {response['Location']}, not to sign in")
            elif expected == 403 and b"Not allowed" not in response.content:
                wrong.append(f"{method.upper()} {url}: 403 without the refusal page")
    assert not wrong, f"{who}:\n" + "\n".join(wrong)


def test_refusals_are_recorded_in_the_audit_log(cast: Cast, sequenced: Any) -> None:
    """A portal refusal is the service's: one ``security.access.denied`` event, as for the API."""
    import json

    from governance.models import PromotionRequest

    client = Client()
    client.force_login(cast.users["auditor"])
    before = len(sequenced())
    pk = PromotionRequest.objects.get(version=cast.versions["alpha2"]).pk
    assert client.post(reverse("admin:portal-promotion-approve", args=[pk]), {"comment": "x"}).status_code == 403
    events = sequenced()[before:]
    assert [e.action for e in events] == ["security.access.denied"]
    leaf = json.loads(bytes(events[0].leaf))
    assert leaf["actor"]["username"] == "auditor"
    assert leaf["payload"] == {"attempted": "governance.promotion.approved", "code": "permission_denied",
                               "capability": "approve_promotion"}
