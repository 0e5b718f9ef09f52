"""Audit packs end to end, on the realistic world of conftest.py (one pack per framework, built once).

Validated three ways: pyHanko's validator, poppler's ``pdfsig`` (trusting the organisation
certificate in an NSS database) and the standalone verifier; every page rendered by ``pdftoppm``;
then each tamper case, each caught and named.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from audits.pack_verifier import verify_pack
from tests.audits.packs import nss

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]
FRAMEWORKS = ["hipaa", "gdpr", "soc2"]


def _verify(world: Any, data: bytes | Path) -> Any:
    source = data.read_bytes() if isinstance(data, Path) else data
    return verify_pack(source, log_keys=world.log_keys, pdf_certs=[world.cert_pem])


def _entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i.filename) for i in zf.infolist()}


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


# --- the packs as generated ----------------------------------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_pack_verifies_with_pinned_keys(world: Any, framework: str) -> None:
    pack = world.packs[framework]
    report = _verify(world, world.files[framework])
    assert report.ok, report.problems
    assert report.facts["events_verified"] == pack.event_count > 80
    assert report.facts["pdf_coverage"] == "ENTIRE_FILE"
    assert report.facts["receipts_verified"] >= 1
    assert hashlib.sha256(world.files[framework].read_bytes()).hexdigest() == pack.sha256


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_content_follows_the_framework(world: Any, framework: str) -> None:
    entries = _entries(world.files[framework])
    statement = json.loads(entries["manifest.json"])
    pred = statement["predicate"]
    scope = {"hipaa": ["beta-model", "triage-risk"], "gdpr": ["alpha-model", "claims-fraud", "triage-risk"],
             "soc2": ["alpha-model", "beta-model", "churn", "claims-fraud", "triage-risk"]}[framework]
    assert pred["scope"]["models"] == scope
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    names = {s["name"] for s in statement["subject"]}
    assert names == set(entries) - {"manifest.json", "manifest.dsse.json"}
    controls = {c["id"]: c for c in json.loads(entries["evidence/controls.json"])}
    expected = {
        "hipaa": {"164.308(a)(1)(ii)(A)", "164.308(a)(1)(ii)(B)", "164.308(a)(1)(ii)(D)", "164.308(a)(5)(ii)(C)",
                  "164.312(a)(1)", "164.312(b)", "164.312(c)(1)", "164.312(d)", "164.312(e)(1)", "164.316(b)(2)(i)"},
        "gdpr": {"Art. 5(1)(a)", "Art. 5(1)(b)", "Art. 5(1)(c)", "Art. 5(1)(d)", "Art. 5(1)(e)", "Art. 5(1)(f)",
                 "Art. 5(2)", "Art. 22(3)", "Art. 30", "Art. 35"},
        "soc2": {"CC6.1", "CC6.2", "CC6.3", "CC7.1", "CC7.2", "CC7.3", "CC7.4", "CC7.5", "CC8.1"},
    }[framework]
    assert set(controls) == expected
    text = json.dumps(controls)
    if framework == "hipaa":
        # mallory's six failed sign-ins; the waived bias gate; beta-model moved without a promotion
        assert controls["164.308(a)(5)(ii)(C)"]["status"] == "exception" and "mallory" in text
        assert controls["164.308(a)(1)(ii)(B)"]["status"] == "exception" and "waived" in text
        assert controls["164.316(b)(2)(i)"]["status"] == "satisfied"  # hipaa-monthly keeps 2192 days
        assert controls["164.312(b)"]["status"] == "satisfied"
    if framework == "gdpr":
        assert controls["Art. 22(3)"]["status"] != "not_applicable"
        assert controls["Art. 30"]["status"] == "satisfied", controls["Art. 30"]
    if framework == "soc2":
        assert controls["CC7.4"]["status"] == "exception"  # the open alert
        assert controls["CC7.5"]["status"] == "not_applicable"
    decisions = json.loads(entries["evidence/decisions.json"])
    states = sorted(d["state"] for d in decisions)
    if framework == "gdpr":
        assert states.count("promoted") == 2 and "waiting_for_evidence" not in states
        promoted = [d for d in decisions if d["state"] == "promoted"]
        assert all(d["approvals"] and d["evidence"] for d in promoted)
    events = entries["evidence/events.jsonl"].decode().splitlines()
    assert len(events) == pred["events"]["count"]
    assert b"security.login.failed" in entries["evidence/security_events.csv"]
    assert entries["checkpoint"].decode().split("\n")[1] == str(pred["checkpoint"]["size"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_pyhanko_accepts_the_signature_over_the_entire_file(world: Any, framework: str) -> None:
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    cert_file = world.dirs["packs"].parent / "cert.pem"
    cert_file.write_bytes(world.cert_pem)
    pdf = _entries(world.files[framework])["report.pdf"]
    sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
    assert len(sig) == 1
    status = validate_pdf_signature(sig[0], ValidationContext(trust_roots=[load_cert_from_pemder(str(cert_file))],
                                                              allow_fetching=False))
    assert status.bottom_line and status.intact and status.valid and status.trusted
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert sig[0].sig_object["/SubFilter"] == "/ETSI.CAdES.detached"  # PAdES
    from cryptography import x509

    usage = x509.load_pem_x509_certificate(world.cert_pem).extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.content_commitment and usage.digital_signature  # non-repudiation, as a document signature needs


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_pdfsig_accepts_it_against_the_certificate(world: Any, framework: str, tmp_path: Path) -> None:
    assert shutil.which("pdfsig"), "pdfsig missing: apt-get install poppler-utils (.ci/run installs it)"
    assert nss.available(), "libnss3 missing (poppler-utils depends on it)"
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(_entries(world.files[framework])["report.pdf"])
    nssdir = nss.trust_db(tmp_path / "nss", world.cert_pem)
    out = subprocess.run(["pdfsig", "-nssdir", nssdir, str(pdf)], capture_output=True, text=True, timeout=60)
    assert "Signature is Valid." in out.stdout, out.stdout + out.stderr
    assert "Certificate is Trusted." in out.stdout, out.stdout
    assert "Total document signed" in out.stdout
    assert "ETSI.CAdES.detached" in out.stdout


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_page_renders(world: Any, framework: str, tmp_path: Path) -> None:
    from PIL import Image

    pack = world.packs[framework]
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(_entries(world.files[framework])["report.pdf"])
    subprocess.run(["pdftoppm", "-r", "24", "-png", str(pdf), str(tmp_path / "page")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == pack.pages >= 10
    for page in pages:
        image = Image.open(page).convert("L")
        lo, hi = image.getextrema()
        assert lo < 128 < hi, f"{page.name} is blank"


def test_pdf_bytes_before_signing_are_the_manifests(world: Any) -> None:
    """The signed PDF is the unsigned one plus pyHanko's appended revision; its digest is recorded."""
    entries = _entries(world.files["gdpr"])
    pdf = entries["report.pdf"]
    unsigned = pdf[: pdf.index(b"%%EOF") + len(b"%%EOF\n")]
    pred = json.loads(entries["manifest.json"])["predicate"]
    assert hashlib.sha256(unsigned).hexdigest() == pred["pdf"]["unsigned_sha256"]


# --- tamper cases --------------------------------------------------------------------------------

def _flip_pdf_byte(e: dict[str, bytes], world: Any) -> None:
    pdf = bytearray(e["report.pdf"])
    at = pdf.index(b"stream", len(pdf) // 4) + 40  # inside a page's content stream, within the signed range
    pdf[at] ^= 0x01
    e["report.pdf"] = bytes(pdf)


def _append_incremental_update(e: dict[str, bytes], world: Any) -> None:
    from pyhanko.pdf_utils.generic import NameObject, TextStringObject
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(e["report.pdf"]))
    info = writer.root  # change the catalogue: a new revision after the signature
    info[NameObject("/Lang")] = TextStringObject("de")
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    e["report.pdf"] = out.getvalue()


def _change_evidence(e: dict[str, bytes], world: Any) -> None:
    e["evidence/access_tokens.csv"] = e["evidence/access_tokens.csv"].replace(b"mallory", b"m") + b"9,x,x\n"


def _remove_evidence(e: dict[str, bytes], world: Any) -> None:
    del e["evidence/waivers.csv"]


def _add_evidence(e: dict[str, bytes], world: Any) -> None:
    e["evidence/extra-exculpatory.csv"] = b"finding,status\nall,fine\n"


def _edit_manifest_entry(e: dict[str, bytes], world: Any) -> None:
    """Change a file and put its new digest in manifest.json (the DSSE payload still has the old one)."""
    e["evidence/waivers.csv"] = b"waiver\n"
    st = json.loads(e["manifest.json"])
    for s in st["subject"]:
        if s["name"] == "evidence/waivers.csv":
            s["digest"]["sha256"] = hashlib.sha256(b"waiver\n").hexdigest()
    e["manifest.json"] = json.dumps(st, separators=(",", ":")).encode()


def _swap_payload_type(e: dict[str, bytes], world: Any) -> None:
    env = json.loads(e["manifest.dsse.json"])
    env["payloadType"] = "application/json"
    e["manifest.dsse.json"] = json.dumps(env).encode()


def _resign_with_unknown_key(e: dict[str, bytes], world: Any) -> None:
    """A forger's complete re-signing: edited manifest, DSSE by their own Ed25519 key."""
    from audits.core.note import SignerKey
    from audits.packs.signing import dsse_envelope

    e["evidence/waivers.csv"] = b"waiver\n"
    st = json.loads(e["manifest.json"])
    for s in st["subject"]:
        if s["name"] == "evidence/waivers.csv":
            s["digest"]["sha256"] = hashlib.sha256(b"waiver\n").hexdigest()
    payload = json.dumps(st, separators=(",", ":")).encode()
    e["manifest.json"] = payload
    forger = SignerKey.generate(world.log_keys[0].split("+")[0])
    e["manifest.dsse.json"] = json.dumps(dsse_envelope(payload, forger)).encode()


def _resign_pdf_with_unknown_certificate(e: dict[str, bytes], world: Any) -> None:
    from audits.packs.signing import OrganisationSigner, generate_development_certificate, sign_pdf

    pdf = e["report.pdf"]
    unsigned = pdf[: pdf.index(b"%%EOF") + len(b"%%EOF\n")]
    cert, key = generate_development_certificate("Mallory Audit Services")
    e["report.pdf"] = sign_pdf(unsigned, OrganisationSigner(cert, (), key, None, True), reason="forged")


def _resign_checkpoint_with_unknown_key(e: dict[str, bytes], world: Any) -> None:
    from audits.core.note import SignerKey, sign_note

    note = e["checkpoint"].decode()
    text = note[: note.rindex("\n\n") + 1]
    e["checkpoint"] = sign_note(text, [SignerKey.generate(text.split("\n", 1)[0])])


def _tamper_proof(e: dict[str, bytes], world: Any) -> None:
    lines = e["evidence/events.jsonl"].split(b"\n")
    first = json.loads(lines[3])
    first["proof"][0] = "00" * 32
    lines[3] = json.dumps(first, separators=(",", ":")).encode()
    e["evidence/events.jsonl"] = b"\n".join(lines)


def _tamper_leaf(e: dict[str, bytes], world: Any) -> None:
    """Rewrite an event (its leaf and hash consistently): only the proof can catch it."""
    lines = e["evidence/events.jsonl"].split(b"\n")
    line = json.loads(lines[5])
    leaf = base64.b64decode(line["leaf"]).replace(b'"action":"', b'"action":"x', 1)
    line["leaf"], line["hash"] = base64.b64encode(leaf).decode(), hashlib.sha256(b"\x00" + leaf).hexdigest()
    lines[5] = json.dumps(line, separators=(",", ":")).encode()
    e["evidence/events.jsonl"] = b"\n".join(lines)


TAMPER: dict[str, tuple[Callable[[dict[str, bytes], Any], None], set[str]]] = {
    "byte_flipped_in_pdf": (_flip_pdf_byte, {"pdf_signature_invalid", "digest_mismatch"}),
    "incremental_update_appended": (_append_incremental_update, {"pdf_incremental_update", "digest_mismatch"}),
    "evidence_changed": (_change_evidence, {"digest_mismatch"}),
    "evidence_removed": (_remove_evidence, {"missing_file"}),
    "evidence_added": (_add_evidence, {"unlisted_file"}),
    "manifest_entry_edited": (_edit_manifest_entry, {"manifest_mismatch", "digest_mismatch"}),
    "dsse_payload_type_swapped": (_swap_payload_type, {"dsse_payload_type"}),
    "signed_by_unknown_key": (_resign_with_unknown_key, {"dsse_unknown_key"}),
    "pdf_signed_by_unknown_certificate": (_resign_pdf_with_unknown_certificate,
                                          {"pdf_untrusted_signer", "digest_mismatch"}),
    "checkpoint_signed_by_unknown_key": (_resign_checkpoint_with_unknown_key,
                                         {"checkpoint_unverified", "digest_mismatch"}),
    "inclusion_proof_altered": (_tamper_proof, {"inclusion_proof_invalid", "digest_mismatch"}),
    "event_rewritten_with_its_hash": (_tamper_leaf, {"inclusion_proof_invalid", "digest_mismatch"}),
}


@pytest.fixture(scope="module")
def tampered(world: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    folder = tmp_path_factory.mktemp("tampered")
    for name, (change, _) in TAMPER.items():
        entries = _entries(world.files["hipaa"])
        change(entries, world)
        path = folder / f"{name}.zip"
        path.write_bytes(_zip(entries))
        out[name] = path
    return out


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_tampering_is_caught_and_named(world: Any, tampered: dict[str, Path], case: str) -> None:
    report = _verify(world, tampered[case])
    assert not report.ok
    expected = TAMPER[case][1]
    assert expected <= report.codes, (case, report.problems)
    named = {p.file for p in report.problems}
    if case.startswith("evidence_"):
        assert named & {"evidence/access_tokens.csv", "evidence/waivers.csv", "evidence/extra-exculpatory.csv"}


def test_the_untampered_rezip_still_verifies(world: Any) -> None:
    """The tamper fixture's re-zipping itself changes nothing a verifier cares about."""
    assert _verify(world, _zip(_entries(world.files["hipaa"]))).ok


def test_standalone_verifier_runs_without_django(world: Any, tampered: dict[str, Path], tmp_path: Path) -> None:
    """Copied out of the repository next to verifier.py, as an auditor would, in a plain Python process."""
    for name in ("pack_verifier.py", "verifier.py"):
        shutil.copy(ROOT / "audits" / name, tmp_path / name)
    (tmp_path / "cert.pem").write_bytes(world.cert_pem)
    keys = [arg for k in world.log_keys for arg in ("--key", k)]
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    ok = subprocess.run([sys.executable, "-I", "pack_verifier.py", str(world.files["soc2"]), *keys, "--cert",
                         "cert.pem"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK: pack #") and "ENTIRE" not in ok.stderr
    bad = subprocess.run([sys.executable, "-I", "pack_verifier.py", str(tampered["evidence_removed"]), *keys,
                          "--cert", "cert.pem", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env=env)
    assert bad.returncode == 1
    assert "missing_file" in {p["code"] for p in json.loads(bad.stdout)["problems"]}
    no_keys = subprocess.run([sys.executable, "-I", "pack_verifier.py", str(world.files["soc2"])], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60, env=env)
    assert no_keys.returncode == 2 and "--key" in no_keys.stdout


def test_manage_py_verify_pack(world: Any, tampered: dict[str, Path]) -> None:
    out = io.StringIO()
    call_command("verify_pack", str(world.files["gdpr"]), stdout=out)
    assert out.getvalue().startswith("OK: pack #")
    with pytest.raises(CommandError, match="dsse_payload_type"):
        call_command("verify_pack", str(tampered["dsse_payload_type_swapped"]), stdout=io.StringIO())


# --- the API -------------------------------------------------------------------------------------

def _client(world: Any, who: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.tokens[who]}")
    return client


def test_api_generates_follows_and_downloads_a_pack(world: Any, django_capture_on_commit_callbacks: Any,
                                                     sequenced: Any) -> None:
    officer = _client(world, "compliance_officer")
    with django_capture_on_commit_callbacks(execute=True):
        r = officer.post("/api/v1/audit-packs/", {"framework": "gdpr", "period_start": world.start.isoformat(),
                                                  "period_end": world.end.isoformat(), "models": ["claims-fraud"]},
                         format="json")
    assert r.status_code == 202, r.content
    body = r.json()
    detail = officer.get(body["links"]["self"]).json()
    assert detail["status"] == "succeeded" and detail["progress"] == 100, detail
    assert detail["scope"] == ["claims-fraud"] and detail["checkpoint"]["size"] > 0
    auditor = _client(world, "auditor")
    download = auditor.get(body["links"]["download"])
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    data = b"".join(download.streaming_content)
    assert hashlib.sha256(data).hexdigest() == detail["sha256"] == download["X-Content-SHA256"]
    assert _verify(world, data).ok
    events = [e for e in sequenced() if e.action == "audits.pack.downloaded"]
    assert events and json.loads(bytes(events[-1].leaf))["actor"]["username"] == "auditor"


def test_api_refuses_other_roles_and_audits_the_refusal(world: Any, sequenced: Any) -> None:
    for who in ("ml_engineer", "approver", "viewer"):
        r = _client(world, who).post("/api/v1/audit-packs/", {"framework": "soc2",
                                                              "period_start": world.start.isoformat()}, format="json")
        assert r.status_code == 403, (who, r.content)
        assert _client(world, who).get(f"/api/v1/audit-packs/{world.packs['soc2'].pk}/download").status_code == 403
    denied = [json.loads(bytes(e.leaf)) for e in sequenced() if e.action == "security.access.denied"]
    assert {"audits.pack.requested", "audits.pack.downloaded"} <= {d["payload"]["attempted"] for d in denied}


@pytest.mark.parametrize(("body", "code"), [
    ({"framework": "iso27001", "period_start": "2026-01-01T00:00:00Z"}, "invalid"),
    ({"framework": "hipaa", "period_start": "2026-02-01T00:00:00Z", "period_end": "2026-01-01T00:00:00Z"},
     "invalid_period"),
    ({"framework": "hipaa", "period_start": "2026-01-01T00:00:00Z", "period_end": "2999-01-01T00:00:00Z"},
     "invalid_period"),
    ({"framework": "hipaa", "period_start": "2026-01-01T00:00:00Z", "models": ["no-such-model"]}, "unknown_model"),
    ({"framework": "hipaa", "period_start": "2026-01-01T00:00:00Z", "models": ["claims-fraud"]},
     "model_out_of_scope"),
    ({"framework": "hipaa", "period_start": "2026-01-01T00:00:00Z", "colour": "red"}, "invalid"),
])
def test_api_bad_input_gets_a_clear_400(world: Any, body: dict[str, Any], code: str) -> None:
    r = _client(world, "compliance_officer").post("/api/v1/audit-packs/", body, format="json")
    assert r.status_code == 400, r.content
    error = r.json()["error"]
    assert error["code"] == code and error["message"]
    if code == "model_out_of_scope":
        assert "phi" in error["message"] and "claims-fraud" in error["message"]


def test_api_verifies_an_uploaded_pack(world: Any, tampered: dict[str, Path]) -> None:
    auditor = _client(world, "auditor")
    with world.files["hipaa"].open("rb") as fh:
        good = auditor.post("/api/v1/audit-packs/verify", {"file": fh}, format="multipart").json()
    assert good["ok"] is True and good["facts"]["framework"] == "hipaa", good
    with tampered["incremental_update_appended"].open("rb") as fh:
        bad = auditor.post("/api/v1/audit-packs/verify", {"file": fh}, format="multipart").json()
    assert bad["ok"] is False and "pdf_incremental_update" in {p["code"] for p in bad["problems"]}
    missing = auditor.post("/api/v1/audit-packs/verify", {}, format="multipart")
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "file_required"
    not_a_zip = auditor.post("/api/v1/audit-packs/verify", {"file": io.BytesIO(b"not a zip")}, format="multipart")
    assert not_a_zip.json()["problems"][0]["code"] == "zip_unreadable"


# --- scheduled export ----------------------------------------------------------------------------

def _officer(world: Any) -> Any:
    from governance.access import Principal

    return Principal(user=world.cast.users["compliance_officer"])


def test_schedule_run_puts_a_verifiable_pack_in_a_local_folder_and_keeps_retention(
        world: Any, sequenced: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    from audits.packs import schedules
    from audits.packs.models import PackExport
    from audits.packs.tasks import run_schedule_task

    schedule = schedules.pack_schedule_create(actor=_officer(world), name="soc2-nightly", framework="soc2",
                                              cron="30 2 * * *", destination="nightly/soc2", retention_days=30,
                                              period_days=1)
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.task == "audits.packs.run_schedule" and json.loads(task.args) == [schedule.pk] and task.enabled
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("30", "2", "UTC")
    folder = world.dirs["exports"] / "nightly" / "soc2"
    folder.mkdir(parents=True, exist_ok=True)
    now = timezone.now()
    earlier = world.packs["soc2"]
    # An export past its retention (deleted by the run) and one recorded with a longer retention (kept).
    for name, expires in (("old/expired.zip", now - timedelta(days=10)), ("old/kept.zip", now + timedelta(days=20))):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"an older pack")
        PackExport.objects.create(schedule=schedule, pack=earlier, destination=schedule.destination, name=name,
                                  sha256="0" * 64, size_bytes=13, exported_at=now - timedelta(days=40),
                                  expires_at=expires)

    export_id = run_schedule_task.delay(schedule.pk).get()

    export = PackExport.objects.get(pk=export_id)
    path = folder / export.name
    assert path.is_file() and _verify(world, path).ok
    assert hashlib.sha256(path.read_bytes()).hexdigest() == export.sha256 == export.pack.sha256
    assert export.expires_at - export.exported_at == timedelta(days=30)
    assert not (folder / "old/expired.zip").exists() and (folder / "old/kept.zip").exists()
    assert PackExport.objects.get(name="old/expired.zip").deleted_at is not None
    ran = [json.loads(bytes(e.leaf)) for e in sequenced() if e.action == "audits.pack_schedule.ran"]
    assert ran and ran[-1]["payload"]["pruned"] == ["old/expired.zip"] and ran[-1]["payload"]["sha256"] == export.sha256


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Any:
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_schedule_exports_to_s3_and_a_failed_run_raises_an_alert(world: Any, s3_server: str, sequenced: Any) -> None:
    import boto3

    from audits.packs import schedules
    from audits.packs.models import Alert

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket="compliance-archive")
    good = schedules.pack_schedule_create(actor=_officer(world), name="gdpr-s3", framework="gdpr", cron="0 4 * * 1",
                                          destination="s3://compliance-archive/govaudit/gdpr", period_days=1,
                                          s3_endpoint_url=s3_server, s3_region="us-east-1")
    assert good.retention_days == 2192  # the default: six years
    export = schedules.pack_schedule_run(schedule_id=good.pk)
    assert export is not None, list(Alert.objects.values_list("message", flat=True))
    listed = s3.list_objects_v2(Bucket="compliance-archive", Prefix="govaudit/gdpr/")["Contents"]
    assert [o["Key"] for o in listed] == [f"govaudit/gdpr/{export.name}"]
    data = s3.get_object(Bucket="compliance-archive", Key=listed[0]["Key"])["Body"].read()
    assert _verify(world, data).ok

    broken = schedules.pack_schedule_create(actor=_officer(world), name="gdpr-missing-bucket", framework="gdpr",
                                            cron="0 4 * * 1", destination="s3://no-such-bucket/x", period_days=1,
                                            s3_endpoint_url=s3_server)
    assert schedules.pack_schedule_run(schedule_id=broken.pk) is None
    alert = Alert.objects.get(source_type="audits.pack_schedule", source_id=str(broken.pk))
    assert alert.status == "open" and alert.kind == "audits.pack_schedule.failed"
    assert "no-such-bucket" in alert.message and "audit_pack --schedule" in alert.message
    actions = [e.action for e in sequenced()][-3:]
    assert actions == ["audits.pack.generated", "audits.alert.raised", "audits.pack_schedule.failed"]
    broken.refresh_from_db()
    assert broken.last_status == "failed"


@pytest.mark.parametrize(("changes", "code"), [
    ({"framework": "hipaa", "retention_days": 365}, "retention_too_short"),
    ({"destination": "../../etc"}, "invalid_destination"),
    ({"destination": "/etc/cron.d"}, "invalid_destination"),
    ({"cron": "0 3 * *"}, "invalid_cron"),
    ({"cron": "61 3 * * *"}, "invalid_cron"),
    ({"model_names": ["churn"], "framework": "hipaa"}, "model_out_of_scope"),
])
def test_schedule_bad_settings_are_refused(world: Any, changes: dict[str, Any], code: str) -> None:
    from audits.packs import schedules
    from governance.errors import ValidationFailed

    fields = {"name": "bad", "framework": "soc2", "cron": "0 3 * * *", "destination": "x", "period_days": 7}
    with pytest.raises(ValidationFailed) as info:
        schedules.pack_schedule_create(actor=_officer(world), **(fields | changes))
    assert info.value.code == code and info.value.message


def test_compliance_officers_edit_schedules_in_the_admin(world: Any, sequenced: Any) -> None:
    from django.test import Client
    from django_celery_beat.models import PeriodicTask

    from audits.packs.models import PackSchedule

    form = {"name": "hipaa-weekly", "framework": "hipaa", "model_names": "triage-risk", "cron": "0 5 * * 0",
            "period_days": "7", "destination": "hipaa/weekly", "s3_endpoint_url": "", "s3_region": "",
            "retention_days": "2200", "enabled": "on"}
    auditor = Client()
    auditor.force_login(world.cast.users["auditor"])
    assert auditor.post("/admin/audits/packschedule/add/", form).status_code == 403
    officer = Client()
    officer.force_login(world.cast.users["compliance_officer"])
    short = officer.post("/admin/audits/packschedule/add/", form | {"retention_days": "100"})
    assert short.status_code == 200 and b"six years" in short.content
    r = officer.post("/admin/audits/packschedule/add/", form)
    assert r.status_code == 302, r.content[:2000]
    schedule = PackSchedule.objects.get(name="hipaa-weekly")
    assert schedule.model_names == ["triage-risk"] and schedule.retention_days == 2200
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).crontab.day_of_week == "0"
    r = officer.post(f"/admin/audits/packschedule/{schedule.pk}/change/", form | {"cron": "0 6 * * 0"})
    assert r.status_code == 302
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).crontab.hour == "6"
    events = [json.loads(bytes(e.leaf)) for e in sequenced() if e.action.startswith("audits.pack_schedule.")]
    assert [e["action"] for e in events[-2:]] == ["audits.pack_schedule.created", "audits.pack_schedule.updated"]
    assert events[-1]["actor"]["username"] == "compliance_officer"
    assert events[-1]["payload"]["changes"] == {"cron": {"from": "0 5 * * 0", "to": "0 6 * * 0"}}
    r = officer.post(f"/admin/audits/packschedule/{schedule.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302 and not PackSchedule.objects.filter(name="hipaa-weekly").exists()
    assert not PeriodicTask.objects.filter(name=f"audit-pack-schedule:{schedule.pk}").exists()
