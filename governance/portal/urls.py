"""The portal's own pages, mounted by ``PortalSite.get_urls`` under /admin/portal/ (names ``admin:portal-*``).

Each is wrapped by ``admin_view``: signed in with a role that grants ``use_portal``, CSRF-checked,
never cached. ``tests/portal/test_matrix.py`` holds every one of these names to an expectation
for every role.
"""
from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path

from governance.portal.views import access, account, auditlog, models, packs, policies, promotions, waivers


def portal_urls(site: Any) -> list[URLPattern]:
    v = site.admin_view
    return [
        path("portal/models/", v(models.model_list), name="portal-models"),
        path("portal/models/<str:name>/", v(models.model_detail), name="portal-model"),
        path("portal/promotions/", v(promotions.promotion_list), name="portal-promotions"),
        path("portal/promotions/<int:pk>/", v(promotions.promotion_detail), name="portal-promotion"),
        path("portal/promotions/<int:pk>/approve/", v(promotions.promotion_approve), name="portal-promotion-approve"),
        path("portal/promotions/<int:pk>/reject/", v(promotions.promotion_reject), name="portal-promotion-reject"),
        path("portal/audit/", v(auditlog.event_list), name="portal-audit"),
        path("portal/audit/events/<int:seq>/", v(auditlog.event_detail), name="portal-audit-event"),
        path("portal/audit/verifications/", v(auditlog.verification_list), name="portal-verifications"),
        path("portal/audit/verifications/<int:pk>/", v(auditlog.verification_detail), name="portal-verification"),
        path("portal/policies/", v(policies.policy_list), name="portal-policies"),
        path("portal/policy-publish/", v(policies.policy_publish), name="portal-policy-publish"),
        path("portal/policies/<slug:name>/", v(policies.policy_detail), name="portal-policy"),
        path("portal/waivers/", v(waivers.waiver_list), name="portal-waivers"),
        path("portal/waivers/grant/", v(waivers.waiver_grant), name="portal-waiver-grant"),
        path("portal/waivers/<int:pk>/revoke/", v(waivers.waiver_revoke), name="portal-waiver-revoke"),
        path("portal/packs/", v(packs.pack_list), name="portal-packs"),
        path("portal/packs/verify/", v(packs.pack_verify), name="portal-pack-verify"),
        path("portal/packs/<int:pk>/", v(packs.pack_detail), name="portal-pack"),
        path("portal/packs/<int:pk>/download/", v(packs.pack_download), name="portal-pack-download"),
        path("portal/alerts/<int:pk>/resolve/", v(packs.alert_resolve), name="portal-alert-resolve"),
        path("portal/access/", v(access.access_review), name="portal-access"),
        path("portal/access/people/<int:pk>/otp-reset/", v(account.otp_reset), name="portal-otp-reset"),
        path("portal/account/otp/enrol/", v(account.otp_enrol), name="portal-otp-enrol"),
        path("portal/account/otp/verify/", v(account.otp_verify), name="portal-otp-verify"),
    ]
