"""Write a pack: stream the period's events with their proofs, collect the facts, evaluate the
controls, write the evidence, the signed PDF, the checkpoint and keys, then the manifest and its
DSSE envelope. Memory stays bounded by the period's proof nodes and the PDF, never the log.

The zip's layout and every file's format are specified in docs/audit-packs.md; the standalone
verifier (``audits/pack_verifier.py``) is the executable form of that specification.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone as dt_timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from audits.checkpoints import checkpoint_create, iter_leaf_hashes, latest_checkpoint
from audits.core.canonical import canonical_bytes
from audits.core.note import NoteError, open_checkpoint
from audits.core.merkle import verify_inclusion
from audits.keys import signing_key, trusted_keys
from audits.models import AuditCheckpoint, AuditEvent
from audits.packs.catalogue import catalogue
from audits.packs.checks import EXCEPTION, NOT_APPLICABLE, SATISFIED, ControlResult, evaluate_controls
from audits.packs.collect import EventDigest, collect_facts, resolve_scope
from audits.packs.facts import Facts, LogFacts
from audits.packs.pdf import PackMeta, build_pdf
from audits.packs.proofs import ProofSet
from audits.packs.signing import dsse_envelope, organisation_signer, sign_pdf

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:govaudit:audit-pack:v1"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CHUNK = 2000

Progress = Callable[[int, str], None]


class PackBuildError(Exception):
    """The pack cannot be built; ``code`` and the message say why and what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class BuildResult:
    sha256: str
    size_bytes: int
    manifest_sha256: str
    pages: int
    event_count: int
    checkpoint_size: int
    checkpoint_root: str
    scope: list[str]
    summary: dict[str, Any] = field(default_factory=dict)


def generator_version() -> str:
    try:
        return f"govaudit {metadata.version('govaudit')}"
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "govaudit (unpackaged)"


def format_ts(value: datetime) -> str:
    return value.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _cell(value: Any) -> str:
    """CSV cell; text that a spreadsheet would run as a formula is prefixed with ' (the JSON is exact)."""
    text = "" if value is None else (value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                                     if isinstance(value, (dict, list)) else str(value))
    return "'" + text if text.startswith(FORMULA_START) else text


class _HashingWriter(io.RawIOBase):
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        data = bytes(data)
        self.sha.update(data)
        self.size += len(data)
        self.inner.write(data)
        return len(data)


class PackWriter:
    """A zip whose every file's SHA-256 is recorded for the manifest as it is written."""

    def __init__(self, path: Path, when: datetime) -> None:
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self.when = when.astimezone(dt_timezone.utc).timetuple()[:6]
        self.digests: dict[str, str] = {}

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self.when)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    @contextmanager
    def open(self, name: str) -> Iterator[_HashingWriter]:
        with self.zip.open(self._info(name), "w", force_zip64=True) as raw:
            writer = _HashingWriter(raw)
            yield writer
        self.digests[name] = writer.sha.hexdigest()

    def write(self, name: str, data: bytes) -> None:
        with self.open(name) as fh:
            fh.write(data)

    def write_json(self, name: str, obj: Any) -> None:
        self.write(name, (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False, default=str) + "\n")
                   .encode("utf-8"))

    def write_csv(self, name: str, header: list[str], rows: Any) -> None:
        with self.open(name) as fh:
            text = io.TextIOWrapper(fh, encoding="utf-8", newline="", write_through=True)
            w = csv.writer(text, lineterminator="\n")
            w.writerow(header)
            for row in rows:
                w.writerow([_cell(c) for c in row])
            text.flush()
            text.detach()

    def close(self) -> None:
        self.zip.close()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return format_ts(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _anchor() -> Any:
    cp = checkpoint_create() or latest_checkpoint()
    if cp is None:
        raise PackBuildError("log_empty", "The audit log is empty; there is nothing to anchor a pack to.")
    return cp


def _events_query(cp_size: int, start: datetime, end: datetime) -> Any:
    return AuditEvent.objects.filter(seq__lt=cp_size, ts__gte=start, ts__lt=end).order_by("seq")


def _prove(targets: list[int], cp: AuditCheckpoint, progress: Progress) -> ProofSet:
    proofs = ProofSet(targets, cp.size)
    if not targets:
        return proofs
    start = AuditCheckpoint.objects.filter(size__lte=targets[0]).order_by("-size").first()
    start_size = start.size if start else 0
    nodes = [bytes.fromhex(h) for h in start.compact_range] if start else []
    progress(8, f"hashing leaves {start_size} to {cp.size} for the inclusion proofs")
    root = proofs.compute(start_size, nodes, iter_leaf_hashes(start_size, cp.size))
    if root != bytes(cp.root_hash):
        raise PackBuildError("log_root_mismatch", f"The log's first {cp.size} events do not hash to the signed "
                             "checkpoint's root; run manage.py audit_verify and investigate before making packs.")
    return proofs


_EVENT_CSV = ["seq", "ts", "action", "actor", "actor_type", "target", "detail", "leaf_sha256"]


def _stream_events(writer: PackWriter, cp: AuditCheckpoint, proofs: ProofSet, start: datetime, end: datetime,
                   digest: EventDigest, total: int, progress: Progress) -> bool:
    """Write events.jsonl, events.csv and security_events.csv in one pass; True if every proof checks.

    A zip takes one open entry at a time: the JSON Lines go straight in, the two CSVs are spooled
    to temporary files on disk and copied in afterwards (memory stays flat either way).
    """
    root, size = bytes(cp.root_hash), cp.size
    ok = True
    with tempfile.TemporaryFile() as ec, tempfile.TemporaryFile() as sc:
        events_csv = io.TextIOWrapper(ec, encoding="utf-8", newline="")
        security_csv = io.TextIOWrapper(sc, encoding="utf-8", newline="")
        ew = csv.writer(events_csv, lineterminator="\n")
        sw = csv.writer(security_csv, lineterminator="\n")
        ew.writerow(_EVENT_CSV)
        sw.writerow(_EVENT_CSV)
        with writer.open("evidence/events.jsonl") as jl:
            rows = _events_query(size, start, end).values_list("seq", "leaf", "leaf_hash").iterator(chunk_size=_CHUNK)
            for n, (seq, leaf, leaf_hash) in enumerate(rows, 1):
                leaf, leaf_hash = bytes(leaf), bytes(leaf_hash)
                proof = proofs.proof(seq)
                if hashlib.sha256(b"\x00" + leaf).digest() != leaf_hash \
                        or not verify_inclusion(leaf_hash, seq, size, proof, root):
                    ok = False
                line = {"seq": seq, "leaf": base64.b64encode(leaf).decode("ascii"), "hash": leaf_hash.hex(),
                        "proof": [p.hex() for p in proof]}
                jl.write(json.dumps(line, separators=(",", ":")).encode("ascii") + b"\n")
                row = digest.add(seq, json.loads(leaf))
                cells = [_cell(c) for c in (seq, row.ts, row.action, row.actor, row.actor_type, row.target,
                                            row.detail, leaf_hash.hex())]
                ew.writerow(cells)
                if row.action.startswith("security."):
                    sw.writerow(cells)
                if n % 20_000 == 0:
                    progress(15 + int(35 * n / max(total, 1)), f"writing events ({n} of {total})")
        for name, text, raw in (("evidence/events.csv", events_csv, ec),
                                ("evidence/security_events.csv", security_csv, sc)):
            text.flush()
            raw.seek(0)
            with writer.open(name) as out:
                for chunk in iter(lambda: raw.read(1 << 20), b""):
                    out.write(chunk)
            text.detach()
    return ok


def _controls_rows(controls: list[ControlResult]) -> list[list[Any]]:
    return [[c.id, c.title, c.status, "; ".join(r.id for r in c.checks), "; ".join(c.evidence), c.reason]
            for c in controls]


def _write_evidence(writer: PackWriter, facts: Facts, controls: list[ControlResult]) -> None:
    writer.write_json("evidence/controls.json", _jsonable([asdict(c) for c in controls]))
    writer.write_csv("evidence/controls.csv", ["control", "title", "status", "checks", "evidence", "reason"],
                     _controls_rows(controls))
    writer.write_json("evidence/models.json", _jsonable([asdict(m) for m in facts.models]))
    writer.write_csv("evidence/models.csv", ["model", "team", "risk_tier", "data_categories", "intended_use",
                                             "archived", "deployed", "versions"],
                     [[m.name, m.team, m.risk_tier, " ".join(m.data_categories), m.intended_use, m.archived,
                       " ".join(f"{v.stage}:v{v.version}:{v.artifact_sha256}" for v in m.deployed), m.version_count]
                      for m in facts.models])
    writer.write_json("evidence/reports.json", _jsonable([asdict(r) for r in facts.reports]))
    writer.write_csv("evidence/reports.csv", ["report", "model", "version", "kind", "status", "finished_at",
                                              "result_sha256", "inputs_sha256", "digest_ok", "error_code"],
                     [[r.id, r.model, r.version, r.kind, r.status, _jsonable(r.finished_at), r.result_digest,
                       r.inputs_digest, r.digest_ok, r.error_code] for r in facts.reports])
    writer.write_json("evidence/decisions.json", _jsonable([asdict(p) for p in facts.promotions]))
    writer.write_csv("evidence/decisions.csv", ["promotion", "model", "version", "kind", "target_stage", "state",
                                                "requested_by", "created_at", "decided_at", "policy", "gates",
                                                "approvers", "waived_gates", "evidence_sha256", "receipt_ok"],
                     [[p.id, p.model, p.version, p.kind, p.target_stage, p.state, p.requester,
                       _jsonable(p.created_at), _jsonable(p.decided_at),
                       f"{p.policy['name']} v{p.policy['version']}" if p.policy else "",
                       " ".join(f"{g.get('gate')}={g.get('status')}" for g in p.gates),
                       " ".join(f"{a['user']}:{a['decision']}" for a in p.approvals),
                       " ".join(g.get("gate", "") for g in p.gates if g.get("waived")),
                       " ".join(f"report{e['id']}:{e['digest']}" for e in p.evidence), p.receipt_ok]
                      for p in facts.promotions])
    writer.write_csv("evidence/waivers.csv", ["waiver", "model", "version", "gate", "justification", "granted_by",
                                              "granted_at", "expires_at", "revoked_at", "used_by_promotions"],
                     [[w.id, w.model, w.version, w.gate, w.justification, w.granted_by, _jsonable(w.granted_at),
                       _jsonable(w.expires_at), _jsonable(w.revoked_at), " ".join(map(str, w.used_by))]
                      for w in facts.waivers])
    writer.write_json("evidence/access_review.json", _jsonable({
        "users": [asdict(u) for u in facts.users], "tokens": [asdict(t) for t in facts.tokens],
        "changes": [asdict(e) for e in facts.access_changes]}))
    writer.write_csv("evidence/access_users.csv", ["user", "active", "roles", "teams", "last_login", "date_joined"],
                     [[u.username, u.active, " ".join(u.roles), " ".join(u.teams), _jsonable(u.last_login),
                       _jsonable(u.date_joined)] for u in facts.users])
    writer.write_csv("evidence/access_tokens.csv", ["token", "prefix", "name", "user", "user_active", "team",
                                                    "created_at", "expires_at", "revoked_at", "last_used_at"],
                     [[t.id, t.prefix, t.name, t.user, t.user_active, t.team, _jsonable(t.created_at),
                       _jsonable(t.expires_at), _jsonable(t.revoked_at), _jsonable(t.last_used_at)]
                      for t in facts.tokens])
    writer.write_csv("evidence/access_changes.csv", _EVENT_CSV[:-1],
                     [[e.seq, e.ts, e.action, e.actor, e.actor_type, e.target, e.detail] for e in facts.access_changes])
    writer.write_csv("evidence/alerts.csv", ["alert", "kind", "title", "status", "created_at", "resolved_at"],
                     [[a.id, a.kind, a.title, a.status, _jsonable(a.created_at), _jsonable(a.resolved_at)]
                      for a in facts.alerts])
    writer.write_json("evidence/deployment.json", _jsonable({
        "deployment": asdict(facts.deployment), "schedules": [asdict(s) for s in facts.schedules],
        "minimum_retention_days": facts.minimum_retention_days}))
    writer.write_json("evidence/verification.json", _jsonable({
        "whole_log": facts.log.verification, "period_events": facts.log.events_in_period,
        "proofs_checked_against_checkpoint": facts.log.proofs_ok,
        "checkpoint": {"origin": facts.log.origin, "size": facts.log.checkpoint_size,
                       "root": facts.log.checkpoint_root_hex}}))


def build_pack(*, pack_id: int, framework: str, model_names: list[str], period_start: datetime,
               period_end: datetime, generated_at: datetime, out_path: Path,
               progress: Progress = lambda pct, stage: None, pdf_event_rows: int = 2000) -> BuildResult:
    """Build the whole pack into ``out_path`` (a new file)."""
    from audits.verification import verify_log

    cat = catalogue(framework)
    models = resolve_scope(framework, model_names)
    progress(3, "signing a checkpoint to anchor the pack")
    cp = _anchor()
    log_keys = [k.verifier for k in trusted_keys()]
    try:
        open_checkpoint(cp.note.encode("utf-8"), log_keys)
    except NoteError as exc:
        raise PackBuildError("checkpoint_unverified", f"The anchoring checkpoint does not verify with the "
                             f"trusted keys: {exc}") from exc
    targets = list(_events_query(cp.size, period_start, period_end).values_list("seq", flat=True))
    proofs = _prove(targets, cp, progress)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = PackWriter(out_path, generated_at)
    try:
        digest = EventDigest(pdf_rows=pdf_event_rows)
        progress(15, f"writing {len(targets)} events with their proofs")
        proofs_ok = _stream_events(writer, cp, proofs, period_start, period_end, digest, len(targets), progress)
        del proofs
        progress(52, "verifying the whole audit log")
        verification = verify_log().as_dict()
        log = LogFacts(origin=cp.note.split("\n", 1)[0], checkpoint_size=cp.size,
                       checkpoint_root_hex=bytes(cp.root_hash).hex(), checkpoint_note=cp.note,
                       checkpoint_signed_at=cp.created_at, verification=verification,
                       events_in_period=digest.count, first_seq=digest.first_seq, last_seq=digest.last_seq,
                       proofs_ok=proofs_ok, counts_by_action=dict(digest.by_action), rows=tuple(digest.rows))
        progress(70, "collecting models, decisions, reports and access")
        facts = collect_facts(framework=framework, models=models, period_start=period_start, period_end=period_end,
                              generated_at=generated_at, log=log, events=digest, log_keys=log_keys)
        controls = evaluate_controls(facts)
        _write_evidence(writer, facts, controls)
        progress(78, "drawing and signing the report")
        signer = organisation_signer()
        key = signing_key()
        meta = PackMeta(pack_id=pack_id, framework_name=cat.name, citation=cat.citation,
                        scope_rule=cat.scope_rule(), generator=generator_version(), signer_subject=signer.subject,
                        log_key=key.verifier().encode(), pdf_event_rows=pdf_event_rows)
        pdf, pages = build_pdf(facts, controls, meta)
        unsigned_sha = hashlib.sha256(pdf).hexdigest()
        signed = sign_pdf(pdf, signer, reason=f"{cat.name} audit pack #{pack_id}",
                          location=log.origin)
        del pdf
        writer.write("report.pdf", signed)
        del signed
        writer.write("checkpoint", cp.note.encode("utf-8"))
        writer.write("keys/log-keys.txt", "".join(k.encode() + "\n" for k in log_keys).encode("ascii"))
        writer.write("keys/pdf-signing-cert.pem", signer.cert_pem + b"".join(signer.chain_pem))
        counts = {s: sum(1 for c in controls if c.status == s) for s in (SATISFIED, EXCEPTION, NOT_APPLICABLE)}
        statement = {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": name, "digest": {"sha256": writer.digests[name]}} for name in sorted(writer.digests)],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "pack": pack_id, "framework": framework, "framework_name": cat.name, "citation": cat.citation,
                "scope": {"models": [m.name for m in models], "rule": cat.scope_rule()},
                "period": {"start": format_ts(period_start), "end": format_ts(period_end)},
                "generated_at": format_ts(generated_at), "generator": generator_version(),
                "checkpoint": {"file": "checkpoint", "origin": log.origin, "size": cp.size,
                               "root": bytes(cp.root_hash).hex()},
                "events": {"file": "evidence/events.jsonl", "count": digest.count, "first_seq": digest.first_seq,
                           "last_seq": digest.last_seq},
                "controls": counts,
                "pdf": {"file": "report.pdf", "pages": pages, "unsigned_sha256": unsigned_sha,
                        "signer": signer.subject},
                "keys": {"log": "keys/log-keys.txt", "pdf_certificate": "keys/pdf-signing-cert.pem"},
            },
        }
        manifest = canonical_bytes(statement)
        writer.write("manifest.json", manifest)
        envelope = dsse_envelope(manifest, key)
        writer.zip.writestr(writer._info("manifest.dsse.json"), json.dumps(envelope, indent=1) + "\n")
    finally:
        writer.close()
    progress(97, "computing the pack's digest")
    sha = hashlib.sha256()
    with out_path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return BuildResult(sha256=sha.hexdigest(), size_bytes=out_path.stat().st_size,
                       manifest_sha256=hashlib.sha256(manifest).hexdigest(), pages=pages, event_count=digest.count,
                       checkpoint_size=cp.size, checkpoint_root=bytes(cp.root_hash).hex(),
                       scope=[m.name for m in models], summary=counts)
