"""The portal in a real browser: headless Chromium through Playwright, against a live server.

The stories of issue #7: a compliance officer sees the dashboard and why a promotion is blocked;
an approver approves a pending one and sees the version in production; the audit log shows both
and verifies; an auditor reads everything and changes nothing, even with forged posts; a viewer
of team alpha never sees team beta's model. The tests also take the screenshots in docs/images/.
"""
from __future__ import annotations

from typing import Any, Callable

import pytest
import requests

from tests.factories import Cast
from tests.portal.conftest import DOCS_IMAGES, add_portal_viewer
from tests.portal.scenario import PASSWORD, Scenario, set_password

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _watch_console(page: Any) -> list[str]:
    """Collect console errors (a CSP violation is reported there) for the test to assert on."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def nav(page: Any, label: str) -> Any:
    """A link of the portal's navigation bar."""
    return page.locator("nav.portal-nav").get_by_role("link", name=label, exact=True)


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def test_compliance_officer_and_approver_do_their_work_and_the_log_shows_it(
        live_server: Any, cast: Cast, scenario: Scenario, new_page: Callable[[], Any], browser_thread: Any,
        settings: Any, tmp_path: Any) -> None:
    from audits.packs import schedules
    from governance.access import Principal

    expect = browser_thread.expect
    base = live_server.url
    for who in ("compliance_officer", "approver"):
        set_password(cast.users[who])
    settings.GOVAUDIT_PACK_EXPORT_ROOT = tmp_path / "exports"
    schedules.pack_schedule_create(actor=Principal(user=cast.users["compliance_officer"]), name="Monthly SOC 2 pack",
                                   framework="soc2", cron="0 3 1 * *", destination="soc2-monthly")

    # A compliance officer: the dashboard, then why beta-model's promotion is blocked.
    officer = new_page()
    errors = _watch_console(officer)
    sign_in(officer, base, "compliance_officer")
    expect(officer.locator("h1")).to_have_text("Dashboard")
    officer.click("#toggle-nav-sidebar")  # the admin's own sidebar toggle: wider pages for the screenshots
    expect(officer.locator("#models-by-stage")).to_contain_text("Medium")
    expect(officer.locator("#awaiting")).to_contain_text("alpha-model")
    blocked = officer.locator("#blocked")
    expect(blocked).to_contain_text("beta-model")
    expect(blocked).to_contain_text("validation_metric:accuracy>=0.99")
    expect(officer.locator("#log-state")).to_contain_text("Last signed checkpoint")
    expect(officer.locator("#scheduled")).to_contain_text("Monthly SOC 2 pack")
    officer.screenshot(path=str(DOCS_IMAGES / "portal-dashboard.png"), full_page=True)
    assert (DOCS_IMAGES / "portal-dashboard.png").stat().st_size > 10_000

    blocked.get_by_role("link", name=f"#{scenario.blocked.pk}").click()
    why = officer.locator("#why")
    expect(why).to_contain_text("accuracy is 0.7925 in validation report")
    expect(why).to_contain_text("the policy requires >= 0.99")
    expect(officer.locator("#reports svg.portal-chart")).to_have_count(1)  # its one validation report
    assert officer.locator("form.decision-form").count() == 0
    expect(officer.locator("#decide")).to_contain_text("it takes no more decisions")

    # ... and waives that gate for beta-model v2 (the waivers page offers the failing gates).
    nav(officer, "Waivers").click()
    officer.locator("ul.candidates a", has_text="accuracy>=0.99").click()
    expect(officer.locator("#id_gate")).to_have_value("validation_metric:accuracy>=0.99")
    officer.fill("#id_justification", "Accuracy target is being revised; interim exception agreed with risk.")
    officer.get_by_role("button", name="Grant waiver").click()
    expect(officer.locator(".messagelist")).to_contain_text("granted for beta-model v2")

    # The evidence of the pending promotion: gates, every chart drawn on the server as SVG.
    officer.goto(f"{base}/admin/portal/promotions/{scenario.pending.pk}/")
    expect(officer.locator("#gates")).to_contain_text("drift:share_drifted<=0.5")
    expect(officer.locator("svg.portal-chart")).to_have_count(1 + 3 + 1)  # validation, 3 bias rates, drift
    expect(officer.locator(f"#report-{scenario.reports[2].pk}")).to_contain_text("income")
    officer.screenshot(path=str(DOCS_IMAGES / "portal-evidence.png"), full_page=True)
    assert (DOCS_IMAGES / "portal-evidence.png").stat().st_size > 10_000

    # An approver approves it, with a comment, and sees v2 in production.
    approver = new_page()
    errors += _watch_console(approver)
    sign_in(approver, base, "approver")
    approver.locator("#awaiting").get_by_role("link", name=f"#{scenario.pending.pk}").click()
    approver.fill("#id_comment", "Evidence reviewed: metrics, bias and drift within policy.")
    approver.get_by_role("button", name="Approve").click()
    expect(approver.locator(".messagelist")).to_contain_text("it is now promoted")
    expect(approver.locator("#summary")).to_contain_text("production: v2")
    approver.get_by_role("link", name="alpha-model").first.click()
    expect(approver.locator("#stage-holders")).to_contain_text("production: v2")

    # The audit log shows both people's actions; the approval is proven in a signed checkpoint.
    from audits.checkpoints import checkpoint_create

    checkpoint_create()  # what the scheduler does every few minutes
    nav(officer, "Audit log").click()
    officer.fill("#id_model", "alpha-model")
    officer.get_by_role("button", name="Filter").click()
    table = officer.locator("table.audit-table")
    expect(table).to_contain_text("governance.promotion.approved")
    expect(table).to_contain_text("registry.stage.moved")
    officer.screenshot(path=str(DOCS_IMAGES / "portal-audit-log.png"))
    assert (DOCS_IMAGES / "portal-audit-log.png").stat().st_size > 10_000
    officer.fill("#id_model", "")
    officer.fill("#id_actor", "compliance_officer")
    officer.get_by_role("button", name="Filter").click()
    expect(table).to_contain_text("governance.waiver.granted")
    officer.fill("#id_actor", "approver")
    officer.get_by_role("button", name="Filter").click()
    table.locator("tr", has_text="governance.promotion.approved").get_by_role("link").first.click()
    expect(officer.locator("#inclusion .proof-ok")).to_contain_text("Verified")

    # ... and the whole log verifies.
    nav(officer, "Verification").click()
    officer.get_by_role("button", name="Verify now").click()
    expect(officer.locator("#verification h2")).to_have_text("Passed")
    nav(officer, "Dashboard").click()
    expect(officer.locator("#log-state")).to_contain_text("passed")
    assert not [e for e in errors if "Content Security Policy" in e], errors


# Pages an auditor reads, and the one form it may use: starting a verification changes no governed
# data (it records a run), as GET /api/v1/audit/verify does for the same role.
def _auditor_pages(scenario: Scenario, cast: Cast) -> list[str]:
    from audits.models import AuditEvent

    seq = AuditEvent.objects.filter(action="governance.promotion.requested").values_list("seq", flat=True).first()
    waiver = cast.versions["alpha2"].waivers.first()
    return ["/admin/", "/admin/portal/models/", "/admin/portal/models/alpha-model/", "/admin/portal/models/beta-model/",
            "/admin/portal/promotions/", f"/admin/portal/promotions/{scenario.pending.pk}/",
            f"/admin/portal/promotions/{scenario.blocked.pk}/", "/admin/portal/audit/",
            f"/admin/portal/audit/events/{seq}/", "/admin/portal/policies/", "/admin/portal/policies/alpha-production/",
            f"/admin/portal/waivers/?show=all#waiver-{waiver.pk}", "/admin/portal/access/",
            "/admin/registry/registeredmodel/", "/admin/audits/auditevent/"]


def test_auditor_reads_everything_and_changes_nothing_even_with_forged_posts(
        live_server: Any, cast: Cast, scenario: Scenario, new_page: Callable[[], Any], browser_thread: Any) -> None:
    from audits.models import AuditEvent
    from audits.services import audit_sequence
    from governance.models import Approval, PromotionPolicy, Waiver

    expect = browser_thread.expect
    set_password(cast.users["auditor"])
    page = new_page()
    errors = _watch_console(page)
    sign_in(page, live_server.url, "auditor")
    expect(page.locator("#awaiting")).to_contain_text("Your roles do not approve promotions")
    for path in _auditor_pages(scenario, cast):
        page.goto(live_server.url + path)
        expect(page.locator("#content")).to_be_visible()
        assert page.locator("h1").count() == 1, path
        # (the admin's change lists hold an empty POST form for actions; there are none, so no button)
        assert page.locator("#content form[method=post] :is(input[type=submit], button)").count() == 0, \
            f"a button that changes something on {path}"
        assert page.locator("#content input[type=submit][value=Approve], .addlink").count() == 0, path
    page.goto(f"{live_server.url}/admin/portal/promotions/{scenario.pending.pk}/")
    expect(page.locator("#gates")).to_contain_text("approvals:1[approver,compliance_officer]")
    expect(page.locator("svg.portal-chart")).to_have_count(5)
    assert not [e for e in errors if "Content Security Policy" in e], errors

    # Forged posts with the auditor's own session and a valid CSRF token: refused, nothing changes.
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    session = requests.Session()
    session.cookies.update(cookies)
    token = cookies["csrftoken"]
    waiver = Waiver.objects.filter(revoked_at__isnull=True).first()
    before = (Approval.objects.count(), PromotionPolicy.objects.count(), Waiver.objects.count(),
              Waiver.objects.filter(revoked_at__isnull=True).count())
    audit_sequence(inline=True)
    first_new = AuditEvent.objects.count()
    forged = {
        f"/admin/portal/promotions/{scenario.pending.pk}/approve/": {"comment": "forged"},
        f"/admin/portal/promotions/{scenario.pending.pk}/reject/": {"comment": "forged"},
        "/admin/portal/policy-publish/": {"document": "name: x", "format": "yaml", "publish": "1"},
        "/admin/portal/waivers/grant/": {"model": "alpha-model", "version": "2", "gate": "drift",
                                         "justification": "forged by an auditor", "expires_at": "2030-01-01T00:00"},
        f"/admin/portal/waivers/{waiver.pk}/revoke/": {},
        f"/admin/portal/access/people/{cast.users['approver'].pk}/otp-reset/": {},
    }
    for path, data in forged.items():
        response = session.post(live_server.url + path, data={"csrfmiddlewaretoken": token, **data},
                                headers={"Referer": live_server.url + path}, allow_redirects=False)
        assert response.status_code == 403, (path, response.status_code, response.text[:300])
        assert "Not allowed" in response.text
    assert (Approval.objects.count(), PromotionPolicy.objects.count(), Waiver.objects.count(),
            Waiver.objects.filter(revoked_at__isnull=True).count()) == before
    audit_sequence(inline=True)
    denied = list(AuditEvent.objects.filter(seq__gte=first_new).values_list("action", "actor_name"))
    assert denied == [("security.access.denied", "auditor")] * len(forged)


def test_a_viewer_of_team_alpha_never_sees_team_beta(
        live_server: Any, cast: Cast, scenario: Scenario, new_page: Callable[[], Any], browser_thread: Any) -> None:
    expect = browser_thread.expect
    set_password(cast.users["viewer"])
    page = new_page()
    # A plain viewer's role does not include the portal: the sign-in is refused like a wrong password.
    sign_in(page, live_server.url, "viewer")
    expect(page.locator(".errornote")).to_contain_text("Please enter the correct")
    page.goto(f"{live_server.url}/admin/portal/models/beta-model/")
    assert "/admin/login/" in page.url

    # A viewer of alpha let into the portal sees alpha's models, promotions and events, never beta's.
    set_password(add_portal_viewer(cast))
    page = new_page()
    sign_in(page, live_server.url, "alpha_portal_viewer")
    expect(page.locator("h1")).to_have_text("Dashboard")
    for path in ["/admin/", "/admin/portal/models/", "/admin/portal/promotions/", "/admin/portal/audit/",
                 "/admin/portal/waivers/?show=all", "/admin/portal/models/alpha-model/",
                 f"/admin/portal/promotions/{scenario.pending.pk}/"]:
        page.goto(live_server.url + path)
        body = page.locator("#content").inner_text()
        assert "alpha-model" in body, path
        assert "beta" not in body.lower(), f"{path} shows team beta: {body[:500]}"
    for path in ["/admin/portal/models/beta-model/", f"/admin/portal/promotions/{scenario.blocked.pk}/",
                 "/admin/portal/audit/?model=beta-model"]:
        response = page.goto(live_server.url + path)
        assert response.status == 404, path
        # as for an object that does not exist: nothing about it beyond what was asked for
        assert "that you can see" in page.locator(".errornote").inner_text()
        assert "blocked" not in page.locator("#content").inner_text().lower()
    # the admin's own lists show every team: not for someone limited to one team
    assert page.goto(f"{live_server.url}/admin/registry/registeredmodel/").status == 403


def test_an_auditor_generates_a_pack_downloads_it_and_it_verifies(
        live_server: Any, cast: Cast, scenario: Scenario, new_page: Callable[[], Any], browser_thread: Any,
        tmp_path: Any, settings: Any) -> None:
    import hashlib
    import zipfile

    from audits.models import AuditEvent
    from audits.packs.models import AuditPack
    from audits.services import audit_sequence

    settings.GOVAUDIT_PACK_DIR = tmp_path / "packs"
    expect = browser_thread.expect
    set_password(cast.users["auditor"])
    page = new_page()
    sign_in(page, live_server.url, "auditor")
    nav(page, "Audit packs").click()
    page.select_option("#id_framework", "soc2")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#pack h2")).to_contain_text("Succeeded", timeout=60_000)  # built without a broker
    pack = AuditPack.objects.get()
    assert pack.status == "succeeded" and set(pack.scope) == {"alpha-model", "beta-model"}

    saved = browser_thread.download(page, lambda p: p.click("#download"), tmp_path / "pack.zip")
    data = open(saved, "rb").read()
    assert hashlib.sha256(data).hexdigest() == pack.sha256
    audit_sequence(inline=True)
    assert AuditEvent.objects.filter(action="audits.pack.downloaded", actor_name="auditor").count() == 1

    page.goto(f"{live_server.url}/admin/portal/packs/verify/")
    page.set_input_files("#id_file", saved)
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#result h2")).to_have_text("Verified")

    # one byte of the evidence changed: named, not verified
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "evidence/events.jsonl":
                middle = len(body) // 2
                body = body[:middle] + bytes([body[middle] ^ 1]) + body[middle + 1:]
            dst.writestr(item, body)
    page.set_input_files("#id_file", str(tampered))
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#result h2")).to_have_text("Does not verify")
    expect(page.locator("#result")).to_contain_text("evidence/events.jsonl")
