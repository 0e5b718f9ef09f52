"""``govaudit``: the command-line client a CI pipeline uses to talk to the govaudit API.

Why a separate, plain client: a CI job installs and runs it next to a training job, so it must not
drag in the service's stack. It speaks HTTP with ``urllib`` only, and imports nothing from the
server side except the pure signed-note code (``audits.core.note``, which needs only
``cryptography``) to check decision receipts offline. ``tests/governance/test_cli.py`` runs it in
a fresh interpreter and asserts that neither Django nor Celery was imported.

The exit code is the contract with CI:

* ``0`` promoted (``promote``, ``promotion-status``), or the command did what it was asked;
* ``1`` any error: bad arguments, network failure, an HTTP 4xx/5xx (the server's message is
  printed with its code and request id), a failed report, a receipt that does not verify;
* ``2`` decided and not promoted: blocked by gates (each failing gate and its reason printed),
  or rejected by an approver, cancelled, expired;
* ``3`` still open when ``--timeout`` ran out (waiting for evidence or for approvals), or a report
  still queued or running.

Configuration: ``--url`` or ``GOVAUDIT_URL``; the token only from ``GOVAUDIT_TOKEN`` or
``--token-file`` (never a command-line argument, which every user of the machine can read in the
process list), sent as ``Authorization: Bearer``, never printed. The client refuses plain
``http://`` to anything but the local machine unless told otherwise, and never follows
redirects (urllib would forward the token to wherever it is sent).
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import http.client
import ipaddress
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_PROMOTED = 2
EXIT_PENDING = 3

API_PREFIX = "/api/v1"
OPEN_STATES = frozenset({"waiting_for_evidence", "awaiting_approval", "approved"})
FINAL_REPORT_STATES = frozenset({"succeeded", "failed"})
RECEIPT_TYPE = "govaudit.promotion-decision/v1"
RISK_TIERS = ("low", "medium", "high", "critical")
STAGES = ("staging", "production")
REPORT_KINDS = ("drift", "bias", "validation")
DEFAULT_WAIT_SECONDS = 1800.0
DEFAULT_POLL_SECONDS = 5.0
DEFAULT_HTTP_TIMEOUT = 60.0
DEFAULT_UPLOAD_TIMEOUT = 600.0  # the server reads the whole file before it answers
CHUNK = 1024 * 1024
RETRY_STATUSES = frozenset({502, 503, 504})
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_SHORT_HASH = 12


# --- Errors -------------------------------------------------------------------------------------

class CliError(Exception):
    """Anything that ends the command with exit code 1; ``code`` mirrors the API's error codes."""

    def __init__(self, message: str, *, code: str = "error", status: int | None = None,
                 details: Any = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details if details is not None else {}
        self.request_id = request_id

    def to_data(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "status": self.status,
                          "details": self.details, "request_id": self.request_id}}

    def human(self) -> str:
        head = f"HTTP {self.status} {self.code}: " if self.status else ""
        tail = f" (request id {self.request_id})" if self.request_id else ""
        return f"{head}{self.message}{tail}"


class UsageError(CliError):
    """Bad command-line arguments (argparse's errors too: exit 1, not argparse's 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="usage")


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad arguments; 2 means "not promoted" here, so raise instead."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


# --- HTTP ---------------------------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: urllib would resend the Authorization header to the new address."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise CliError(f"The server answered {self.status} with a body that is not JSON; is --url the "
                           "govaudit service?", code="bad_response", status=self.status) from exc


@dataclass
class Client:
    """A small JSON-over-HTTP client for ``/api/v1/`` with bearer auth, timeouts and safe retries."""

    base_url: str
    token: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_HTTP_TIMEOUT
    request_id: str | None = None
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self._opener = urllib.request.build_opener(_NoRedirect())

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        full = self.base_url + API_PREFIX + path
        if query:
            full += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        return full

    def call(self, method: str, path: str, *, json_body: Any = None, query: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None, data: Any = None, auth: bool = True,
             retry: bool | None = None, timeout: float | None = None,
             expect: Sequence[int] = (200, 201, 202, 204)) -> Response:
        """Send one request; 4xx/5xx and network failures become ``CliError`` with the server's words.

        ``retry`` (default: only for GET) repeats the request on connection failures and 502/503/504,
        with backoff: safe for reads and for POSTs that carry an Idempotency-Key.
        """
        send_headers = {"Accept": "application/json", "User-Agent": f"govaudit-cli/{_version()}"}
        if json_body is not None:
            data = json.dumps(json_body).encode("utf-8")
            send_headers["Content-Type"] = "application/json"
        if auth:
            if not self.token:
                raise CliError("No API token: set GOVAUDIT_TOKEN (or pass --token-file FILE).", code="no_token")
            send_headers["Authorization"] = f"Bearer {self.token}"
        if self.request_id:
            send_headers["X-Request-ID"] = self.request_id
        send_headers.update(headers or {})
        url = self.url(path, query)
        attempts = len(RETRY_DELAYS) + 1 if (method == "GET" if retry is None else retry) else 1
        for attempt in range(attempts):
            try:
                return self._send(method, url, send_headers, data, expect, timeout or self.timeout)
            except _Transient as exc:
                if attempt + 1 >= attempts:
                    raise exc.error from None
                self.sleep(RETRY_DELAYS[attempt])
        raise AssertionError("unreachable")

    def _send(self, method: str, url: str, headers: dict[str, str], data: Any,
              expect: Sequence[int], timeout: float) -> Response:
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=timeout) as answer:
                response = Response(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as exc:
            response = Response(exc.code, exc.headers, _read_quietly(exc))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                message = (f"No answer from {self.base_url} within {timeout:g} s; the service may be overloaded "
                           "(raise --http-timeout to wait longer).")
            else:
                message = f"Could not reach {self.base_url}: {reason or type(reason).__name__}. Check " \
                          "--url/GOVAUDIT_URL and the network."
            raise _Transient(CliError(message, code="network_error")) from exc
        if response.status in expect:
            return response
        error = _http_error(response)
        if response.status in RETRY_STATUSES:
            raise _Transient(error)
        raise error


class _Transient(Exception):
    """A failure worth retrying (for idempotent requests); carries the error to raise at the end."""

    def __init__(self, error: CliError) -> None:
        super().__init__(error.message)
        self.error = error


def _read_quietly(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except OSError:
        return b""


def _http_error(response: Response) -> CliError:
    request_id = response.headers.get("X-Request-ID") if response.headers else None
    if 300 <= response.status < 400:
        where = response.headers.get("Location", "?") if response.headers else "?"
        return CliError(f"The server redirected to {where}. Point --url/GOVAUDIT_URL at the final address; "
                        "the client does not follow redirects, so the token never goes elsewhere.",
                        code="redirect", status=response.status, request_id=request_id)
    try:
        body = json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return CliError(str(err.get("message") or "no message"), code=str(err.get("code") or "error"),
                        status=response.status, details=err.get("details") or {},
                        request_id=err.get("request_id") or request_id)
    text = response.body.decode("utf-8", "replace").strip()
    snippet = (text[:200] + "…") if len(text) > 200 else text
    return CliError(snippet or "(empty body)", code=f"http_{response.status}", status=response.status,
                    request_id=request_id)


@functools.cache
def _version() -> str:
    try:
        from importlib.metadata import version

        return version("govaudit")
    except Exception:  # noqa: BLE001 - running from a checkout without metadata
        return "unknown"


# --- Local files --------------------------------------------------------------------------------

def sha256_file(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in chunks: artifacts and datasets can be gigabytes."""
    if not path.is_file():
        kind = "a directory; hash one file (e.g. a tar of it)" if path.is_dir() else "not there"
        raise UsageError(f"{path} is {kind}.")
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise CliError(f"Cannot read {path}: {exc.strerror or exc}.", code="unreadable_file") from exc
    return digest.hexdigest(), size


def _quote(value: str) -> str:
    """A value for a multipart header parameter (no quotes or line breaks can break out of it)."""
    return value.replace("\\", "_").replace('"', "_").replace("\r", "_").replace("\n", "_")


@dataclass
class Multipart:
    """A multipart/form-data body streamed from disk, with its exact length known up front.

    The server's upload handler hashes the file as it arrives and stops at its size limit, so the
    client never holds the file in memory either: the body is an iterator of chunks and
    ``Content-Length`` is computed from the file size (no chunked encoding needed).
    """

    fields: list[tuple[str, str]]
    file_field: str
    path: Path
    boundary: str = field(default_factory=lambda: f"govaudit-{uuid.uuid4().hex}")

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _head(self) -> bytes:
        parts = []
        for name, value in self.fields:
            parts.append(f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'
                         f"{value}\r\n")
        mime = "text/csv" if self.path.suffix.lower() == ".csv" else "application/octet-stream"
        parts.append(f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(self.file_field)}"; '
                     f'filename="{_quote(self.path.name)}"\r\nContent-Type: {mime}\r\n\r\n')
        return "".join(parts).encode("utf-8")

    def _tail(self) -> bytes:
        return f"\r\n--{self.boundary}--\r\n".encode("ascii")

    def length(self) -> int:
        return len(self._head()) + self.path.stat().st_size + len(self._tail())

    def chunks(self) -> Iterator[bytes]:
        yield self._head()
        with self.path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                yield chunk
        yield self._tail()


# --- Output -------------------------------------------------------------------------------------

@dataclass
class Output:
    """Human text by default; with ``--json`` exactly one JSON document on stdout per command."""

    as_json: bool

    def emit(self, data: Any, human: str) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2, sort_keys=True))
        else:
            print(human)

    def note(self, text: str) -> None:
        """Progress and hints: stderr, so stdout stays clean for the result."""
        print(text, file=sys.stderr, flush=True)


def _short(digest: str | None) -> str:
    return (digest or "")[:_SHORT_HASH] + ("…" if digest and len(digest) > _SHORT_HASH else "")


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"


def _gate_lines(decision: dict[str, Any] | None) -> list[str]:
    lines = []
    for result in (decision or {}).get("results", []):
        status = result.get("status", "?")
        mark = {"passed": "passed ", "failed": "FAILED ", "waiting": "waiting"}.get(status, status)
        waived = " (waived)" if result.get("waived") else ""
        lines.append(f"  {mark} {result.get('gate')}{waived}: {result.get('reason', '')}")
    return lines


def failing_gates(promotion: dict[str, Any]) -> list[dict[str, Any]]:
    results = (promotion.get("decision") or {}).get("results", [])
    return [{"gate": r.get("gate"), "reason": r.get("reason")} for r in results if r.get("status") == "failed"]


def promotion_exit_code(state: str) -> int:
    """0 promoted, 3 still open, 2 any other final decision (blocked, rejected, cancelled, expired)."""
    if state == "promoted":
        return EXIT_OK
    if state in OPEN_STATES:
        return EXIT_PENDING
    return EXIT_NOT_PROMOTED


def _promotion_text(p: dict[str, Any]) -> str:
    state = p.get("state", "?")
    lines = [f"Promotion #{p.get('id')}: {p.get('model')} v{p.get('version')} -> {p.get('target_stage')}: {state}"]
    policy = p.get("policy")
    if policy:
        lines.append(f"  policy {policy.get('name')} v{policy.get('version')} (sha256 {_short(policy.get('digest'))})")
    lines.extend(_gate_lines(p.get("decision")))
    decision = p.get("decision") or {}
    if state == "rejected":
        lines.append(f"  rejected by {decision.get('rejected_by', '?')}: {decision.get('comment', '')}")
    for a in p.get("approvals") or []:
        comment = f": {a['comment']}" if a.get("comment") else ""
        lines.append(f"  {a.get('decision')} by {a.get('user')} ({', '.join(a.get('roles') or []) or 'no role'})"
                     f"{comment}")
    return "\n".join(lines)


def _report_text(r: dict[str, Any]) -> str:
    line = f"Report {r.get('id')} ({r.get('kind')}, {r.get('model')} v{r.get('version')}): {r.get('status')}"
    lines = [line]
    if r.get("status") == "succeeded":
        result = r.get("result") or {}
        metrics = result.get("metrics") if isinstance(result.get("metrics"), dict) else {}
        scalars = {k: v for k, v in {**result, **metrics}.items()
                   if isinstance(v, (int, float, str, bool)) or v is None}
        for key in sorted(scalars)[:16]:
            lines.append(f"  {key}: {scalars[key]}")
        lines.append(f"  result sha256 {r.get('result_digest')}")
    elif r.get("error"):
        lines.append(f"  {r['error'].get('code')}: {r['error'].get('message')}")
    return "\n".join(lines)


# --- Configuration ------------------------------------------------------------------------------

def _is_local(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url(raw: str | None, *, allow_http: bool) -> str:
    """The service's root URL (``/api/v1`` and trailing slashes tolerated), checked for safety."""
    if not raw:
        raise UsageError("Say where the service is: --url https://govaudit.example.org or GOVAUDIT_URL.")
    parts = urllib.parse.urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--url must be an http(s) URL such as https://govaudit.example.org, got {raw!r}.")
    if parts.username or parts.password:
        raise UsageError("Do not put credentials in --url; the token comes from GOVAUDIT_TOKEN.")
    if parts.scheme == "http" and not _is_local(parts.hostname) and not allow_http:
        raise UsageError(f"Refusing to send the token over plain http to {parts.hostname}: use https, or pass "
                         "--allow-http (or GOVAUDIT_ALLOW_HTTP=1) on a network you trust.")
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _token(args: argparse.Namespace) -> str | None:
    path = getattr(args, "token_file", None)
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"Cannot read --token-file {path}: {exc.strerror or exc}.") from exc
        if not text or len(text.split()) != 1:
            raise UsageError(f"--token-file {path} must hold exactly one token.")
        return text
    value = os.environ.get("GOVAUDIT_TOKEN", "").strip()
    return value or None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _client(args: argparse.Namespace, *, need_token: bool = True) -> Client:
    url = base_url(getattr(args, "url", None) or os.environ.get("GOVAUDIT_URL"),
                   allow_http=getattr(args, "allow_http", False) or _truthy(os.environ.get("GOVAUDIT_ALLOW_HTTP")))
    request_id = getattr(args, "request_id", None) or os.environ.get("GOVAUDIT_REQUEST_ID") or None
    if request_id and not _REQUEST_ID.fullmatch(request_id):
        raise UsageError("--request-id must be 1-64 characters of A-Z a-z 0-9 . _ : -")
    token = _token(args) if need_token else None
    if need_token and not token:
        raise UsageError("No API token: set GOVAUDIT_TOKEN (or pass --token-file FILE); create one with "
                         "POST /api/v1/tokens/ or manage.py create_token.")
    return Client(url, token, timeout=getattr(args, "http_timeout", DEFAULT_HTTP_TIMEOUT) or DEFAULT_HTTP_TIMEOUT,
                  request_id=request_id)


def _out(args: argparse.Namespace) -> Output:
    return Output(as_json=bool(getattr(args, "json", False)))


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _key_values(pairs: Sequence[str] | None, what: str) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a value that parses as JSON (0.91, true, ["a"]) is taken as that."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{what} must look like KEY=VALUE, got {pair!r}.")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out


# --- Waiting ------------------------------------------------------------------------------------

def _poll(fetch: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], *, timeout: float,
          interval: float, describe: Callable[[dict[str, Any]], str], out: Output,
          first: dict[str, Any] | None = None, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Fetch until ``done`` or the timeout; reports each change of ``describe`` on stderr.

    Transient network failures while polling do not end the wait (the GET itself retries a few
    times); other errors do.
    """
    deadline = clock() + timeout
    current = first if first is not None else fetch()
    last = describe(current)
    out.note(f"… {last}")
    while not done(current):
        remaining = deadline - clock()
        if remaining <= 0:
            break
        sleep(min(interval, remaining))
        try:
            current = fetch()
        except CliError as exc:
            if exc.code != "network_error" and exc.status not in RETRY_STATUSES:
                raise
            out.note(f"… {exc.human()} (still waiting)")
            continue
        now = describe(current)
        if now != last:
            out.note(f"… {now}")
            last = now
    return current


# --- Commands -----------------------------------------------------------------------------------

def cmd_whoami(args: argparse.Namespace) -> int:
    me = _client(args).call("GET", "/me/").json()
    token = me.get("token") or {}
    teams = ", ".join(t.get("slug", "?") for t in me.get("teams") or []) or "none"
    human = (f"{me.get('username')} (roles: {', '.join(me.get('roles') or []) or 'none'}; teams: {teams})\n"
             f"  token: {token.get('name', '-')}" + (f" (team {token['team']})" if token.get("team") else ""))
    _out(args).emit(me, human)
    return EXIT_OK


def cmd_create_model(args: argparse.Namespace) -> int:
    client = _client(args)
    body: dict[str, Any] = {"name": args.name}
    for key in ("team", "risk_tier", "description", "intended_use"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.data_category:
        body["data_categories"] = _split_categories(args.data_category)
    try:
        model = client.call("POST", "/models/", json_body=body).json()
        verb = "Created"
    except CliError as exc:
        if not (args.exist_ok and exc.status == 409):
            raise
        model = client.call("GET", f"/models/{_q(args.name)}/").json()
        verb = "Exists:"
    _out(args).emit(model, f"{verb} model {model['name']} (team {model.get('team')}, {model.get('risk_tier')} risk)")
    return EXIT_OK


def cmd_publish_policy(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read policy {path}: {exc}.") from exc
    fmt = args.format or ("json" if path.suffix.lower() == ".json" else "yaml")
    client = _client(args)
    try:
        policy = client.call("POST", "/policies/", json_body={"document": text, "format": fmt}).json()
    except CliError as exc:
        errors = exc.details.get("errors") if isinstance(exc.details, dict) else None
        if errors:
            exc.message = exc.message + "\n" + "\n".join(f"  {e}" for e in errors)
        if exc.code == "policy_unchanged" and args.exist_ok:
            name = _policy_name(text, fmt)
            policy = client.call("GET", f"/policies/{_q(name)}/").json() if name else {"unchanged": True}
            _out(args).emit(policy, f"Unchanged: policy {policy.get('name', name)} v{policy.get('version', '?')}")
            return EXIT_OK
        raise
    _out(args).emit(policy, f"Published policy {policy['name']} v{policy['version']} "
                            f"(sha256 {policy['digest']}, {policy['target_stage']})")
    return EXIT_OK


def _policy_name(text: str, fmt: str) -> str | None:
    """The ``name`` of a policy document, for the --exist-ok lookup (YAML read for one plain key)."""
    if fmt == "json":
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data.get("name") if isinstance(data, dict) else None
    match = re.search(r"^name:\s*['\"]?([a-z0-9-]+)['\"]?\s*(#.*)?$", text, re.MULTILINE)
    return match.group(1) if match else None


def _split_categories(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def cmd_upload(args: argparse.Namespace) -> int:
    path = Path(args.file)
    client = _client(args)
    out = _out(args)
    if args.exist_ok:
        sha, _ = sha256_file(path)
        query = {"sha256": sha, "team": args.team}
        found = client.call("GET", "/datasets/", query=query).json().get("results") or []
        if found:
            ds = found[0]
            out.emit(ds, f"Exists: dataset {ds['name']} v{ds['version']} (id {ds['id']}) has these bytes "
                         f"(sha256 {_short(sha)})")
            return EXIT_OK
    if not path.is_file():
        raise UsageError(f"{path} is not a file.")
    fields = [("name", args.name)]
    if args.team:
        fields.append(("team", args.team))
    categories = _split_categories(args.data_category or [])
    if categories:
        fields.append(("data_categories", ",".join(categories)))
    if args.description:
        fields.append(("description", args.description))
    body = Multipart(fields, "file", path)
    size = path.stat().st_size
    out.note(f"Uploading {path.name} ({_size(size)}) …")
    try:
        # The server checks the whole file (schema, digest) before it answers: allow it time.
        ds = client.call("POST", "/datasets/upload/", data=body.chunks(),
                         timeout=getattr(args, "http_timeout", None) or DEFAULT_UPLOAD_TIMEOUT,
                         headers={"Content-Type": body.content_type, "Content-Length": str(body.length())}).json()
    except CliError as exc:
        if exc.code == "network_error":
            exc.message += (f" The connection broke while sending {_size(size)}; if the file is large, the server "
                            "may have refused it for its size (GOVAUDIT_MAX_UPLOAD_BYTES on the server): sample "
                            "it or convert it to Parquet.")
            raise
        existing = exc.details.get("existing_id") if isinstance(exc.details, dict) else None
        if not (args.exist_ok and exc.code == "duplicate_dataset" and existing):
            raise
        ds = client.call("GET", f"/datasets/{int(existing)}/").json()
        out.emit(ds, f"Exists: dataset {ds['name']} v{ds['version']} (id {ds['id']})")
        return EXIT_OK
    out.emit(ds, f"Uploaded dataset {ds['name']} v{ds['version']} (id {ds['id']}): {ds.get('rows')} rows, "
                 f"{_size(ds.get('size_bytes'))}, sha256 {ds['sha256']}")
    return EXIT_OK


def cmd_register(args: argparse.Namespace) -> int:
    path = Path(args.artifact)
    sha, size = sha256_file(path)
    body: dict[str, Any] = {"artifact_uri": args.uri, "artifact_sha256": sha, "artifact_size": size}
    for key in ("framework", "code_ref", "pipeline_run_id", "description"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    for key, pairs, what in (("metrics", args.metric, "--metric"), ("parameters", args.param, "--param"),
                             ("tags", args.tag, "--tag")):
        values = _key_values(pairs, what)
        if values:
            body[key] = values
    if args.training_dataset:
        body["training_datasets"] = args.training_dataset
    if args.evaluation_dataset:
        body["evaluation_datasets"] = args.evaluation_dataset
    client = _client(args)
    versions = f"/models/{_q(args.model)}/versions/"
    try:
        version = client.call("POST", versions, json_body=body).json()
        verb = "Registered"
    except CliError as exc:
        existing = exc.details.get("existing_version") if isinstance(exc.details, dict) else None
        if not (args.exist_ok and exc.code == "duplicate_artifact" and existing):
            raise
        version = client.call("GET", f"{versions}{int(existing)}/").json()
        verb = "Exists:"
    _out(args).emit(version, f"{verb} {version['model']} version {version['version']} "
                             f"(artifact sha256 {version['artifact_sha256']}, {_size(version.get('artifact_size'))})")
    return EXIT_OK


def _report_exit(report: dict[str, Any], out: Output) -> int:
    status = report.get("status")
    if status == "succeeded":
        return EXIT_OK
    if status == "failed":
        error = report.get("error") or {}
        out.note(f"error: report {report.get('id')} failed: {error.get('code')}: {error.get('message')}")
        return EXIT_ERROR
    return EXIT_PENDING


def _wait_report(client: Client, args: argparse.Namespace, report: dict[str, Any], out: Output) -> int:
    pk = int(report["id"])
    report = _poll(lambda: client.call("GET", f"/reports/{pk}/").json(),
                   lambda r: r.get("status") in FINAL_REPORT_STATES, timeout=args.timeout, interval=args.interval,
                   describe=lambda r: f"report {pk}: {r.get('status')}", out=out)
    out.emit(report, _report_text(report))
    code = _report_exit(report, out)
    if code == EXIT_PENDING:
        out.note(f"Report {pk} is still {report.get('status')} after {args.timeout:g} s; "
                 f"follow it with: govaudit report-status {pk} --wait")
    return code


def cmd_report(args: argparse.Namespace) -> int:
    datasets: dict[str, int] = {}
    if args.kind == "drift":
        if args.reference is None or args.current is None or args.evaluation is not None:
            raise UsageError("A drift report compares two datasets: give --reference ID and --current ID.")
        datasets = {"reference": args.reference, "current": args.current}
    else:
        if args.evaluation is None or args.reference is not None or args.current is not None:
            raise UsageError(f"A {args.kind} report reads one dataset with labels and predictions: "
                             "give --evaluation ID.")
        datasets = {"evaluation": args.evaluation}
    options: dict[str, Any] = {}
    if args.options:
        try:
            options = json.loads(args.options)
        except ValueError as exc:
            raise UsageError(f"--options must be a JSON object: {exc}.") from exc
        if not isinstance(options, dict):
            raise UsageError("--options must be a JSON object, e.g. '{\"label\": \"y\"}'.")
    options.update(_key_values(args.option, "--option"))
    client = _client(args)
    out = _out(args)
    report = client.call("POST", f"/models/{_q(args.model)}/versions/{args.version}/reports/",
                         json_body={"kind": args.kind, "datasets": datasets, "options": options}).json()
    if not args.wait:
        out.emit(report, f"Requested report {report['id']} ({report['kind']}, {report['model']} "
                         f"v{report['version']}): {report['status']}\n  follow it with: govaudit report-status "
                         f"{report['id']} --wait")
        return EXIT_OK
    return _wait_report(client, args, report, out)


def cmd_report_status(args: argparse.Namespace) -> int:
    client = _client(args)
    out = _out(args)
    if args.wait:
        return _wait_report(client, args, {"id": args.report}, out)
    report = client.call("GET", f"/reports/{args.report}/").json()
    out.emit(report, _report_text(report))
    return _report_exit(report, out)


def _finish_promotion(promotion: dict[str, Any], args: argparse.Namespace, out: Output,
                      idempotency_key: str | None = None) -> int:
    """Print the decision, save the receipt if asked, and turn the state into the exit code."""
    state = str(promotion.get("state"))
    code = promotion_exit_code(state)
    receipt_path = getattr(args, "receipt_out", None)
    saved = None
    if receipt_path and promotion.get("receipt"):
        try:
            Path(receipt_path).write_bytes(promotion["receipt"].encode("utf-8"))
        except OSError as exc:
            raise CliError(f"Cannot write the receipt to {receipt_path}: {exc.strerror or exc}.",
                           code="unwritable_file") from exc
        saved = receipt_path
    data = {"outcome": state, "exit_code": code, "failing_gates": failing_gates(promotion),
            "receipt_file": saved, "promotion": promotion}
    if idempotency_key is not None:
        data["idempotency_key"] = idempotency_key
    lines = [_promotion_text(promotion)]
    if code == EXIT_PENDING:
        lines.append(f"Still {state}; wait again with: govaudit promotion-status {promotion.get('id')} --wait")
    if saved:
        lines.append(f"Receipt saved to {saved}; check it with: govaudit verify-receipt {saved}")
    elif receipt_path and code != EXIT_PENDING:
        lines.append("No receipt on this request.")
    out.emit(data, "\n".join(lines))
    if code == EXIT_NOT_PROMOTED:
        gates = failing_gates(promotion)
        if gates:
            out.note("Not promoted: " + "; ".join(f"{g['gate']}: {g['reason']}" for g in gates))
        else:
            out.note(f"Not promoted: the request was {state}.")
    return code


def _wait_promotion(client: Client, args: argparse.Namespace, promotion: dict[str, Any],
                    out: Output) -> dict[str, Any]:
    pk = int(promotion["id"])
    return _poll(lambda: client.call("GET", f"/promotions/{pk}/").json(),
                 lambda p: p.get("state") not in OPEN_STATES, timeout=args.timeout, interval=args.interval,
                 describe=lambda p: f"promotion #{pk}: {p.get('state')}", out=out, first=promotion)


def cmd_promote(args: argparse.Namespace) -> int:
    key = args.idempotency_key or os.environ.get("GOVAUDIT_IDEMPOTENCY_KEY") or f"govaudit-cli-{uuid.uuid4().hex}"
    if len(key) > 128:
        raise UsageError("--idempotency-key must be at most 128 characters.")
    client = _client(args)
    out = _out(args)
    response = client.call("POST", f"/models/{_q(args.model)}/versions/{args.version}/promotions/",
                           json_body={"target_stage": args.to, "reason": args.reason},
                           headers={"Idempotency-Key": key}, retry=True)
    promotion = response.json()
    out.note(f"{'Requested' if response.status == 201 else 'Replayed'} promotion #{promotion['id']} "
             f"(Idempotency-Key {key}; rerun with --idempotency-key {key} to pick it up again)")
    if args.wait and promotion.get("state") in OPEN_STATES:
        promotion = _wait_promotion(client, args, promotion, out)
    return _finish_promotion(promotion, args, out, idempotency_key=key)


def cmd_rollback(args: argparse.Namespace) -> int:
    """Return a stage to its previous holder: a gated request like a promotion (same exit codes)."""
    key = args.idempotency_key or os.environ.get("GOVAUDIT_IDEMPOTENCY_KEY") or f"govaudit-cli-{uuid.uuid4().hex}"
    if len(key) > 128:
        raise UsageError("--idempotency-key must be at most 128 characters.")
    client = _client(args)
    out = _out(args)
    response = client.call("POST", f"/models/{_q(args.model)}/stages/{args.stage}/rollback/",
                           json_body={"reason": args.reason}, headers={"Idempotency-Key": key}, retry=True)
    promotion = response.json()
    out.note(f"{'Requested' if response.status == 201 else 'Replayed'} rollback #{promotion['id']} to "
             f"v{promotion.get('version')} (Idempotency-Key {key})")
    if args.wait and promotion.get("state") in OPEN_STATES:
        promotion = _wait_promotion(client, args, promotion, out)
    return _finish_promotion(promotion, args, out, idempotency_key=key)


def cmd_promotion_status(args: argparse.Namespace) -> int:
    client = _client(args)
    out = _out(args)
    promotion = client.call("GET", f"/promotions/{args.promotion}/").json()
    if args.wait and promotion.get("state") in OPEN_STATES:
        promotion = _wait_promotion(client, args, promotion, out)
    return _finish_promotion(promotion, args, out)


def _decide(args: argparse.Namespace, action: str, verb: str) -> int:
    body = {"comment": args.comment} if action != "cancel" else {}
    promotion = _client(args).call("POST", f"/promotions/{args.promotion}/{action}/", json_body=body).json()
    _out(args).emit(promotion, f"{verb} promotion #{promotion['id']}; it is now {promotion['state']}.\n"
                               + _promotion_text(promotion))
    return EXIT_OK


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, "approve", "Approved")


def cmd_reject(args: argparse.Namespace) -> int:
    if not args.comment.strip():
        raise UsageError("A rejection needs --comment saying why.")
    return _decide(args, "reject", "Rejected")


def cmd_cancel(args: argparse.Namespace) -> int:
    return _decide(args, "cancel", "Cancelled")


# --- Receipts -----------------------------------------------------------------------------------

def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def receipt_bytes(raw: bytes) -> bytes:
    """The signed note in a file: the note itself, or the ``receipt`` of a saved promotion JSON.

    A receipt's text is itself a line of JSON, so only a file that is one whole JSON document (no
    signature block after it) is read as a saved promotion.
    """
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return raw
    for holder in (data, data.get("promotion") if isinstance(data, dict) else None):
        if isinstance(holder, dict) and isinstance(holder.get("receipt"), str) and holder["receipt"]:
            return holder["receipt"].encode("utf-8")
    raise CliError("This JSON file holds no 'receipt' (only decided promotions carry one); give the receipt "
                   "file saved with --receipt-out.", code="receipt_malformed")


def load_keys(key_args: Sequence[str] | None, keys_file: str | None) -> list[str]:
    """Verifier keys from ``--key`` and ``--keys-file`` (a saved /audit/keys answer, or one key a line)."""
    keys = list(key_args or [])
    if keys_file:
        try:
            text = Path(keys_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"Cannot read --keys-file {keys_file}: {exc}.") from exc
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
                keys += [str(k["verifier_key"]) for k in data["keys"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise UsageError(f"--keys-file {keys_file} is JSON but not a /api/v1/audit/keys answer.") from exc
        else:
            keys += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return keys


@dataclass
class VerifiedReceipt:
    body: dict[str, Any]
    signed_by: list[str]


def verify_receipt(data: bytes, keys: Sequence[str]) -> VerifiedReceipt:
    """Check the signed note against trusted verifier keys, then parse its one line of JSON."""
    from audits.core.note import InvalidSignatureError, MalformedNoteError, NoteError, UnverifiedNoteError, \
        VerifierKey, open_note

    trusted = []
    for key in keys:
        try:
            trusted.append(VerifierKey.parse(key))
        except MalformedNoteError as exc:
            raise UsageError(f"{key[:40]!r} is not a verifier key (name+keyid+base64): {exc}.") from exc
    if not trusted:
        raise UsageError("No verifier key to check against: give --key, --keys-file, or --url to fetch them.")
    try:
        note = open_note(data, trusted)
    except InvalidSignatureError as exc:
        raise CliError(f"The signature by {exc.name}+{exc.key_id:08x} does not verify: the receipt was changed "
                       "after it was signed.", code="bad_signature") from exc
    except UnverifiedNoteError as exc:
        signers = sorted({f"{s.name}+{s.key_id:08x}" for s in exc.note.unverified})
        raise CliError(f"The receipt is not signed by any trusted key (signed by {', '.join(signers) or 'nobody'}).",
                       code="unknown_signer") from exc
    except (MalformedNoteError, NoteError) as exc:
        raise CliError(f"Not a well-formed signed receipt: {exc}.", code="receipt_malformed") from exc
    try:
        body = json.loads(note.text, object_pairs_hook=_no_duplicate_keys)
    except ValueError as exc:
        raise CliError(f"The signed text is not one JSON object: {exc}.", code="receipt_malformed") from exc
    if not isinstance(body, dict) or body.get("type") != RECEIPT_TYPE:
        raise CliError(f"The signed text is not a promotion decision receipt (type {RECEIPT_TYPE}).",
                       code="not_a_receipt")
    return VerifiedReceipt(body, [f"{s.name}+{s.key_id:08x}" for s in note.verified])


def cmd_verify_receipt(args: argparse.Namespace) -> int:
    out = _out(args)
    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        raise UsageError(f"Cannot read {args.file}: {exc.strerror or exc}.") from exc
    keys = load_keys(args.key, args.keys_file)
    source = "given keys"
    if not keys:
        if not (getattr(args, "url", None) or os.environ.get("GOVAUDIT_URL")):
            raise UsageError("Give the trusted keys (--key, --keys-file), or --url/GOVAUDIT_URL to fetch the "
                             "service's keys from /api/v1/audit/keys.")
        client = _client(args, need_token=False)
        answer = client.call("GET", "/audit/keys", auth=False).json()
        keys = [str(k.get("verifier_key")) for k in answer.get("keys", []) if k.get("verifier_key")]
        source = f"keys served by {client.base_url}"
        out.note(f"Using the {source}; pin them (--keys-file) for a check that does not trust the server.")
    checked = verify_receipt(receipt_bytes(raw), keys)
    body = checked.body
    problems = []
    if args.artifact:
        sha, _ = sha256_file(Path(args.artifact))
        if sha != body.get("artifact_sha256"):
            problems.append(f"the artifact {args.artifact} has sha256 {sha}, the receipt binds "
                            f"{body.get('artifact_sha256')}")
    if args.expect_outcome and body.get("outcome") != args.expect_outcome:
        problems.append(f"the outcome is {body.get('outcome')}, not {args.expect_outcome}")
    if problems:
        raise CliError("The receipt is genuine but " + "; and ".join(problems) + ".", code="receipt_mismatch",
                       details={"receipt": body})
    policy = body.get("policy") or {}
    human = (f"OK: receipt for promotion #{body.get('promotion')}: {body.get('model')} v{body.get('version')} -> "
             f"{body.get('target_stage')}: {body.get('outcome')} at {body.get('decided_at')}\n"
             f"  signed by {', '.join(checked.signed_by)} ({source})\n"
             f"  artifact sha256 {body.get('artifact_sha256')}"
             + (" (matches the file)" if args.artifact else "") + "\n"
             f"  policy {policy.get('name')} v{policy.get('version')} (sha256 {_short(policy.get('digest'))}); "
             f"{len(body.get('reports') or [])} report(s), {len(body.get('approvals') or [])} approval(s), "
             f"{len(body.get('waivers') or [])} waiver(s)")
    out.emit({"valid": True, "signed_by": checked.signed_by, "keys_source": source, "receipt": body}, human)
    return EXIT_OK


# --- Parser -------------------------------------------------------------------------------------

def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from exc
    if not number > 0 or number != number or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value!r}")
    return number


def _non_negative(value: str) -> float:
    if value.strip() in ("0", "0.0"):
        return 0.0
    return _positive(value)


def _pos_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    S = argparse.SUPPRESS
    common = _Parser(add_help=False)
    common.add_argument("--url", default=S, help="service root, e.g. https://govaudit.example.org (env GOVAUDIT_URL)")
    common.add_argument("--token-file", default=S, metavar="FILE",
                        help="read the API token from FILE instead of GOVAUDIT_TOKEN")
    common.add_argument("--json", action="store_true", default=S, help="print one JSON document (for programs)")
    common.add_argument("--allow-http", action="store_true", default=S,
                        help="allow plain http to a non-local host (env GOVAUDIT_ALLOW_HTTP=1)")
    common.add_argument("--http-timeout", type=_positive, default=S, metavar="SECONDS",
                        help=f"per-request timeout (default {DEFAULT_HTTP_TIMEOUT:g})")
    common.add_argument("--request-id", default=S, metavar="ID",
                        help="X-Request-ID to send, recorded in the audit log (env GOVAUDIT_REQUEST_ID)")

    parser = _Parser(prog="govaudit", parents=[common],
                     description="Pipeline client for the govaudit service: register versions, upload datasets, "
                                 "request reports and gated promotions, verify decision receipts.",
                     epilog="Exit codes: 0 promoted (or done), 1 error, 2 not promoted (blocked by gates, "
                            "rejected, cancelled, expired), 3 still open at the timeout. See docs/cli.md.")
    parser.add_argument("--version", action="version", version=f"govaudit {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def waiting(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--wait", action="store_true", help=f"poll until {what}")
        p.add_argument("--timeout", type=_non_negative, default=DEFAULT_WAIT_SECONDS, metavar="SECONDS",
                       help=f"give up waiting after this long (default {DEFAULT_WAIT_SECONDS:g}); exit 3")
        p.add_argument("--interval", type=_positive, default=DEFAULT_POLL_SECONDS, metavar="SECONDS",
                       help=f"time between polls (default {DEFAULT_POLL_SECONDS:g})")

    command("whoami", cmd_whoami, "who the token belongs to: roles, teams")

    p = command("create-model", cmd_create_model, "register a new model for your team")
    p.add_argument("name")
    p.add_argument("--team", help="team slug (needed if you belong to several)")
    p.add_argument("--risk-tier", choices=RISK_TIERS)
    p.add_argument("--description")
    p.add_argument("--intended-use")
    p.add_argument("--data-category", action="append", metavar="CATEGORY", help="repeatable or comma-separated")
    p.add_argument("--exist-ok", action="store_true", help="a model of that name already there is not an error")

    p = command("publish-policy", cmd_publish_policy, "publish a promotion policy document (compliance officers)")
    p.add_argument("file", help="the policy as YAML or JSON (docs/policies.md)")
    p.add_argument("--format", choices=["yaml", "json"], help="default: from the file name")
    p.add_argument("--exist-ok", action="store_true", help="an unchanged document is not an error")

    p = command("upload", cmd_upload, "upload a CSV or Parquet dataset (streamed)")
    p.add_argument("file")
    p.add_argument("--name", required=True, help="dataset name (versions are numbered per name)")
    p.add_argument("--team", help="team slug (needed if you belong to several)")
    p.add_argument("--data-category", action="append", metavar="CATEGORY", help="repeatable or comma-separated")
    p.add_argument("--description")
    p.add_argument("--exist-ok", action="store_true",
                   help="if your team already registered these bytes, answer that dataset (checked by digest "
                        "before uploading)")

    p = command("register", cmd_register, "register a model version; the artifact's SHA-256 is computed here")
    p.add_argument("model")
    p.add_argument("--artifact", required=True, metavar="FILE", help="the model file to hash (streamed)")
    p.add_argument("--uri", required=True, help="where the artifact is stored, e.g. s3://models/credit/7/model.onnx")
    p.add_argument("--framework")
    p.add_argument("--code-ref", help="e.g. git:4f1c2e9")
    p.add_argument("--pipeline-run-id")
    p.add_argument("--description")
    p.add_argument("--metric", action="append", metavar="KEY=VALUE", help="repeatable; VALUE read as JSON")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="repeatable; VALUE read as JSON")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE", help="repeatable")
    p.add_argument("--training-dataset", action="append", type=_pos_int, metavar="ID")
    p.add_argument("--evaluation-dataset", action="append", type=_pos_int, metavar="ID")
    p.add_argument("--exist-ok", action="store_true", help="the same artifact already registered is not an error")

    p = command("report", cmd_report, "request a drift, bias or validation report on a version")
    p.add_argument("model")
    p.add_argument("version", type=_pos_int)
    p.add_argument("--kind", required=True, choices=REPORT_KINDS)
    p.add_argument("--evaluation", type=_pos_int, metavar="ID", help="dataset id (bias, validation)")
    p.add_argument("--reference", type=_pos_int, metavar="ID", help="dataset id (drift)")
    p.add_argument("--current", type=_pos_int, metavar="ID", help="dataset id (drift)")
    p.add_argument("--options", metavar="JSON", help='options as a JSON object (docs/reports.md)')
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help='one option; VALUE read as JSON, e.g. sensitive_features=\'["sex"]\'')
    waiting(p, "the report is computed")

    p = command("report-status", cmd_report_status, "show a report (and wait for it)")
    p.add_argument("report", type=_pos_int)
    waiting(p, "the report is computed")

    p = command("promote", cmd_promote, "request a gated promotion (and wait for the decision)")
    p.add_argument("model")
    p.add_argument("version", type=_pos_int)
    p.add_argument("--to", required=True, choices=STAGES, help="target stage")
    p.add_argument("--reason", required=True, help="why; approvers and auditors read it")
    p.add_argument("--idempotency-key", metavar="KEY",
                   help="reuse one key across CI retries so a rerun picks up the same request (env "
                        "GOVAUDIT_IDEMPOTENCY_KEY; default: a new random key)")
    p.add_argument("--receipt-out", metavar="FILE", help="save the signed decision receipt here")
    waiting(p, "the request is decided")

    p = command("rollback", cmd_rollback,
                "return a stage to the version that held it before, through its rollback policy (and wait)")
    p.add_argument("model")
    p.add_argument("--stage", required=True, choices=STAGES)
    p.add_argument("--reason", required=True, help="why; approvers and auditors read it")
    p.add_argument("--idempotency-key", metavar="KEY", help="as for promote")
    p.add_argument("--receipt-out", metavar="FILE", help="save the signed decision receipt here")
    waiting(p, "the request is decided")

    p = command("promotion-status", cmd_promotion_status, "show a promotion request (and wait for it)")
    p.add_argument("promotion", type=_pos_int)
    p.add_argument("--receipt-out", metavar="FILE", help="save the signed decision receipt here")
    waiting(p, "the request is decided")

    p = command("approve", cmd_approve, "approve a promotion request (approvers)")
    p.add_argument("promotion", type=_pos_int)
    p.add_argument("--comment", default="")

    p = command("reject", cmd_reject, "reject a promotion request, saying why (approvers)")
    p.add_argument("promotion", type=_pos_int)
    p.add_argument("--comment", required=True)

    p = command("cancel", cmd_cancel, "withdraw an open promotion request")
    p.add_argument("promotion", type=_pos_int)

    p = command("verify-receipt", cmd_verify_receipt, "verify a signed decision receipt offline")
    p.add_argument("file", help="the receipt (a signed note), or a saved promotion JSON holding one")
    p.add_argument("--key", action="append", metavar="VERIFIER_KEY", help="a trusted key, name+keyid+base64")
    p.add_argument("--keys-file", metavar="FILE",
                   help="trusted keys: a saved GET /api/v1/audit/keys answer, or one verifier key per line")
    p.add_argument("--artifact", metavar="FILE", help="also check the receipt binds this file's SHA-256")
    p.add_argument("--expect-outcome", choices=["promoted", "blocked", "rejected", "cancelled", "expired"],
                   help="also require this outcome")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 promoted/done, 1 error, 2 not promoted, 3 pending)."""
    parser = build_parser()
    as_json = False
    try:
        args = parser.parse_args(argv)
        as_json = bool(getattr(args, "json", False))
        return int(args.func(args))
    except CliError as exc:
        if as_json:
            print(json.dumps(exc.to_data(), indent=2, sort_keys=True))
        print(f"govaudit: error: {exc.human()}", file=sys.stderr)
        return EXIT_ERROR
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except KeyboardInterrupt:
        print("govaudit: interrupted", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
