"""Walk every URL pattern for every role; an endpoint without an expectation fails the suite.

Write requests carry an empty body: a role that may act gets past authorization and answers the
status listed (usually 400, "tell me more"); a role that may not gets 403, an object it cannot see
404, and an anonymous caller 401. So no endpoint can be added without deciding who may use it.
"""
from __future__ import annotations

from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.factories import ALL_ROLES, Cast

WHO = ["anonymous", *ALL_ROLES, "beta_viewer"]
EVERYONE = set(WHO) - {"anonymous"}
SEES_ALPHA = set(ALL_ROLES)  # scoped roles are in alpha; global roles see all; beta_viewer does not
ADMIN = {"administrator"}


def rule(ok: int, allowed: set[str], *, hidden: int = 404, hidden_from: set[str] | None = None,
         overrides: dict[str, int] | None = None, public: bool = False) -> dict[str, int]:
    """Expected status per caller: ``ok`` for allowed, 404 for those the object is hidden from, else 403."""
    out = {}
    for who in WHO:
        if who == "anonymous" and not public:
            out[who] = 401
        elif who in allowed or public:
            out[who] = ok
        elif hidden_from and who in hidden_from:
            out[who] = hidden
        else:
            out[who] = 403
    out.update(overrides or {})
    return out


R_VIEW_ALPHA = rule(200, SEES_ALPHA, hidden_from={"beta_viewer"})
AUDIT_READERS = {"compliance_officer", "auditor", "administrator"}

# url name -> method -> expected status per caller
EXPECT: dict[str, dict[str, dict[str, int]]] = {
    "healthz": {"get": rule(200, EVERYONE, public=True)},
    "schema": {"get": rule(200, EVERYONE, public=True)},
    "api-docs": {"get": rule(200, EVERYONE, public=True)},
    "governance:me": {"get": rule(200, EVERYONE)},
    "governance:team-list": {"get": rule(200, EVERYONE), "post": rule(400, ADMIN)},
    "governance:team-detail": {"get": rule(200, SEES_ALPHA, hidden_from={"beta_viewer"})},
    "governance:team-members": {"post": rule(400, ADMIN)},
    "governance:team-member": {"delete": rule(204, ADMIN)},
    "governance:user-list": {"post": rule(400, ADMIN)},
    "governance:user-roles": {"post": rule(400, ADMIN)},
    "governance:user-role": {"delete": rule(200, ADMIN)},
    "governance:token-list": {"get": rule(200, EVERYONE), "post": rule(400, EVERYONE)},
    # the token of user "viewer": its owner, token managers and access reviewers see it
    "governance:token-detail": {"get": rule(200, {"viewer", "administrator", "compliance_officer", "auditor"},
                                            hidden_from=EVERYONE)},
    "governance:token-revoke": {"post": rule(200, {"viewer", "administrator"},
                                             hidden_from=EVERYONE - {"compliance_officer", "auditor"})},
    "registry:model-list": {"get": rule(200, EVERYONE),
                            "post": rule(400, {"ml_engineer", "pipeline", "administrator"})},
    "registry:model-detail": {
        "get": R_VIEW_ALPHA,
        "patch": rule(200, {"ml_engineer", "administrator"}),
        "delete": rule(409, {"ml_engineer", "administrator"}),  # it has versions: archive instead
    },
    "registry:model-archive": {"post": rule(409, {"ml_engineer", "administrator"})},  # a version is in production
    "registry:version-list": {
        "get": R_VIEW_ALPHA,
        "post": rule(400, {"data_scientist", "ml_engineer", "pipeline", "administrator"}),
    },
    "registry:version-detail": {
        "get": R_VIEW_ALPHA,
        "patch": rule(200, {"data_scientist", "ml_engineer", "administrator"}),
    },
    "registry:stages": {"get": R_VIEW_ALPHA},
    "registry:stage-history": {"get": R_VIEW_ALPHA},
    "registry:dataset-list": {"get": rule(200, EVERYONE),
                              "post": rule(400, {"data_scientist", "ml_engineer", "pipeline", "administrator"})},
    "registry:dataset-detail": {"get": R_VIEW_ALPHA},
    "governance:policy-list": {"get": rule(200, EVERYONE), "post": rule(400, {"compliance_officer", "administrator"})},
    "governance:policy-detail": {"get": rule(200, EVERYONE)},
    "governance:version-promotions": {"get": R_VIEW_ALPHA,
                                      "post": rule(400, {"ml_engineer", "pipeline", "administrator"})},
    "governance:version-waivers": {"get": R_VIEW_ALPHA, "post": rule(400, {"compliance_officer", "administrator"})},
    "governance:stage-rollback": {"post": rule(400, {"ml_engineer", "pipeline", "administrator"})},
    "governance:promotion-list": {"get": rule(200, EVERYONE)},
    "governance:promotion-detail": {"get": R_VIEW_ALPHA},
    # the cast's promotion is closed (blocked): past authorization, approving answers 409
    "governance:promotion-approve": {"post": rule(409, {"approver", "compliance_officer", "administrator"})},
    "governance:promotion-reject": {"post": rule(400, {"approver", "compliance_officer", "administrator"})},
    "governance:promotion-cancel": {"post": rule(409, {"ml_engineer", "pipeline", "administrator"})},
    "governance:waiver-revoke": {"post": rule(200, {"compliance_officer", "administrator"})},
    "governance:webhook-list": {"get": rule(200, {"compliance_officer", "administrator"}),
                                "post": rule(400, {"compliance_officer", "administrator"})},
    "governance:webhook-detail": {"get": rule(200, {"compliance_officer", "administrator"}),
                                  "patch": rule(400, {"compliance_officer", "administrator"}),  # nothing to change
                                  "delete": rule(204, {"compliance_officer", "administrator"})},
    "governance:webhook-deliveries": {"get": rule(200, {"compliance_officer", "administrator"})},
    # no such delivery: past authorization, the managers get its 404
    "governance:webhook-redeliver": {"post": rule(404, {"compliance_officer", "administrator"})},
    "monitoring:dataset-upload": {"post": rule(415,  # JSON to a multipart endpoint, past authorization
                                               {"data_scientist", "ml_engineer", "pipeline", "administrator"})},
    "monitoring:dataset-register-file": {
        "post": rule(400, {"data_scientist", "ml_engineer", "pipeline", "administrator"})},
    "monitoring:report-list": {"get": R_VIEW_ALPHA,
                               "post": rule(400, {"data_scientist", "ml_engineer", "pipeline", "administrator"})},
    "monitoring:report-detail": {"get": R_VIEW_ALPHA},
    "audits:keys": {"get": rule(200, EVERYONE, public=True)},
    "audits:checkpoint": {"get": rule(200, EVERYONE, public=True)},
    "audits:event-list": {"get": rule(200, EVERYONE)},
    "audits:event-detail": {"get": R_VIEW_ALPHA},  # an event about alpha-model
    "audits:inclusion-proof": {"get": rule(400, AUDIT_READERS)},  # no index given: past authorization
    "audits:consistency-proof": {"get": rule(400, AUDIT_READERS)},
    "audits:export": {"get": rule(200, AUDIT_READERS)},
    "audits:verify": {"get": rule(200, AUDIT_READERS), "post": rule(400, AUDIT_READERS)},
    "audits:pack-list": {"get": rule(200, AUDIT_READERS), "post": rule(400, AUDIT_READERS)},
    "audits:pack-detail": {"get": rule(200, AUDIT_READERS)},
    "audits:pack-download": {"get": rule(409, AUDIT_READERS)},  # the cast's pack is still queued
    "audits:pack-verify": {"post": rule(415, AUDIT_READERS)},  # JSON to a multipart endpoint, past authorization
}

METHODS = ["get", "post", "put", "patch", "delete"]


def _walk(resolver: URLResolver, prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            found += _walk(entry, ns)
        elif isinstance(entry, URLPattern) and entry.name:
            found.append((f"{prefix}{entry.name}", entry.callback))
    return found


def _api_patterns() -> list[tuple[str, Any]]:
    return [(name, cb) for name, cb in _walk(get_resolver()) if not name.startswith("admin:")]


def test_every_endpoint_has_an_expectation() -> None:
    names = {name for name, _ in _api_patterns()}
    missing = sorted(names - set(EXPECT))
    assert not missing, f"endpoints without an authorization expectation: {missing}"
    stale = sorted(set(EXPECT) - names)
    assert not stale, f"expectations for endpoints that no longer exist: {stale}"


def test_every_method_has_an_expectation() -> None:
    """Each HTTP method a view implements must be listed; unlisted ones must answer 405."""
    for name, callback in _api_patterns():
        view = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
        if view is None:
            continue
        implemented = {m for m in METHODS if hasattr(view, m)}
        missing = implemented - set(EXPECT[name])
        assert not missing, f"{name}: methods {sorted(missing)} have no expectation"


def _alpha_event_seq(cast: Cast) -> int:
    from audits.models import AuditEvent

    return AuditEvent.objects.get(action="registry.model.created", target_id=str(cast.models["alpha"].pk)).seq


def _cast_promotion(cast: Cast) -> int:
    from governance.models import PromotionRequest

    return PromotionRequest.objects.get(version=cast.versions["alpha2"]).pk


def _cast_report(cast: Cast) -> int:
    from monitoring.models import Report

    report, _ = Report.objects.get_or_create(version=cast.versions["alpha1"], kind="validation",
                                             defaults={"inputs_digest": "0" * 64})
    return report.pk


def _cast_pack(cast: Cast) -> int:
    from django.utils import timezone

    from audits.packs.models import AuditPack

    pack, _ = AuditPack.objects.get_or_create(framework="soc2", defaults={
        "period_start": timezone.now(), "period_end": timezone.now()})
    return pack.pk


def _cast_waiver(cast: Cast) -> int:
    from governance.models import Waiver

    return Waiver.objects.get(version=cast.versions["alpha2"]).pk


def _cast_webhook(cast: Cast) -> int:
    from governance import notifications
    from governance.models import WebhookEndpoint
    from tests.factories import SYSTEM

    endpoint = WebhookEndpoint.objects.first() or notifications.webhook_create(
        actor=SYSTEM, name="matrix", url="https://hooks.example.org/in", events=["promotion.promoted"])[0]
    return endpoint.pk


def _url(name: str, cast: Cast) -> str:
    kwargs_by_name = {
        "governance:team-detail": {"slug": "alpha"},
        "governance:team-members": {"slug": "alpha"},
        "governance:team-member": {"slug": "alpha", "username": "viewer"},
        "governance:user-roles": {"username": "viewer"},
        "governance:user-role": {"username": "viewer", "role": "viewer"},
        "governance:token-detail": {"pk": cast.users["viewer"].api_tokens.first().pk},
        "governance:token-revoke": {"pk": cast.users["viewer"].api_tokens.first().pk},
        "registry:model-detail": {"name": "alpha-model"},
        "registry:model-archive": {"name": "alpha-model"},
        "registry:version-list": {"name": "alpha-model"},
        "registry:version-detail": {"name": "alpha-model", "number": 1},
        "registry:stages": {"name": "alpha-model"},
        "registry:stage-history": {"name": "alpha-model"},
        "registry:dataset-detail": {"pk": cast.datasets["alpha"].pk},
        "audits:event-detail": {"seq": _alpha_event_seq(cast)},
        "governance:policy-detail": {"name": "critical-staging"},
        "monitoring:report-list": {"name": "alpha-model", "number": 1},
        "monitoring:report-detail": {"pk": _cast_report(cast)},
        "governance:version-promotions": {"name": "alpha-model", "number": 2},
        "governance:version-waivers": {"name": "alpha-model", "number": 2},
        "governance:stage-rollback": {"name": "alpha-model", "stage": "production"},
        "governance:promotion-detail": {"pk": _cast_promotion(cast)},
        "governance:promotion-approve": {"pk": _cast_promotion(cast)},
        "governance:promotion-reject": {"pk": _cast_promotion(cast)},
        "governance:promotion-cancel": {"pk": _cast_promotion(cast)},
        "governance:waiver-revoke": {"pk": _cast_waiver(cast)},
        "audits:pack-detail": {"pk": _cast_pack(cast)},
        "audits:pack-download": {"pk": _cast_pack(cast)},
        "governance:webhook-detail": {"pk": _cast_webhook(cast)},
        "governance:webhook-deliveries": {"pk": _cast_webhook(cast)},
        "governance:webhook-redeliver": {"pk": _cast_webhook(cast), "delivery": 999_999},
    }
    return reverse(name, kwargs=kwargs_by_name.get(name, {}))


CASES = [(name, method, who) for name, methods in EXPECT.items() for method in methods for who in WHO]


@pytest.mark.parametrize(("name", "method", "who"), CASES, ids=[f"{n}-{m}-{w}" for n, m, w in CASES])
def test_authorization(name: str, method: str, who: str, cast: Cast, client_for: Any) -> None:
    client = client_for(who)
    url = _url(name, cast)
    kwargs = {"format": "json", "data": {}} if method in {"post", "patch", "put"} else {}
    response = getattr(client, method)(url, **kwargs)
    expected = EXPECT[name][method][who]
    assert response.status_code == expected, (
        f"{who} {method.upper()} {url}: expected {expected}, got {response.status_code}: "
        f"{getattr(response, 'content', b'')[:300]!r}")


def test_unlisted_methods_answer_405(cast: Cast, client_for: Any) -> None:
    response = client_for("administrator").put(reverse("registry:model-list"), {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


# --- The admin portal ----------------------------------------------------------------------------
PORTAL_ROLES = {"approver", "compliance_officer", "auditor", "administrator"}
# Admin pages some roles may edit (the admin calls the services): changelist url name -> editors.
ADMIN_EDITORS = {"admin:audits_packschedule_changelist": {"compliance_officer", "administrator"}}


def _admin_changelists() -> dict[str, set[str]]:
    """Each registered model's list page, and who may view it."""
    from django.contrib import admin

    out = {}
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in {"registry", "governance", "audits"}:
            continue
        cap = getattr(model_admin, "view_capability", "view_all_models")
        allowed = AUDIT_READERS if cap == "view_audit_log" else PORTAL_ROLES
        out[f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"] = allowed
    return out


def test_admin_registrations_are_read_only_for_governed_models() -> None:
    from django.contrib import admin

    from governance.admin_base import ReadOnlyAdmin

    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label in {"registry", "governance", "audits"}:
            assert isinstance(model_admin, ReadOnlyAdmin), f"{model.__name__} admin may write"


@pytest.mark.parametrize("who", ["anonymous", *ALL_ROLES, "beta_viewer"])
def test_admin_portal_access(who: str, cast: Cast) -> None:
    from django.test import Client

    client = Client()
    if who != "anonymous":
        client.force_login(cast.users[who])
    index = client.get("/admin/")
    assert index.status_code == (200 if who in PORTAL_ROLES else 302), who
    for url_name, allowed in _admin_changelists().items():
        response = client.get(reverse(url_name))
        if who not in PORTAL_ROLES:
            assert response.status_code == 302, (who, url_name)  # to the login page
        else:
            assert response.status_code == (200 if who in allowed else 403), (who, url_name)
        add = client.post(reverse(url_name.replace("_changelist", "_add")), {})
        if who in ADMIN_EDITORS.get(url_name, set()):
            assert add.status_code == 200, (who, url_name, add.status_code)  # the empty form comes back
        else:
            assert add.status_code in (302, 403), (who, url_name, add.status_code)
