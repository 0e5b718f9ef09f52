"""The log in the database: append-only, checkpoints, proofs through the API, and tampering caught."""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from rest_framework.test import APIClient

from audits.checkpoints import checkpoint_create, latest_checkpoint, tree_size
from audits.core.merkle import verify_consistency, verify_inclusion
from audits.core.note import Checkpoint, SignerKey, VerifierKey, open_checkpoint, sign_checkpoint
from audits.keys import rotate_signing_key, trusted_keys
from audits.models import AuditCheckpoint, AuditEvent
from audits.services import audit_append
from audits.triggers import create_triggers, drop_triggers
from audits.verification import verify_log
from registry import services as reg
from tests.factories import SYSTEM, Cast
from tests.workers import run_processes


def _grow(cast: Cast, n: int) -> None:
    for i in range(n):
        reg.model_update(actor=SYSTEM, model=cast.models["alpha"], changes={"description": f"edit {i}"})


# --- Append-only ---------------------------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "UPDATE audits_auditevent SET action = 'x' WHERE seq = 0",
    "DELETE FROM audits_auditevent WHERE seq = 0",
    "UPDATE audits_auditcheckpoint SET note = 'x'",
    "DELETE FROM audits_auditcheckpoint",
])
def test_database_refuses_edits(statement: str, cast: Cast) -> None:
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(statement)


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["audits_auditevent", "audits_auditcheckpoint"])
def test_postgresql_refuses_truncate(table: str, cast: Cast) -> None:
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(f"TRUNCATE {table}")


def test_orm_edits_are_refused_too(cast: Cast) -> None:
    with pytest.raises(DatabaseError):
        with transaction.atomic():
            AuditEvent.objects.filter(seq=1).update(action="forged")
    with pytest.raises(DatabaseError):
        with transaction.atomic():
            AuditEvent.objects.filter(seq=1).delete()


# --- Checkpoints and keys ------------------------------------------------------------------------

def test_public_keys_and_checkpoint_need_no_login(cast: Cast) -> None:
    anon = APIClient()
    keys = anon.get("/api/v1/audit/keys").json()
    note = anon.get("/api/v1/audit/checkpoint")
    assert note.status_code == 200 and note["Content-Type"].startswith("text/plain")
    body, opened = open_checkpoint(note.content, [k["verifier_key"] for k in keys["keys"]])
    assert body.size == tree_size() and body.origin == keys["origin"]
    assert [k["active"] for k in keys["keys"]].count(True) == 1


def test_checkpoint_extends_from_the_previous_compact_range(cast: Cast) -> None:
    first = latest_checkpoint()
    _grow(cast, 7)
    second = checkpoint_create()
    assert second is not None and second.size == first.size + 7
    assert checkpoint_create() is None  # nothing new: no checkpoint
    from audits.core.merkle import root_from_leaf_hashes

    leaves = [bytes(h) for h in AuditEvent.objects.order_by("seq").values_list("leaf_hash", flat=True)]
    assert bytes(second.root_hash) == root_from_leaf_hashes(leaves)


def test_key_rotation_keeps_old_checkpoints_verifiable(cast: Cast) -> None:
    old_cp = latest_checkpoint()
    old_key, new_key = rotate_signing_key()
    _grow(cast, 2)
    new_cp = checkpoint_create()
    published = [k.verifier.encode() for k in trusted_keys()]
    assert old_key.encode() in published and new_key.encode() in published
    open_checkpoint(old_cp.note.encode(), published, require=old_key)
    open_checkpoint(new_cp.note.encode(), published, require=new_key)
    assert verify_log().ok


def test_the_signing_key_is_loaded_once_and_again_when_its_source_changes(settings: Any) -> None:
    """Kept in memory while ``signing.key`` (or ``AUDIT_SIGNING_KEY``) is unchanged; a rotation, or a
    key file another process writes, is picked up by the next signature."""
    from audits.keys import _key_dir, _write_private, signing_key

    first = signing_key()
    assert signing_key() is first  # the file is stat'ed, not read and parsed again
    _, rotated = rotate_signing_key()
    assert signing_key().verifier().encode() == rotated.encode()
    elsewhere = SignerKey.generate(first.name)
    _write_private(_key_dir() / "signing.key", elsewhere.encode())  # as another process's rotation would
    assert signing_key().encode() == elsewhere.encode()
    from_env = SignerKey.generate(first.name)
    settings.AUDIT_SIGNING_KEY = from_env.encode()
    assert signing_key().encode() == from_env.encode() and signing_key() is signing_key()


def test_checkpoint_if_due_follows_count_and_age(cast: Cast, settings: Any) -> None:
    from audits.checkpoints import checkpoint_if_due

    settings.AUDIT_CHECKPOINT_EVERY_EVENTS = 5
    settings.AUDIT_CHECKPOINT_EVERY_SECONDS = 3600
    _grow(cast, 3)
    assert checkpoint_if_due() is None
    _grow(cast, 2)
    assert checkpoint_if_due() is not None
    settings.AUDIT_CHECKPOINT_EVERY_SECONDS = 0
    _grow(cast, 1)
    assert checkpoint_if_due() is not None


# --- Proofs through the API ----------------------------------------------------------------------

def test_inclusion_and_consistency_proofs_verify(cast: Cast, client_for: Any) -> None:
    first = latest_checkpoint()
    _grow(cast, 11)
    second = checkpoint_create()
    api = client_for("auditor")
    for index in (0, 1, first.size - 1, second.size - 1, second.size // 2):
        p = api.get("/api/v1/audit/proofs/inclusion", {"index": index, "size": second.size}).json()
        assert bytes.fromhex(p["root"]) == bytes(second.root_hash)
        assert verify_inclusion(bytes.fromhex(p["leaf_hash"]), index, second.size,
                                [bytes.fromhex(h) for h in p["proof"]], bytes(second.root_hash))
    c = api.get("/api/v1/audit/proofs/consistency", {"old": first.size, "new": second.size}).json()
    assert verify_consistency(first.size, second.size, bytes(first.root_hash), bytes(second.root_hash),
                              [bytes.fromhex(h) for h in c["proof"]])
    assert api.get("/api/v1/audit/proofs/inclusion", {"index": 5, "size": 10**9}).status_code == 400
    assert api.get("/api/v1/audit/proofs/inclusion", {"index": -1, "size": 3}).status_code == 400
    assert api.get("/api/v1/audit/proofs/consistency", {"old": 9, "new": 3}).status_code == 400


def test_event_detail_carries_its_inclusion_proof(cast: Cast, client_for: Any) -> None:
    cp = latest_checkpoint()
    body = client_for("compliance_officer").get("/api/v1/audit/events/3/").json()
    proof = body["inclusion"]
    assert body["event"]["seq"] == 3 and body["checkpoint"] == cp.note
    assert verify_inclusion(bytes.fromhex(proof["leaf_hash"]), 3, cp.size, [bytes.fromhex(h) for h in proof["proof"]],
                            bytes(cp.root_hash))


def test_event_filters_and_visibility(cast: Cast, client_for: Any) -> None:
    auditor = client_for("auditor")
    created = auditor.get("/api/v1/audit/events/", {"action": "registry.model.created"}).json()["results"]
    assert {e["event"]["target"]["label"] for e in created} == {"alpha-model", "beta-model"}
    mine = client_for("viewer").get("/api/v1/audit/events/").json()["results"]
    labels = {e["event"]["target"]["label"] for e in mine}
    assert labels and not any("beta" in label for label in labels)
    by_target = auditor.get("/api/v1/audit/events/", {"target_type": "registry.model",
                                                      "target_id": cast.models["beta"].pk}).json()["results"]
    assert by_target and all(e["event"]["target"]["label"] == "beta-model" for e in by_target)
    assert auditor.get("/api/v1/audit/events/", {"since": "not-a-date"}).status_code == 400


def test_export_verifies_with_the_standalone_verifier(cast: Cast, client_for: Any, tmp_path: Any,
                                                      sequenced: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    cp = latest_checkpoint()
    response = client_for("auditor").get("/api/v1/audit/export", {"end": cp.size})
    export = tmp_path / "events.jsonl"
    export.write_bytes(b"".join(response.streaming_content))
    (tmp_path / "checkpoint").write_text(cp.note)
    keys = APIClient().get("/api/v1/audit/keys").json()["keys"]
    verifier = Path(__file__).resolve().parents[2] / "audits" / "verifier.py"
    result = subprocess.run([sys.executable, str(verifier), "--export", str(export), "--checkpoint",
                             str(tmp_path / "checkpoint"), "--key", keys[0]["verifier_key"]],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    downloads = [e for e in sequenced() if e.action == "audits.export.downloaded"]
    assert len(downloads) == 1 and json.loads(bytes(downloads[0].leaf))["actor"]["username"] == "auditor"


def test_management_commands(cast: Cast, tmp_path: Any) -> None:
    from django.core.management import call_command

    _grow(cast, 3)
    call_command("audit_checkpoint")
    assert latest_checkpoint().size == tree_size()
    call_command("audit_verify", "--quiet")
    out = tmp_path / "log.jsonl"
    call_command("audit_export", str(out))
    assert out.read_bytes().count(b"\n") == latest_checkpoint().size
    (tmp_path / "saved.checkpoint").write_text(latest_checkpoint().note)
    call_command("audit_verify", "--quiet", "--checkpoint", str(tmp_path / "saved.checkpoint"))


# --- Tampering -----------------------------------------------------------------------------------

def _as_attacker(fn: Any) -> None:
    """Play a database administrator: lift the triggers, tamper, put them back."""
    drop_triggers(connection)
    try:
        fn()
    finally:
        create_triggers(connection)


def _rewrite(seq: int, leaf: bytes) -> None:
    """Replace an event's leaf consistently (hash and columns too), as a careful attacker would."""
    from datetime import datetime, timezone as dt_timezone

    ts = datetime.strptime(json.loads(leaf)["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt_timezone.utc)
    AuditEvent.objects.filter(seq=seq).update(leaf=leaf, leaf_hash=hashlib.sha256(b"\x00" + leaf).digest(), ts=ts)


def _leaf(seq: int) -> bytes:
    return bytes(AuditEvent.objects.get(seq=seq).leaf)


@pytest.fixture
def log(cast: Cast) -> dict[str, Any]:
    """A log with two checkpoints, the later of which an auditor saved outside the database."""
    _grow(cast, 10)
    checkpoint_create()
    _grow(cast, 10)
    cp = checkpoint_create()
    return {"size": cp.size, "saved": cp.note.encode(), "k": 7}


def test_untouched_log_verifies(log: dict[str, Any], client_for: Any) -> None:
    report = verify_log(external_checkpoint=log["saved"])
    assert report.ok and report.size == log["size"] and report.checkpoints_checked >= 3
    assert client_for("auditor").get("/api/v1/audit/verify").json()["ok"] is True
    r = client_for("auditor").post("/api/v1/audit/verify", {"checkpoint": log["saved"].decode()}, format="json")
    assert r.json()["ok"] is True, r.json()


def _altered(leaf: bytes) -> bytes:
    """The same event with another year: still canonical JSON, different content."""
    i = leaf.index(b'"ts":"') + 9
    return leaf[:i] + bytes([leaf[i] ^ 1]) + leaf[i + 1:]


def _payload_byte(k: int) -> None:
    AuditEvent.objects.filter(seq=k).update(leaf=_altered(_leaf(k)))


def _hash_column(k: int) -> None:
    h = bytearray(bytes(AuditEvent.objects.get(seq=k).leaf_hash))
    h[0] ^= 0x80
    AuditEvent.objects.filter(seq=k).update(leaf_hash=bytes(h))


def _delete_middle(k: int) -> None:
    AuditEvent.objects.filter(seq=k).delete()


def _insert_forged(k: int) -> None:
    rows = list(AuditEvent.objects.filter(seq__gte=k).order_by("-seq"))
    for row in rows:  # shift everything from k up by one, leaves unchanged
        AuditEvent.objects.filter(seq=row.seq).delete()
        row.seq += 1
        row.save(force_insert=True)
    forged = json.loads(_leaf(k + 1))
    forged.update(seq=k, action="registry.model.created")
    import rfc8785

    leaf = rfc8785.dumps(forged)
    AuditEvent.objects.create(seq=k, ts=rows[-1].ts, action="registry.model.created", actor_id=rows[-1].actor_id,
                              actor_name=rows[-1].actor_name, target_type=rows[-1].target_type,
                              target_id=rows[-1].target_id, request_id=rows[-1].request_id, leaf=leaf,
                              leaf_hash=hashlib.sha256(b"\x00" + leaf).digest())


def _swap(k: int) -> None:
    a, b = AuditEvent.objects.get(seq=k), AuditEvent.objects.get(seq=k + 1)
    AuditEvent.objects.filter(seq__in=[k, k + 1]).delete()
    a.seq, b.seq = k + 1, k
    a.save(force_insert=True)
    b.save(force_insert=True)


def _duplicate_seq(k: int) -> None:
    src = AuditEvent.objects.get(seq=k)
    AuditEvent.objects.filter(seq=k + 1).update(leaf=bytes(src.leaf), leaf_hash=bytes(src.leaf_hash),
                                                action=src.action, ts=src.ts, target_id=src.target_id)


def _truncate_tail(k: int) -> None:
    AuditEvent.objects.filter(seq__gte=tree_size() - 3).delete()


def _content_and_hash(k: int) -> None:
    _rewrite(k, _altered(_leaf(k)))


def _checkpoint_row(k: int) -> None:
    cp = latest_checkpoint()
    AuditCheckpoint.objects.filter(size=cp.size).update(root_hash=b"\x00" * 32)


CASES = {
    # name: (tamper, expected problem, expected first bad seq (None: not tied to one), with saved checkpoint)
    "payload byte changed": (_payload_byte, "hash_mismatch", 7),
    "hash column changed": (_hash_column, "hash_mismatch", 7),
    "middle row deleted": (_delete_middle, "gap", 7),
    "forged row inserted": (_insert_forged, "leaf_seq_mismatch", 8),
    "two rows swapped": (_swap, "leaf_seq_mismatch", 7),
    "seq duplicated": (_duplicate_seq, "leaf_seq_mismatch", 8),
    "tail truncated below last checkpoint": (_truncate_tail, "truncated", "size-3"),
    "content and hash rewritten": (_content_and_hash, "root_mismatch", None),
    "checkpoint row edited": (_checkpoint_row, "checkpoint_tampered", None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tampering_is_detected_and_named(case: str, log: dict[str, Any]) -> None:
    tamper, problem, bad = CASES[case]
    _as_attacker(lambda: tamper(log["k"]))
    report = verify_log()
    assert not report.ok, case
    assert report.problem == problem, (case, report.as_dict())
    if bad == "size-3":
        assert report.first_bad_seq == log["size"] - 3
    elif bad is not None:
        assert report.first_bad_seq == bad, (case, report.as_dict())
    assert report.detail


def test_rollback_to_an_older_snapshot_needs_the_outside_checkpoint(log: dict[str, Any]) -> None:
    older = AuditCheckpoint.objects.order_by("size")[1].size

    def restore_old_backup() -> None:
        AuditEvent.objects.filter(seq__gte=older).delete()
        AuditCheckpoint.objects.filter(size__gt=older).delete()

    _as_attacker(restore_old_backup)
    assert verify_log().ok  # the database alone is self-consistent...
    report = verify_log(external_checkpoint=log["saved"])  # ...but not with the auditor's copy
    assert not report.ok and report.problem == "rollback" and report.first_bad_seq == older


def test_fork_resigned_with_the_real_key_is_caught_by_the_outside_checkpoint(log: dict[str, Any]) -> None:
    def fork() -> None:
        _rewrite(log["k"], _altered(_leaf(log["k"])))
        AuditCheckpoint.objects.all().delete()

    _as_attacker(fork)
    checkpoint_create()  # re-signed with the service's own key: same size, other root
    assert verify_log().ok
    report = verify_log(external_checkpoint=log["saved"])
    assert not report.ok and report.problem == "fork"


def test_whole_log_resigned_with_an_untrusted_key(log: dict[str, Any]) -> None:
    rogue = SignerKey.generate("govaudit.local/audit-log")

    def resign() -> None:
        for cp in AuditCheckpoint.objects.all():
            note = sign_checkpoint(Checkpoint("govaudit.local/audit-log", cp.size, bytes(cp.root_hash)), [rogue])
            AuditCheckpoint.objects.filter(size=cp.size).update(note=note.decode(), key_id=rogue.key_id_hex)

    _as_attacker(resign)
    report = verify_log()
    assert not report.ok and report.problem == "checkpoint_signature"
    assert rogue.verifier().encode() not in [k.verifier.encode() for k in trusted_keys()]


def test_outside_checkpoint_by_unknown_key_is_refused(log: dict[str, Any]) -> None:
    rogue = SignerKey.generate("govaudit.local/audit-log")
    forged = sign_checkpoint(Checkpoint("govaudit.local/audit-log", 3, b"\x01" * 32), [rogue])
    report = verify_log(external_checkpoint=forged)
    assert not report.ok and report.problem == "external_checkpoint_unverified"
    assert isinstance(VerifierKey.parse(rogue.verifier().encode()), VerifierKey)


# --- Concurrency ---------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_concurrent_appenders_never_fork_skip_or_repeat() -> None:
    """16 processes append at once (on SQLite and on PostgreSQL, whichever the suite runs on)."""
    per_worker = 25
    outputs = run_processes(16, f"""
        from django.db import transaction
        from audits.services import audit_append
        for i in range({per_worker}):
            with transaction.atomic():
                audit_append(actor={{"type": "system", "name": f"w{{WORKER}}"}}, action="test.concurrent",
                             target=None, payload={{"worker": WORKER, "i": i}})
        print("done")
    """)
    assert outputs == ["done\n"] * 16
    from audits.services import audit_sequence

    audit_sequence(inline=True)  # drain what the writers' bounded after-commit calls left
    events = list(AuditEvent.objects.filter(action="test.concurrent").order_by("seq"))
    assert len(events) == 16 * per_worker
    all_seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert all_seqs == list(range(len(all_seqs)))
    seen = {(p["worker"], p["i"]) for p in (json.loads(bytes(e.leaf))["payload"] for e in events)}
    assert len(seen) == 16 * per_worker
    checkpoint_create()
    assert verify_log().ok


def test_export_lines_are_exact_leaf_bytes(cast: Cast) -> None:
    from audits.selectors import export_lines

    for line in export_lines(start=0, end=3):
        row = json.loads(line)
        assert base64.b64decode(row["leaf"]) == _leaf(row["seq"])


@pytest.mark.parametrize("payload", [{}, {"target": "x", "n": [1, 2.5, None]}, {"label": ',"target":'},
                                     {"ü": "ß\u2028", "nested": {"target": {"target": 1}}}])
@pytest.mark.parametrize("target", [None, {"type": "t", "id": "1", "label": ',"target":{}'}])
def test_leaf_with_seq_equals_full_canonicalisation(payload: dict, target: Any) -> None:
    from audits.core.canonical import canonical_bytes
    from audits.services import leaf_with_seq

    body = {"ts": "2026-11-26T12:00:00.000000Z", "actor": {"type": "system", "name": "t"}, "action": "a.b",
            "target": target, "request_id": None, "payload": payload}
    raw = canonical_bytes(body)
    for seq in (0, 7, 123456789):
        assert leaf_with_seq(raw, seq) == canonical_bytes(body | {"seq": seq})


# --- Parallel verification (PostgreSQL) ----------------------------------------------------------

@pytest.fixture
def committed_log(cast: Cast, monkeypatch: Any) -> dict[str, Any]:
    """The ``log`` fixture's shape, committed (worker processes read it), cut into 4-event ranges."""
    from audits import verification

    monkeypatch.setattr(verification, "_RANGE", 4)
    _grow(cast, 10)
    checkpoint_create()
    _grow(cast, 10)
    cp = checkpoint_create()
    return {"size": cp.size, "saved": cp.note.encode(), "k": 7}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_verification_agrees_on_an_untouched_log(committed_log: dict[str, Any], settings: Any) -> None:
    settings.AUDIT_VERIFY_PARALLEL_MIN_EVENTS = 0
    seen: list[int] = []
    report = verify_log(external_checkpoint=committed_log["saved"], workers=2, progress=lambda d, t: seen.append(d))
    assert report.ok, report.as_dict()
    assert report.workers == 2 and not report.warnings
    assert report.size == committed_log["size"] and report.checkpoints_checked >= 3
    assert seen == sorted(seen) and seen[-1] == committed_log["size"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("case", ["payload byte changed", "hash column changed", "middle row deleted",
                                  "forged row inserted", "two rows swapped", "seq duplicated",
                                  "tail truncated below last checkpoint", "content and hash rewritten"])
def test_parallel_verification_names_tampering_like_the_sequential_scan(
        case: str, committed_log: dict[str, Any], settings: Any) -> None:
    """Each range is checked by another process; the verdict and first bad seq must not change."""
    settings.AUDIT_VERIFY_PARALLEL_MIN_EVENTS = 0
    tamper, problem, bad = CASES[case]
    _as_attacker(lambda: tamper(committed_log["k"]))
    sequential = verify_log(workers=1)
    parallel = verify_log(workers=2)
    assert not parallel.ok and parallel.problem == problem, (case, parallel.as_dict())
    # A log whose seq values are not 0..n-1 is diagnosed by the sequential scan (exact first gap).
    assert parallel.workers == (1 if case == "middle row deleted" else 2)
    assert (parallel.problem, parallel.first_bad_seq) == (sequential.problem, sequential.first_bad_seq)
    if bad == "size-3":
        assert parallel.first_bad_seq == committed_log["size"] - 3
    elif bad is not None:
        assert parallel.first_bad_seq == bad
