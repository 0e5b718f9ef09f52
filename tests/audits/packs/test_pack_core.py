"""The pure parts of audit packs: catalogues, checks, one-pass proofs, the PDF builder, DSSE."""
from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from audits.core.merkle import TreeBuilder, inclusion_proof_from_list, root_from_leaf_hashes
from audits.core.note import SignerKey
from audits.pack_verifier import dsse_pae as verifier_pae, verify_inclusion
from audits.packs import checks
from audits.packs.catalogue import FRAMEWORKS, catalogue, frameworks_for
from audits.packs.facts import (DeploymentFacts, EventRow, Facts, LogFacts, ModelFact, PromotionFact, ReportFact,
                                ScheduleFact, SecurityFacts, TokenFact, UserFact, VersionFact)
from audits.packs.pdf import PackMeta, build_pdf
from audits.packs.proofs import ProofSet
from audits.packs.signing import dsse_envelope, dsse_pae

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


# --- catalogues ----------------------------------------------------------------------------------

def test_catalogues_hold_the_issues_controls_and_known_checks() -> None:
    ids = {f: [c.id for c in catalogue(f).controls] for f in FRAMEWORKS}
    assert ids["hipaa"] == ["164.308(a)(1)(ii)(A)", "164.308(a)(1)(ii)(B)", "164.308(a)(1)(ii)(D)",
                            "164.308(a)(5)(ii)(C)", "164.312(a)(1)", "164.312(b)", "164.312(c)(1)", "164.312(d)",
                            "164.312(e)(1)", "164.316(b)(2)(i)"]
    assert ids["gdpr"] == ["Art. 5(1)(a)", "Art. 5(1)(b)", "Art. 5(1)(c)", "Art. 5(1)(d)", "Art. 5(1)(e)",
                           "Art. 5(1)(f)", "Art. 5(2)", "Art. 22(3)", "Art. 30", "Art. 35"]
    assert ids["soc2"] == ["CC6.1", "CC6.2", "CC6.3", "CC7.1", "CC7.2", "CC7.3", "CC7.4", "CC7.5", "CC8.1"]
    used = {name for f in FRAMEWORKS for c in catalogue(f).controls for name in c.checks}
    assert used == set(checks.CHECKS), "every check answers some control, and no control names an unknown one"
    assert catalogue("hipaa").minimum_retention_days >= 6 * 365


def test_applicability_follows_data_categories() -> None:
    assert frameworks_for(["phi"]) == ["hipaa", "soc2"]
    assert frameworks_for(["personal"]) == ["gdpr", "soc2"]
    assert frameworks_for(["special_category", "phi"]) == ["hipaa", "gdpr", "soc2"]
    assert frameworks_for([]) == ["soc2"]


# --- checks --------------------------------------------------------------------------------------

def _log(ok: bool = True, proofs: bool = True) -> LogFacts:
    return LogFacts(origin="o", checkpoint_size=10, checkpoint_root_hex="00" * 32, checkpoint_note="o\n10\nx\n",
                    checkpoint_signed_at=NOW, verification={"ok": ok, "size": 10, "problem": None if ok else "gap",
                                                            "detail": None if ok else "seq 4 missing",
                                                            "checkpoints_checked": 1},
                    events_in_period=3, first_seq=7, last_seq=9, proofs_ok=proofs, counts_by_action={"a": 3}, rows=())


def _facts(**changes: object) -> Facts:
    report = ReportFact(id=1, model="m", version=1, kind="validation", status="succeeded", created_at=NOW,
                        finished_at=NOW, result={"metrics": {"accuracy": 0.9}},
                        result_digest=hashlib.sha256(b'{"metrics":{"accuracy":0.9}}').hexdigest(), inputs_digest="i",
                        options={})
    version = VersionFact(model="m", version=1, artifact_sha256="a" * 64, stage="production", training_datasets=(),
                          reports=(report,))
    model = ModelFact(name="m", team="t", risk_tier="high", data_categories=("personal",), intended_use="scores",
                      archived=False, deployed=(version,), version_count=1)
    base = Facts(framework="soc2", period_start=NOW - timedelta(days=30), period_end=NOW, generated_at=NOW,
                 models=(model,), promotions=(), stage_moves=(), waivers=(), reports=(report,),
                 users=(UserFact("ann", True, ("auditor",), (), None, NOW),), tokens=(),
                 access_changes=(), security=SecurityFacts({}, 0, 0, 0, (), 0), log=_log(), policies=(), alerts=(),
                 deployment=DeploymentFacts(True, True, 31_536_000, True), schedules=())
    return replace(base, **changes)  # type: ignore[arg-type]


def test_login_monitoring_flags_repeated_failures_at_the_threshold() -> None:
    quiet = _facts(security=SecurityFacts({"bob": checks.FAILED_LOGIN_THRESHOLD - 1}, 0, 0, 3, (), 4))
    noisy = _facts(security=SecurityFacts({"bob": checks.FAILED_LOGIN_THRESHOLD}, 0, 0, 3, (), 5))
    assert checks.login_monitoring(quiet).status == checks.SATISFIED
    result = checks.login_monitoring(noisy)
    assert result.status == checks.EXCEPTION and "bob" in result.findings[0]


def test_access_review_names_stale_and_orphaned_tokens() -> None:
    stale = TokenFact(1, "ci", "gva_abc", "ann", True, "", NOW - timedelta(days=200), NOW + timedelta(days=100),
                      None, NOW - timedelta(days=120))
    orphan = TokenFact(2, "old", "gva_def", "zed", False, "", NOW - timedelta(days=5), NOW + timedelta(days=100),
                       None, NOW)
    fresh = TokenFact(3, "new", "gva_ghi", "ann", True, "", NOW - timedelta(days=5), NOW + timedelta(days=100),
                      None, NOW - timedelta(days=1))
    revoked = replace(stale, id=4, revoked_at=NOW - timedelta(days=1))
    result = checks.access_review(_facts(tokens=(stale, orphan, fresh, revoked)))
    assert result.status == checks.EXCEPTION
    assert len(result.findings) == 2 and "gva_abc" in result.findings[0] and "deactivated" in result.findings[1]
    assert checks.access_review(_facts(tokens=(fresh, revoked))).status == checks.SATISFIED


def test_transmission_security_reads_the_deployment() -> None:
    assert checks.transmission_security(_facts()).status == checks.SATISFIED
    dev = checks.transmission_security(_facts(deployment=DeploymentFacts(False, False, 0, False)))
    assert dev.status == checks.EXCEPTION and "development" in dev.findings[0]
    weak = checks.transmission_security(_facts(deployment=DeploymentFacts(True, True, 3600, True)))
    assert weak.status == checks.EXCEPTION and "HSTS" in weak.findings[0]


def test_evidence_integrity_recomputes_digests() -> None:
    assert checks.evidence_integrity(_facts()).status == checks.SATISFIED
    forged = replace(_facts().reports[0], result={"metrics": {"accuracy": 0.99}})
    result = checks.evidence_integrity(_facts(reports=(forged,)))
    assert result.status == checks.EXCEPTION and "report 1" in result.findings[0]


def test_gated_changes_and_human_approval() -> None:
    promoted = PromotionFact(id=5, model="m", version=1, kind="promotion", target_stage="production",
                             state="promoted", reason="r", requester="ci", created_at=NOW, decided_at=NOW,
                             policy={"name": "p", "version": 1, "digest": "d" * 64},
                             gates=({"gate": "approvals:1[approver]", "status": "passed", "waived": False},),
                             approvals=(), waivers=(), evidence=(), receipt="x", receipt_ok=True)
    facts = _facts(promotions=(promoted,))
    assert checks.gated_changes(facts).status == checks.SATISFIED
    assert checks.human_approval(facts).status == checks.EXCEPTION
    approved = replace(promoted, approvals=({"user": "val", "decision": "approved"},))
    assert checks.human_approval(_facts(promotions=(approved,))).status == checks.SATISFIED
    waived = replace(approved, gates=({"gate": "bias", "status": "passed", "waived": True},))
    assert checks.gated_changes(_facts(promotions=(waived,))).status == checks.EXCEPTION
    assert checks.decision_receipts(_facts(promotions=(replace(approved, receipt_ok=False, receipt_detail="bad"),))) \
        .status == checks.EXCEPTION


def test_model_checks_are_not_applicable_without_models_and_audit_log_fails_loudly() -> None:
    empty = _facts(models=(), reports=())
    for name in ("inventory_complete", "model_risk_assessment", "fairness_assessment", "drift_monitoring",
                 "purpose_documented", "lineage_recorded"):
        assert checks.CHECKS[name](empty).status == checks.NOT_APPLICABLE, name
    assert checks.audit_log_integrity(_facts(log=_log(ok=False))).status == checks.EXCEPTION
    assert checks.audit_log_integrity(_facts(log=_log(proofs=False))).status == checks.EXCEPTION


def test_retention_needs_a_long_enough_schedule_for_hipaa() -> None:
    short = ScheduleFact("h", "hipaa", 365, True, "x")
    long = ScheduleFact("h", "hipaa", 2192, True, "x")
    assert checks.retention_schedule(_facts(framework="hipaa", minimum_retention_days=2192,
                                            schedules=(short,))).status == checks.EXCEPTION
    assert checks.retention_schedule(_facts(framework="hipaa", minimum_retention_days=2192,
                                            schedules=(long,))).status == checks.SATISFIED


def test_control_status_is_the_worst_of_its_checks() -> None:
    controls = {c.id: c for c in checks.evaluate_controls(_facts(security=SecurityFacts({"eve": 9}, 0, 0, 0, (), 9)))}
    assert controls["CC7.3"].status == checks.EXCEPTION and "eve" in controls["CC7.3"].reason
    assert controls["CC7.5"].status == checks.NOT_APPLICABLE
    assert controls["CC6.1"].status == checks.SATISFIED


# --- proofs --------------------------------------------------------------------------------------

def test_one_pass_proofs_equal_per_leaf_proofs() -> None:
    rng = random.Random(6962)
    for _ in range(200):
        n = rng.randint(1, 400)
        leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(n)]
        lo = rng.randrange(n)
        targets = sorted(rng.sample(range(lo, n), min(n - lo, rng.randint(1, 30))))
        start = rng.randint(0, targets[0])
        prefix = TreeBuilder()
        prefix.extend(leaves[:start])
        proofs = ProofSet(targets, n)
        assert proofs.compute(start, prefix.nodes, leaves[start:]) == root_from_leaf_hashes(leaves)
        for t in targets:
            assert proofs.proof(t) == inclusion_proof_from_list(t, leaves)
            assert verify_inclusion(leaves[t], t, n, proofs.proof(t), proofs.root)


def test_proofs_refuse_a_short_log() -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(10)]
    with pytest.raises(ValueError, match="expected leaves up to 12"):
        ProofSet([3], 12).compute(0, [], leaves)


# --- PDF and DSSE --------------------------------------------------------------------------------

META = PackMeta(pack_id=7, framework_name="SOC 2", citation="CC", scope_rule="applies to every model",
                generator="govaudit test", signer_subject="CN=test", log_key="o+00000000+AA==", pdf_event_rows=50)


def test_pdf_is_byte_identical_for_identical_inputs() -> None:
    rows = tuple(EventRow(i, f"2026-10-{1 + i % 28:02d}T00:00:00.000000Z", "registry.model.created", "ann", "user",
                          ("administrator",), f"model-{i}", "x=1") for i in range(300))
    facts = _facts(log=replace(_log(), rows=rows, events_in_period=300))
    controls = checks.evaluate_controls(facts)
    first, pages = build_pdf(facts, controls, META)
    again, _ = build_pdf(facts, controls, META)
    assert first == again and pages >= 8
    other, _ = build_pdf(replace(facts, generated_at=NOW + timedelta(seconds=1)), controls, META)
    assert other != first


def test_dsse_envelope_is_the_specified_encoding() -> None:
    key = SignerKey.generate("example.org/log")
    env = dsse_envelope(b'{"a":1}', key)
    assert dsse_pae("application/vnd.in-toto+json", b'{"a":1}') == \
        b"DSSEv1 28 application/vnd.in-toto+json 7 {\"a\":1}" == verifier_pae(env["payloadType"], b'{"a":1}')
    sig = base64.b64decode(env["signatures"][0]["sig"])
    assert key.verifier().verify(dsse_pae(env["payloadType"], b'{"a":1}'), sig)
    assert env["signatures"][0]["keyid"] == f"example.org/log+{key.key_id_hex}"


def test_pdf_survives_huge_cells_and_many_findings() -> None:
    """A table row cannot break across pages: long text is cut in the PDF (it is whole in evidence/)."""
    from audits.packs.facts import StageMoveFact, WaiverFact

    moves = tuple(StageMoveFact("m", i, "production", NOW, "system:x", "direct " * 30, None) for i in range(300))
    waiver = WaiverFact(1, "m", 1, "bias", "because " * 600, "officer", NOW, NOW + timedelta(days=5), None, ())
    facts = _facts(stage_moves=moves, waivers=(waiver,))
    pdf, pages = build_pdf(facts, checks.evaluate_controls(facts), META)
    assert pdf.startswith(b"%PDF") and pages > 3


def test_production_signs_only_with_the_operators_certificate(settings: object, tmp_path: object) -> None:
    from pathlib import Path

    from django.core.exceptions import ImproperlyConfigured

    from audits.pack_verifier import PackReport, _check_pdf
    from audits.packs.signing import generate_development_certificate, organisation_signer, sign_pdf

    settings.PRODUCTION = True  # type: ignore[attr-defined]
    settings.GOVAUDIT_PACK_SIGNING_CERT = settings.GOVAUDIT_PACK_SIGNING_KEY = None  # type: ignore[attr-defined]
    with pytest.raises(ImproperlyConfigured, match="GOVAUDIT_PACK_SIGNING_CERT"):
        organisation_signer()
    cert, key = generate_development_certificate("Example Health signing")
    folder = Path(str(tmp_path))
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    settings.GOVAUDIT_PACK_SIGNING_CERT = str(folder / "cert.pem")  # type: ignore[attr-defined]
    settings.GOVAUDIT_PACK_SIGNING_KEY = str(folder / "key.pem")  # type: ignore[attr-defined]
    signer = organisation_signer()
    assert not signer.development and "Example Health signing" in signer.subject
    facts = _facts()
    pdf, _ = build_pdf(facts, checks.evaluate_controls(facts), META)
    report = PackReport()
    _check_pdf(sign_pdf(pdf, signer, reason="test"), [cert], report)
    assert report.ok and report.facts["pdf_coverage"] == "ENTIRE_FILE", report.problems
    other = PackReport()
    _check_pdf(sign_pdf(pdf, signer, reason="test"), [generate_development_certificate("someone else")[0]], other)
    assert other.codes == {"pdf_untrusted_signer"}


def test_fast_ranges_and_proofs_agree_with_the_merkle_module() -> None:
    from audits.core.merkle import inclusion_ranges, verify_inclusion
    from audits.packs.proofs import _ranges

    rng = random.Random(9162)
    for size in [1, 2, 3, 7, 8, 9, 1000, 4097, *rng.sample(range(2, 100_000), 30)]:
        for index in {0, size - 1, rng.randrange(size)}:
            assert _ranges(index, size) == inclusion_ranges(index, size)
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(37)]
    root = root_from_leaf_hashes(leaves)
    for i in range(37):
        proof = inclusion_proof_from_list(i, leaves)
        assert verify_inclusion(leaves[i], i, 37, proof, root)
        assert not verify_inclusion(leaves[i], i, 37, proof[:-1], root)
