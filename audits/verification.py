"""Verify the whole log in the database, streaming, in bounded memory.

Per event: ``seq`` dense from 0; the leaf is canonical JSON whose own ``seq`` is the row's; the
stored leaf hash is SHA-256(0x00 || leaf); the filter columns agree with the leaf. Over the tree:
the root at every stored checkpoint's size equals the checkpoint's root, and every checkpoint note
is signed by a trusted key (successive checkpoints are then consistent, since both roots are
recomputed from the same leaves). Against an outside checkpoint (an auditor's copy): the log is at
least that long and has the same root at that size, which catches a database rolled back to an
older state with its checkpoints, and a fork.

The per-leaf canonical check is the standalone verifier's (``audits/verifier.py``), so the service
and an auditor's copy of that file judge leaves identically.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from typing import Callable

from django.utils import timezone

from audits.core.merkle import TreeBuilder
from audits.core.note import NoteError, VerifierKey, open_checkpoint
from audits.keys import trusted_keys
from audits.models import AuditCheckpoint, AuditEvent, AuditPending, AuditVerification
from audits.verifier import check_canonical_leaf

_CHUNK = 20_000


@dataclass
class VerificationReport:
    """The outcome: ``ok``, the size checked, and for a failure the first bad seq and its kind."""

    ok: bool = True
    size: int = 0
    checkpoints_checked: int = 0
    first_bad_seq: int | None = None
    problem: str = ""
    detail: str = ""
    warnings: list[str] = field(default_factory=list)

    def fail(self, problem: str, detail: str, seq: int | None) -> "VerificationReport":
        self.ok, self.problem, self.detail, self.first_bad_seq = False, problem, detail, seq
        return self

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "size": self.size, "checkpoints_checked": self.checkpoints_checked,
                "first_bad_seq": self.first_bad_seq, "problem": self.problem or None,
                "detail": self.detail or None, "warnings": self.warnings}


def _ts(value: datetime) -> str:
    return value.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _columns_match(leaf: dict, row: tuple) -> bool:
    _, _, _, ts, action, actor_id, actor_name, target_type, target_id, request_id = row
    actor = leaf.get("actor") or {}
    target = leaf.get("target") or {}
    return (leaf.get("action") == action
            and _ts(ts) == leaf.get("ts")
            and (actor.get("id") if actor.get("type") == "user" else None) == actor_id
            and str(actor.get("username") or actor.get("name") or "") == actor_name
            and target.get("type", "") == target_type and str(target.get("id", "")) == target_id
            and (leaf.get("request_id") or "") == request_id)


def _rows():  # type: ignore[no-untyped-def]
    qs = AuditEvent.objects.order_by("seq").values_list(
        "seq", "leaf", "leaf_hash", "ts", "action", "actor_id", "actor_name", "target_type", "target_id",
        "request_id")
    return qs.iterator(chunk_size=_CHUNK)


def verify_log(*, external_checkpoint: bytes | None = None, extra_keys: list[str] | None = None,
               progress: Callable[[int, int], None] | None = None) -> VerificationReport:
    """Check every event, every stored checkpoint and, if given, an outside checkpoint."""
    report = VerificationReport()
    keys: list[VerifierKey] = [k.verifier for k in trusted_keys()]
    keys += [VerifierKey.parse(k) for k in extra_keys or []]

    checkpoints = []
    for cp in AuditCheckpoint.objects.order_by("size"):
        try:
            body, _ = open_checkpoint(cp.note.encode("utf-8"), keys)
        except NoteError as exc:
            return report.fail("checkpoint_signature", f"checkpoint at size {cp.size} is not signed by a trusted "
                               f"key ({exc}); the log may have been rewritten and re-signed", None)
        if body.size != cp.size or body.root_hash != bytes(cp.root_hash):
            return report.fail("checkpoint_tampered", f"checkpoint row at size {cp.size} differs from its "
                               "signed note", None)
        checkpoints.append(body)
    outside = None
    if external_checkpoint is not None:
        try:
            outside, _ = open_checkpoint(external_checkpoint, keys)
        except NoteError as exc:
            return report.fail("external_checkpoint_unverified", f"the outside checkpoint does not verify: {exc}",
                               None)
        checkpoints.append(outside)
    checkpoints.sort(key=lambda c: c.size)

    total = AuditEvent.objects.count()
    builder = TreeBuilder()
    sha256 = hashlib.sha256
    pending_cps = list(checkpoints)
    expected = 0
    for row in _rows():
        seq, leaf, stored_hash = row[0], bytes(row[1]), bytes(row[2])
        if seq != expected:
            kind = "gap" if seq > expected else "duplicate_seq"
            return report.fail(kind, f"expected seq {expected}, found {seq}: events are missing (deleted rows)"
                               if seq > expected else f"seq {seq} appears twice or out of order", expected)
        try:
            parsed = check_canonical_leaf(leaf)
        except ValueError as exc:
            return report.fail("leaf_not_canonical", f"leaf {seq} is not canonical JSON: {exc}", seq)
        if not isinstance(parsed, dict) or parsed.get("seq") != seq:
            return report.fail("leaf_seq_mismatch", f"the leaf stored at seq {seq} says seq "
                               f"{parsed.get('seq') if isinstance(parsed, dict) else '?'}: rows were moved, "
                               "inserted or swapped", seq)
        computed = sha256(b"\x00" + leaf).digest()
        if computed != stored_hash:
            return report.fail("hash_mismatch", f"the leaf hash stored for seq {seq} does not match its bytes: "
                               "the event or its hash was changed", seq)
        if not _columns_match(parsed, row):
            return report.fail("columns_mismatch", f"the filter columns of seq {seq} differ from its leaf: "
                               "they were edited", seq)
        builder.append(computed)
        expected += 1
        while pending_cps and pending_cps[0].size == expected:
            cp = pending_cps.pop(0)
            if builder.root() != cp.root_hash:
                last_good = max((c.size for c in checkpoints if c.size < cp.size), default=0)
                if outside is not None and cp is outside:
                    return report.fail("fork", f"the log's first {cp.size} events have another root than the "
                                       "outside checkpoint of the same size: the log was forked or rewritten "
                                       "and re-signed", last_good)
                return report.fail("root_mismatch", f"the tree of the first {cp.size} events does not match the "
                                   f"signed checkpoint for that size: an event between seq {last_good} and "
                                   f"{cp.size - 1} was changed together with its hash, or the log was forked",
                                   last_good)
            report.checkpoints_checked += 1
        if progress is not None and expected % _CHUNK == 0:
            progress(expected, total)
    report.size = expected
    if pending_cps:
        cp = pending_cps[0]
        kind = "rollback" if outside is not None and cp is outside else "truncated"
        return report.fail(kind, f"a signed checkpoint covers {cp.size} events but the log has only {expected}: "
                           + ("the database was restored to an older state" if kind == "rollback"
                              else "events at the end were deleted"), expected)
    stale = AuditPending.objects.count()
    if stale:
        report.warnings.append(f"{stale} event(s) recorded but not yet sequenced")
    if progress is not None:
        progress(expected, total)
    return report


def verification_run(*, external_checkpoint: bytes | None = None,
                     progress: Callable[[int, int], None] | None = None) -> tuple[AuditVerification, VerificationReport]:
    """Verify and keep the outcome, for the dashboard's "last verification" figure."""
    started = timezone.now()
    report = verify_log(external_checkpoint=external_checkpoint, progress=progress)
    record = AuditVerification.objects.create(
        started_at=started, finished_at=timezone.now(), size=report.size, ok=report.ok,
        first_bad_seq=report.first_bad_seq, problem=f"{report.problem}: {report.detail}" if report.problem else "")
    return record, report

