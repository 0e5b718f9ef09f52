"""The ``govaudit`` client on its own: arguments, configuration, HTTP behaviour, exit codes, receipts.

Most tests run ``main()`` in-process against a scripted fake API (a real HTTP server on a thread),
so each HTTP situation (errors, redirects, retries, slow decisions) can be produced exactly. The
end-to-end run against the real service is ``test_cli_e2e.py``. The import-hygiene tests start a
fresh interpreter, since this one has Django loaded by pytest-django.
"""
from __future__ import annotations

import email.parser
import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from audits.core.canonical import canonical_bytes
from audits.core.note import SignerKey, sign_note
from governance import cli

TOKEN = "gva_test_secret_token_value_123456"
ROOT = Path(__file__).resolve().parents[2]


# --- A scripted fake API ------------------------------------------------------------------------

@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass
class FakeApi:
    """Answers each (method, path) with the scripted replies in order; the last one repeats."""

    url: str = ""
    delay: float = 0.0  # seconds before each answer
    routes: dict[tuple[str, str], list[tuple[int, Any, dict[str, str]]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def on(self, method: str, path: str, *replies: tuple[int, Any] | tuple[int, Any, dict[str, str]]) -> None:
        self.routes[(method, "/api/v1" + path)] = [(r[0], r[1], r[2] if len(r) > 2 else {}) for r in replies]

    def reply(self, method: str, path: str) -> tuple[int, Any, dict[str, str]]:
        queue = self.routes.get((method, path))
        if not queue:
            return 404, {"error": {"code": "not_found", "message": f"No endpoint at {path}.", "request_id": "r-404"}}, {}
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == "/api/v1" + path]


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            api.seen.append(Seen(self.command, path, query, {k.lower(): v for k, v in self.headers.items()}, body))
            time.sleep(api.delay)
            status, payload, headers = api.reply(self.command, path)
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if not isinstance(payload, bytes) else "text/html")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("X-Request-ID", headers.pop("X-Request-ID", "req-fake"))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _serve

    return Handler


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    fake = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    for name in ("GOVAUDIT_TOKEN", "GOVAUDIT_URL", "GOVAUDIT_REQUEST_ID", "GOVAUDIT_IDEMPOTENCY_KEY",
                 "GOVAUDIT_ALLOW_HTTP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOVAUDIT_URL", fake.url)
    monkeypatch.setenv("GOVAUDIT_TOKEN", TOKEN)
    monkeypatch.setattr(cli, "RETRY_DELAYS", (0.0, 0.0, 0.0, 0.0))
    yield fake
    server.shutdown()
    server.server_close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err, "the token must never be printed"
    return code, captured.out, captured.err


def promotion(state: str, *, pk: int = 41, results: list[dict[str, Any]] | None = None,
              receipt: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": pk, "model": "credit", "version": 7, "artifact_sha256": "a" * 64, "target_stage": "production",
            "reason": "retrain", "state": state, "policy": {"name": "prod", "version": 3, "digest": "b" * 64},
            "decision": {"status": "x", "results": results or []}, "approvals": [], "receipt": receipt, **extra}


FAILED_BIAS = {"gate": "bias_metric:demographic_parity_difference[sex]<=0.1", "type": "bias_metric",
               "status": "failed", "reason": "demographic_parity_difference is 0.3, above 0.1.", "waived": False}
PASSED_ACC = {"gate": "validation_metric:accuracy>=0.85", "type": "validation_metric", "status": "passed",
              "reason": "accuracy is 0.91.", "waived": False}
WAITING_APPROVALS = {"gate": "approvals:1[approver]", "type": "approvals", "status": "waiting",
                     "reason": "0 of 1 approvals.", "waived": False}


# --- Import hygiene -----------------------------------------------------------------------------

HEAVY = {"django", "celery", "kombu", "rest_framework", "pandas", "numpy"}


def test_client_imports_no_django_even_when_verifying_a_receipt(tmp_path: Path) -> None:
    key = SignerKey.generate("test.example/log")
    receipt = tmp_path / "receipt.txt"
    receipt.write_bytes(sign_note(json.dumps({"type": cli.RECEIPT_TYPE, "outcome": "promoted"}) + "\n", [key]))
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "governance.cli", "verify-receipt", str(receipt),
         "--key", key.verifier().encode()], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert {"governance", "audits.core.note", "cryptography"} <= imported
    assert not {m for m in imported if m.split(".")[0] in HEAVY}, sorted(m for m in imported if m.split(".")[0] in HEAVY)


def test_importing_the_package_and_client_loads_no_server_stack() -> None:
    code = "import sys, governance.cli; print(sorted({m.split('.')[0] for m in sys.modules}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert not HEAVY & set(json.loads(out.stdout.replace("'", '"')))


# --- Arguments and configuration ---------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["promote", "credit", "7", "--reason", "x"],                       # --to missing
    ["promote", "credit", "seven", "--to", "production", "--reason", "x"],
    ["promote", "credit", "7", "--to", "prod", "--reason", "x"],
    ["promote", "credit", "7", "--to", "production", "--reason", "x", "--timeout", "-1"],
    ["report", "credit", "7", "--kind", "fairness", "--evaluation", "3"],
    ["register", "credit", "--uri", "s3://x"],                           # --artifact missing
    ["report-status", "0"],
])
def test_bad_arguments_exit_1_not_argparse_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith("govaudit: error: ") and "usage: govaudit" in err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "Exit codes: 0 promoted" in out and "verify-receipt" in out
    code, out, _ = run(capsys, "promote", "--help")
    assert code == 0 and "--idempotency-key" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("govaudit ")


@pytest.mark.parametrize(("raw", "expected"), [
    ("https://gov.example.org", "https://gov.example.org"),
    ("https://gov.example.org/", "https://gov.example.org"),
    ("https://gov.example.org/api/v1/", "https://gov.example.org"),
    ("https://gov.example.org/governance/api/v1", "https://gov.example.org/governance"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("http://localhost:8000/", "http://localhost:8000"),
    ("http://[::1]:8000", "http://[::1]:8000"),
])
def test_base_url_is_normalised(raw: str, expected: str) -> None:
    assert cli.base_url(raw, allow_http=False) == expected


@pytest.mark.parametrize(("raw", "message"), [
    (None, "GOVAUDIT_URL"),
    ("gov.example.org", "must be an http(s) URL"),
    ("ftp://gov.example.org", "must be an http(s) URL"),
    ("https://user:pw@gov.example.org", "Do not put credentials"),
    ("http://gov.example.org", "Refusing to send the token over plain http"),
])
def test_unsafe_or_missing_urls_are_refused(raw: str | None, message: str) -> None:
    with pytest.raises(cli.UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cli.base_url(raw, allow_http=False)
    if raw == "http://gov.example.org":
        assert cli.base_url(raw, allow_http=True) == raw


def test_missing_token_or_url_is_exit_1_with_a_hint(api: FakeApi, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOVAUDIT_TOKEN")
    code, _, err = run(capsys, "whoami")
    assert code == 1 and "set GOVAUDIT_TOKEN" in err and api.seen == []
    monkeypatch.delenv("GOVAUDIT_URL")
    code, _, err = run(capsys, "whoami")
    assert code == 1 and "GOVAUDIT_URL" in err


def test_token_is_sent_as_bearer_from_env_or_file(api: FakeApi, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    api.on("GET", "/me/", (200, {"username": "pipeline", "roles": ["pipeline"], "teams": [{"slug": "alpha"}],
                                 "token": {"name": "ci", "team": "alpha"}}))
    code, out, _ = run(capsys, "whoami", "--request-id", "ci-812.1")
    assert code == 0 and out.startswith("pipeline (roles: pipeline; teams: alpha)")
    seen = api.requests("GET", "/me/")[0]
    assert seen.headers["authorization"] == f"Bearer {TOKEN}" and seen.headers["x-request-id"] == "ci-812.1"
    monkeypatch.delenv("GOVAUDIT_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text("other-token\n")
    assert run(capsys, "--token-file", str(token_file), "whoami")[0] == 0
    assert api.requests("GET", "/me/")[-1].headers["authorization"] == "Bearer other-token"
    assert run(capsys, "whoami", "--request-id", "bad id!")[0] == 1


# --- HTTP errors --------------------------------------------------------------------------------

def test_server_errors_are_exit_1_with_code_message_and_request_id(api: FakeApi,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path) -> None:
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"weights")
    api.on("POST", "/models/credit/versions/", (409, {"error": {
        "code": "duplicate_artifact", "message": "This artifact is already registered as credit version 2.",
        "details": {"existing_version": 2}, "request_id": "req-409"}}))
    code, out, err = run(capsys, "register", "credit", "--artifact", str(artifact), "--uri", "s3://m/model.onnx")
    assert (code, out) == (1, "")
    assert err.strip() == ("govaudit: error: HTTP 409 duplicate_artifact: This artifact is already registered as "
                           "credit version 2. (request id req-409)")
    code, out, _ = run(capsys, "--json", "register", "credit", "--artifact", str(artifact), "--uri", "s3://m/x")
    assert code == 1 and json.loads(out)["error"]["details"] == {"existing_version": 2}


def test_non_json_error_and_401_do_not_leak_the_token(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/me/", (500, b"<html>Internal Server Error</html>"))
    code, _, err = run(capsys, "whoami")
    assert code == 1 and "HTTP 500 http_500: <html>Internal Server Error</html>" in err
    api.on("GET", "/me/", (401, {"error": {"code": "authentication_failed", "message": "This token is unknown."}}))
    code, _, err = run(capsys, "whoami")
    assert code == 1 and "HTTP 401 authentication_failed: This token is unknown." in err


def test_redirects_are_not_followed(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/me/", (302, {}, {"Location": "https://elsewhere.example/api/v1/me/"}))
    code, _, err = run(capsys, "whoami")
    assert code == 1 and "redirected to https://elsewhere.example/api/v1/me/" in err
    assert len(api.seen) == 1


def test_reads_retry_on_503_but_plain_posts_do_not(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/promotions/41/", (503, {"error": {"code": "unavailable", "message": "restarting"}}),
           (200, promotion("promoted")))
    assert run(capsys, "promotion-status", "41")[0] == 0
    assert len(api.requests("GET", "/promotions/41/")) == 2
    api.on("POST", "/promotions/41/approve/", (503, {"error": {"code": "unavailable", "message": "restarting"}}))
    code, _, err = run(capsys, "approve", "41")
    assert code == 1 and "HTTP 503 unavailable: restarting" in err
    assert len(api.requests("POST", "/promotions/41/approve/")) == 1


def test_unreachable_server_is_exit_1(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(cli, "RETRY_DELAYS", (0.0,))
    monkeypatch.setenv("GOVAUDIT_TOKEN", TOKEN)
    code, _, err = run(capsys, "--url", f"http://127.0.0.1:{port}", "whoami")
    assert code == 1 and f"Could not reach http://127.0.0.1:{port}" in err


def test_slow_or_non_http_servers_are_exit_1(api: FakeApi, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "RETRY_DELAYS", (0.0,))
    api.delay = 0.6
    api.on("GET", "/me/", (200, {"username": "pipeline"}))
    code, _, err = run(capsys, "whoami", "--http-timeout", "0.2")
    assert code == 1 and f"No answer from {api.url} within 0.2 s" in err
    api.delay = 0.0
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_garbage() -> None:
        for _ in range(2):  # the GET is tried twice
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            conn.close()

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    code, _, err = run(capsys, "--url", f"http://127.0.0.1:{listener.getsockname()[1]}", "whoami")
    thread.join(5)
    listener.close()
    assert code == 1 and "Could not reach" in err and "Traceback" not in err


# --- Promotions and exit codes ------------------------------------------------------------------

PROMOTE = ["promote", "credit", "7", "--to", "production", "--reason", "retrain"]


@pytest.mark.parametrize(("state", "results", "exit_code"), [
    ("promoted", [PASSED_ACC], 0),
    ("blocked", [PASSED_ACC, FAILED_BIAS], 2),
    ("rejected", [PASSED_ACC], 2),
    ("cancelled", [], 2),
    ("expired", [], 2),
    ("awaiting_approval", [PASSED_ACC, WAITING_APPROVALS], 3),
    ("waiting_for_evidence", [], 3),
])
def test_promotion_exit_codes(api: FakeApi, capsys: pytest.CaptureFixture[str], state: str,
                              results: list[dict[str, Any]], exit_code: int) -> None:
    api.on("POST", "/models/credit/versions/7/promotions/", (201, promotion(state, results=results)))
    code, out, err = run(capsys, *PROMOTE)
    assert code == exit_code
    assert out.startswith(f"Promotion #41: credit v7 -> production: {state}")
    if state == "blocked":
        assert (f"  FAILED  {FAILED_BIAS['gate']}: {FAILED_BIAS['reason']}") in out.splitlines()
        assert f"Not promoted: {FAILED_BIAS['gate']}: {FAILED_BIAS['reason']}" in err
    if exit_code == 3:
        assert "wait again with: govaudit promotion-status 41 --wait" in out


def test_promote_sends_an_idempotency_key_and_retries_with_the_same_one(api: FakeApi,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    api.on("POST", "/models/credit/versions/7/promotions/", (502, b"bad gateway"), (201, promotion("promoted")))
    code, _, err = run(capsys, *PROMOTE)
    keys = [s.headers["idempotency-key"] for s in api.requests("POST", "/models/credit/versions/7/promotions/")]
    assert code == 0 and len(keys) == 2 and keys[0] == keys[1] and keys[0].startswith("govaudit-cli-")
    assert f"--idempotency-key {keys[0]}" in err
    assert json.loads(api.seen[-1].body) == {"target_stage": "production", "reason": "retrain"}
    api.on("POST", "/models/credit/versions/7/promotions/", (200, promotion("promoted")))
    code, out, err = run(capsys, "--json", *PROMOTE, "--idempotency-key", "ci-run-812")
    assert code == 0 and "Replayed promotion #41" in err
    assert api.seen[-1].headers["idempotency-key"] == "ci-run-812"
    doc = json.loads(out)
    assert doc["idempotency_key"] == "ci-run-812" and doc["outcome"] == "promoted" and doc["exit_code"] == 0
    assert run(capsys, *PROMOTE, "--idempotency-key", "k" * 129)[0] == 1


def test_wait_polls_until_decided_and_saves_the_receipt(api: FakeApi, capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    receipt = '{"type":"govaudit.promotion-decision/v1"}\n\n— log AAAA\n'
    api.on("POST", "/models/credit/versions/7/promotions/", (201, promotion("waiting_for_evidence")))
    api.on("GET", "/promotions/41/", (200, promotion("awaiting_approval")),
           (503, b"restarting"), (503, b"restarting"), (503, b"restarting"), (503, b"restarting"), (503, b"x"),
           (200, promotion("promoted", receipt=receipt)))
    out_file = tmp_path / "receipt.txt"
    code, out, err = run(capsys, *PROMOTE, "--wait", "--interval", "0.01", "--timeout", "30",
                         "--receipt-out", str(out_file))
    assert code == 0 and "production: promoted" in out
    assert out_file.read_bytes() == receipt.encode()
    assert "promotion #41: awaiting_approval" in err and "(still waiting)" in err


def test_wait_times_out_with_exit_3(api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    api.on("POST", "/models/credit/versions/7/promotions/", (201, promotion("awaiting_approval",
                                                                            results=[WAITING_APPROVALS])))
    api.on("GET", "/promotions/41/", (200, promotion("awaiting_approval", results=[WAITING_APPROVALS])))
    code, out, _ = run(capsys, "--json", *PROMOTE, "--wait", "--timeout", "0.3", "--interval", "0.05",
                       "--receipt-out", str(tmp_path / "r.txt"))
    assert code == 3 and json.loads(out)["outcome"] == "awaiting_approval"
    assert 2 <= len(api.requests("GET", "/promotions/41/")) <= 10
    assert not (tmp_path / "r.txt").exists()


def test_approve_reject_cancel(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("POST", "/promotions/41/approve/", (200, promotion("promoted", approvals=[
        {"user": "val", "roles": ["approver"], "decision": "approved", "comment": "ok"}])))
    code, out, _ = run(capsys, "approve", "41", "--comment", "ok")
    assert code == 0 and "it is now promoted" in out and "approved by val (approver): ok" in out
    assert json.loads(api.seen[-1].body) == {"comment": "ok"}
    assert run(capsys, "reject", "41", "--comment", "  ")[0] == 1
    api.on("POST", "/promotions/41/reject/", (200, promotion("rejected")))
    assert run(capsys, "reject", "41", "--comment", "no")[0] == 0
    api.on("POST", "/promotions/41/cancel/", (200, promotion("cancelled")))
    assert run(capsys, "cancel", "41")[0] == 0 and json.loads(api.seen[-1].body) == {}


# --- Registration, uploads and reports ----------------------------------------------------------

def test_register_hashes_the_artifact_locally(api: FakeApi, capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"\x00weights" * 300_000)  # larger than one read chunk
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    api.on("POST", "/models/credit%20v2/versions/", (201, {"model": "credit v2", "version": 3,
                                                           "artifact_sha256": digest, "artifact_size": 2_400_000}))
    code, out, _ = run(capsys, "register", "credit v2", "--artifact", str(artifact), "--uri", "s3://m/3/model.onnx",
                       "--metric", "auc=0.91", "--metric", "note=fine", "--param", "depth=6", "--tag", "team=risk",
                       "--training-dataset", "4", "--training-dataset", "5", "--evaluation-dataset", "6",
                       "--code-ref", "git:abc", "--pipeline-run-id", "run-9")
    assert code == 0 and out.startswith("Registered credit v2 version 3")
    assert json.loads(api.seen[-1].body) == {
        "artifact_uri": "s3://m/3/model.onnx", "artifact_sha256": digest, "artifact_size": 2_400_000,
        "code_ref": "git:abc", "pipeline_run_id": "run-9", "metrics": {"auc": 0.91, "note": "fine"},
        "parameters": {"depth": 6}, "tags": {"team": "risk"}, "training_datasets": [4, 5],
        "evaluation_datasets": [6]}
    code, _, err = run(capsys, "register", "credit", "--artifact", str(tmp_path), "--uri", "s3://x")
    assert code == 1 and "is a directory" in err
    code, _, err = run(capsys, "register", "credit", "--artifact", str(artifact), "--uri", "s3://x", "--metric", "x")
    assert code == 1 and "KEY=VALUE" in err


def test_register_exist_ok_answers_the_existing_version(api: FakeApi, capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"weights")
    api.on("POST", "/models/credit/versions/", (409, {"error": {"code": "duplicate_artifact", "message": "dup",
                                                                "details": {"existing_version": 2}}}))
    api.on("GET", "/models/credit/versions/2/", (200, {"model": "credit", "version": 2, "artifact_sha256": "c" * 64}))
    code, out, _ = run(capsys, "register", "credit", "--artifact", str(artifact), "--uri", "s3://x", "--exist-ok")
    assert code == 0 and out.startswith("Exists: credit version 2")


def test_upload_streams_a_multipart_body_with_exact_length(api: FakeApi, capsys: pytest.CaptureFixture[str],
                                                           tmp_path: Path) -> None:
    data = tmp_path / 'eval "q3".csv'
    content = b"age,label,pred\n" + b"41,1,0\n" * 200_000
    data.write_bytes(content)
    api.on("POST", "/datasets/upload/", (201, {"id": 12, "name": "credit-eval", "version": 1, "rows": 200_000,
                                               "size_bytes": len(content), "sha256": "d" * 64}))
    code, out, _ = run(capsys, "upload", str(data), "--name", "credit-eval", "--team", "alpha",
                       "--data-category", "personal,phi", "--data-category", "special_category",
                       "--description", "Q3 holdout")
    assert code == 0 and out.startswith("Uploaded dataset credit-eval v1 (id 12)")
    seen = api.requests("POST", "/datasets/upload/")[0]
    assert int(seen.headers["content-length"]) == len(seen.body) and "transfer-encoding" not in seen.headers
    message = email.parser.BytesParser().parsebytes(
        f"Content-Type: {seen.headers['content-type']}\r\n\r\n".encode() + seen.body)
    parts = {p.get_param("name", header="content-disposition"): p for p in message.get_payload()}
    assert parts["file"].get_payload(decode=True) == content
    assert parts["file"].get_filename() == "eval _q3_.csv"
    assert {k: parts[k].get_payload() for k in ("name", "team", "data_categories", "description")} == {
        "name": "credit-eval", "team": "alpha", "data_categories": "personal,phi,special_category",
        "description": "Q3 holdout"}


def test_upload_exist_ok_checks_the_digest_before_sending(api: FakeApi, capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    data = tmp_path / "eval.csv"
    data.write_bytes(b"a,b\n1,2\n")
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    api.on("GET", "/datasets/", (200, {"count": 1, "results": [{"id": 9, "name": "eval", "version": 2}]}))
    code, out, _ = run(capsys, "upload", str(data), "--name", "eval", "--exist-ok")
    assert code == 0 and out.startswith("Exists: dataset eval v2 (id 9)")
    assert api.requests("GET", "/datasets/")[0].query == f"sha256={digest}"
    assert api.requests("POST", "/datasets/upload/") == []
    code, _, err = run(capsys, "upload", str(tmp_path / "missing.csv"), "--name", "eval")
    assert code == 1 and "is not a file" in err


def _report(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": 5, "model": "credit", "version": 7, "kind": "bias", "status": status, "result": None,
            "error": None, "result_digest": "", **extra}


def test_report_request_and_wait(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("POST", "/models/credit/versions/7/reports/", (202, _report("queued")))
    api.on("GET", "/reports/5/", (200, _report("running")), (200, _report(
        "succeeded", result={"demographic_parity_difference": 0.04, "groups": []}, result_digest="e" * 64)))
    code, out, _ = run(capsys, "report", "credit", "7", "--kind", "bias", "--evaluation", "3",
                       "--options", '{"label": "y", "positive_label": 1}', "--option", 'sensitive_features=["sex"]',
                       "--option", "prediction=y_hat", "--wait", "--interval", "0.01")
    assert code == 0 and "demographic_parity_difference: 0.04" in out
    assert json.loads(api.requests("POST", "/models/credit/versions/7/reports/")[0].body) == {
        "kind": "bias", "datasets": {"evaluation": 3},
        "options": {"label": "y", "positive_label": 1, "sensitive_features": ["sex"], "prediction": "y_hat"}}
    code, out, _ = run(capsys, "report", "credit", "7", "--kind", "drift", "--reference", "1", "--current", "2")
    assert code == 0 and "govaudit report-status 5 --wait" in out
    assert json.loads(api.seen[-1].body)["datasets"] == {"reference": 1, "current": 2}


@pytest.mark.parametrize(("argv", "message"), [
    (["--kind", "drift", "--reference", "1"], "--current"),
    (["--kind", "bias", "--reference", "1", "--current", "2"], "--evaluation"),
    (["--kind", "bias", "--evaluation", "1", "--options", "[1]"], "JSON object"),
    (["--kind", "bias", "--evaluation", "1", "--options", "{"], "JSON object"),
])
def test_report_argument_mistakes(api: FakeApi, capsys: pytest.CaptureFixture[str], argv: list[str],
                                  message: str) -> None:
    code, _, err = run(capsys, "report", "credit", "7", *argv)
    assert code == 1 and message in err and api.seen == []


def test_report_status_exit_codes(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/reports/5/", (200, _report("failed", error={"code": "labels_not_binary",
                                                                  "message": "label has 3 values"})))
    code, out, err = run(capsys, "report-status", "5")
    assert code == 1 and "labels_not_binary: label has 3 values" in out + err
    api.on("GET", "/reports/5/", (200, _report("running")))
    code, _, err = run(capsys, "report-status", "5", "--wait", "--timeout", "0.1", "--interval", "0.02")
    assert code == 3 and "still running" in err


def test_create_model_and_publish_policy(api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    api.on("POST", "/models/", (409, {"error": {"code": "duplicate_name", "message": "exists"}}))
    api.on("GET", "/models/credit/", (200, {"name": "credit", "team": "alpha", "risk_tier": "high"}))
    assert run(capsys, "create-model", "credit", "--risk-tier", "high")[0] == 1
    code, out, _ = run(capsys, "create-model", "credit", "--risk-tier", "high", "--exist-ok")
    assert code == 0 and out.startswith("Exists: model credit")
    policy = tmp_path / "prod.yaml"
    policy.write_text("name: prod-policy\ntarget_stage: production\n")
    api.on("POST", "/policies/", (400, {"error": {"code": "invalid_policy", "message": "The policy is invalid.",
                                                  "details": {"errors": ["gates: required"]}}}))
    code, _, err = run(capsys, "publish-policy", str(policy))
    assert code == 1 and "  gates: required" in err
    assert json.loads(api.seen[-1].body) == {"document": policy.read_text(), "format": "yaml"}
    api.on("POST", "/policies/", (409, {"error": {"code": "policy_unchanged", "message": "same"}}))
    api.on("GET", "/policies/prod-policy/", (200, {"name": "prod-policy", "version": 2}))
    code, out, _ = run(capsys, "publish-policy", str(policy), "--exist-ok")
    assert code == 0 and "Unchanged: policy prod-policy v2" in out


# --- Receipts -----------------------------------------------------------------------------------

@pytest.fixture
def signed(tmp_path: Path) -> tuple[SignerKey, Path, dict[str, Any]]:
    key = SignerKey.generate("govaudit.test/audit-log")
    body = {"type": cli.RECEIPT_TYPE, "promotion": 41, "outcome": "promoted", "model": "credit", "version": 7,
            "artifact_sha256": hashlib.sha256(b"weights").hexdigest(), "target_stage": "production",
            "policy": {"name": "prod", "version": 3, "digest": "b" * 64}, "gates": [], "reports": [],
            "approvals": [], "waivers": [], "decided_at": "2026-11-26T12:00:00+00:00"}
    path = tmp_path / "receipt.txt"
    path.write_bytes(sign_note(canonical_bytes(body).decode() + "\n", [key]))
    return key, path, body


def test_verify_receipt_with_given_keys(signed: tuple[SignerKey, Path, dict[str, Any]], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    key, path, body = signed
    vkey = key.verifier().encode()
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"weights")
    code, out, _ = run(capsys, "verify-receipt", str(path), "--key", vkey, "--artifact", str(artifact),
                       "--expect-outcome", "promoted")
    assert code == 0 and out.startswith("OK: receipt for promotion #41: credit v7 -> production: promoted")
    assert f"signed by {key.name}+{key.key_id_hex}" in out and "(matches the file)" in out
    lines = tmp_path / "keys.txt"
    lines.write_text(f"# pinned 2026-11-01\n{vkey}\n")
    keys_json = tmp_path / "keys.json"
    keys_json.write_text(json.dumps({"origin": key.name, "keys": [{"verifier_key": vkey, "active": True}]}))
    for keys_file in (lines, keys_json):
        code, out, _ = run(capsys, "--json", "verify-receipt", str(path), "--keys-file", str(keys_file))
        assert code == 0 and json.loads(out)["receipt"] == body
    saved = tmp_path / "promotion.json"
    saved.write_text(json.dumps({"outcome": "promoted", "promotion": {"receipt": path.read_text()}}))
    assert run(capsys, "verify-receipt", str(saved), "--key", vkey)[0] == 0


@pytest.mark.parametrize(("change", "message"), [
    (lambda raw: raw.replace(b'"promoted"', b'"PROMOTED"'), "does not verify"),
    (lambda raw: raw.replace(b"\n\n", b"\n"), "Not a well-formed signed receipt"),
    (lambda raw: b"", "Not a well-formed signed receipt"),
    (lambda raw: b'{"state": "blocked"}', "holds no 'receipt'"),
])
def test_verify_receipt_refuses_changed_receipts(signed: tuple[SignerKey, Path, dict[str, Any]],
                                                 capsys: pytest.CaptureFixture[str], change: Any,
                                                 message: str) -> None:
    key, path, _ = signed
    path.write_bytes(change(path.read_bytes()))
    code, _, err = run(capsys, "verify-receipt", str(path), "--key", key.verifier().encode())
    assert code == 1 and message in err


def test_verify_receipt_refuses_other_keys_and_mismatches(signed: tuple[SignerKey, Path, dict[str, Any]],
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, path, _ = signed
    stranger = SignerKey.generate("govaudit.test/audit-log").verifier().encode()
    code, _, err = run(capsys, "verify-receipt", str(path), "--key", stranger)
    assert code == 1 and "not signed by any trusted key" in err
    assert run(capsys, "verify-receipt", str(path), "--key", "not-a-key")[0] == 1
    other = tmp_path / "other.onnx"
    other.write_bytes(b"other weights")
    code, _, err = run(capsys, "verify-receipt", str(path), "--key", key.verifier().encode(), "--artifact",
                       str(other), "--expect-outcome", "blocked")
    assert code == 1 and "the receipt binds" in err and "the outcome is promoted, not blocked" in err
    note = tmp_path / "checkpoint.txt"  # a genuine signed note that is not a receipt
    note.write_bytes(sign_note("govaudit.test/audit-log\n5\n" + "A" * 43 + "=\n", [key]))
    code, _, err = run(capsys, "verify-receipt", str(note), "--key", key.verifier().encode())
    assert code == 1 and "not one JSON object" in err


def test_verify_receipt_fetches_keys_without_sending_the_token(signed: tuple[SignerKey, Path, dict[str, Any]],
                                                               api: FakeApi, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    key, path, _ = signed
    api.on("GET", "/audit/keys", (200, {"origin": key.name, "keys": [{"verifier_key": key.verifier().encode()}]}))
    code, out, err = run(capsys, "verify-receipt", str(path))
    assert code == 0 and out.startswith("OK:") and "pin them" in err
    assert "authorization" not in api.requests("GET", "/audit/keys")[0].headers
    monkeypatch.delenv("GOVAUDIT_TOKEN")
    assert run(capsys, "verify-receipt", str(path))[0] == 0  # no token needed


def test_rollback_posts_to_the_stage_and_exits_like_a_promotion(api: FakeApi,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    api.on("POST", "/models/credit/stages/production/rollback/",
           (201, promotion("awaiting_approval", kind="rollback", version=6)))
    api.on("GET", "/promotions/41/", (200, promotion("promoted", kind="rollback", version=6)))
    code, _, err = run(capsys, "rollback", "credit", "--stage", "production", "--reason", "v7 misbehaves",
                       "--wait", "--interval", "0.01", "--timeout", "5")
    sent = api.requests("POST", "/models/credit/stages/production/rollback/")
    assert code == 0 and "Requested rollback #41 to v6" in err
    assert json.loads(sent[0].body) == {"reason": "v7 misbehaves"}
    assert sent[0].headers["idempotency-key"].startswith("govaudit-cli-")
    api.on("POST", "/models/credit/stages/production/rollback/", (201, promotion("blocked", kind="rollback")))
    assert run(capsys, "rollback", "credit", "--stage", "production", "--reason", "x")[0] == 2
    assert run(capsys, "rollback", "credit", "--stage", "archived", "--reason", "x")[0] == 1
