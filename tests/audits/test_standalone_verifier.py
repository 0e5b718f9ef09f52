"""The auditors' single-file verifier: tamper detection, CLI behaviour, and agreement with core.

Why both a function and a subprocess: auditors run the file, the service imports the function;
both must give the same verdict. And why agreement tests: ``audits/verifier.py`` re-implements
Merkle hashing, signed notes and JCS on purpose (so it can be read and copied alone); the service
writes with ``audits.core``. If the two ever disagree, honest logs would fail verification, or
worse, so they are compared on the same inputs here.
"""
from __future__ import annotations

import ast
import base64
import json
import random
import shutil
import struct
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import rfc8785

from audits import verifier
from audits.core.canonical import canonical_bytes, is_canonical
from audits.core.merkle import EMPTY_ROOT, TreeBuilder, leaf_hash, root_from_leaf_hashes
from audits.core.note import Checkpoint, SignerKey, VerifierKey, key_id, sign_checkpoint, sign_note

VERIFIER_PATH = Path(verifier.__file__).resolve()
ORIGIN = "audit.example.org/log"
SIGNER = SignerKey.parse(
    # A fixed test-only key so failures are reproducible; never used outside tests.
    SignerKey("audit.example.org/log", bytes(range(32))).encode()
)
VKEY = SIGNER.verifier().encode()


def make_event(seq: int) -> dict:
    """A realistic leaf; some use features that take the verifier's slow paths."""
    event: dict = {
        "seq": seq,
        "ts": f"2026-11-26T12:45:{seq % 60:02d}.{seq:06d}Z",
        "actor": {"type": "user", "id": 17, "username": "alice", "roles": ["reviewer", "approver"]},
        "action": "model.promote" if seq % 3 else "gate.evaluate",
        "target": {"type": "registry.model", "id": str(1000 + seq), "label": f"fraud-detector v{seq}"},
        "request_id": None if seq % 4 == 0 else f"req-{seq:08x}",
        "payload": {"from": "staging", "to": "production", "checks": {"passed": True, "count": seq}},
    }
    if seq % 5 == 1:
        event["payload"]["note"] = "Zürich \u2014 caf\u00e9 \u20ac \"quoted\" back\\slash\nnewline \x01"
    if seq % 7 == 2:
        event["payload"]["emoji"] = "\U0001f600 non-BMP"  # slow path: 4-byte UTF-8
        event["payload"]["\U0001f511 key"] = "non-BMP key"
    if seq % 11 == 3:
        event["payload"]["auc"] = 0.9375  # slow path: a float
        event["payload"]["big"] = 1.5e300
    if seq % 13 == 4:
        event["target"] = None
        event["payload"]["nested"] = [[], {}, [1, [2, [3]]], ""]
    return event


@dataclass
class Export:
    lines: list[bytes]
    leaves: list[bytes]
    checkpoint: bytes
    root: bytes

    def write(self, tmp: Path, name: str = "events.jsonl") -> Path:
        path = tmp / name
        path.write_bytes(b"".join(self.lines))
        return path


def export_line(seq: int, leaf: bytes, with_hash: bool = True) -> bytes:
    if not with_hash:
        return b'{"seq":%d,"leaf":"%s"}\n' % (seq, base64.b64encode(leaf))
    return b'{"seq":%d,"leaf":"%s","hash":"%s"}\n' % (seq, base64.b64encode(leaf), leaf_hash(leaf).hex().encode())


def build_export(n: int, signer: SignerKey = SIGNER) -> Export:
    leaves = [canonical_bytes(make_event(i)) for i in range(n)]
    root = root_from_leaf_hashes([leaf_hash(x) for x in leaves])
    note = sign_checkpoint(Checkpoint(ORIGIN, n, root), [signer])
    return Export([export_line(i, x) for i, x in enumerate(leaves)], leaves, note, root)


def checkpoint_for(leaves: Sequence[bytes], signer: SignerKey = SIGNER, size: int | None = None, root: bytes | None = None) -> bytes:
    size = len(leaves) if size is None else size
    root = root_from_leaf_hashes([leaf_hash(x) for x in leaves[:size]]) if root is None else root
    return sign_checkpoint(Checkpoint(ORIGIN, size, root), [signer])


N = 41


@pytest.fixture(scope="module")
def export() -> Export:
    return build_export(N)


def run_cli(*args: str | Path, cwd: Path | None = None, script: Path = VERIFIER_PATH) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


# --------------------------------------------------------------------------- untouched log


def test_untouched_export_verifies(export: Export) -> None:
    result = verifier.verify_export(export.lines, export.checkpoint, [VKEY])
    assert result.ok, result
    assert result.size == N
    assert result.first_bad_seq is None and result.problem is None
    assert result.root_hash == export.root
    assert result.checkpoint is not None and result.checkpoint.signed_by == (ORIGIN,)


def test_untouched_export_verifies_via_cli(export: Export, tmp_path: Path) -> None:
    path = export.write(tmp_path)
    cp = tmp_path / "checkpoint.txt"
    cp.write_bytes(export.checkpoint)
    proc = run_cli("--export", path, "--checkpoint", cp, "--key", VKEY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"OK: {N} events verified")
    quiet = run_cli("--export", path, "--checkpoint", cp, "--key", VKEY, "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == ""


def test_copied_single_file_runs_alone(export: Export, tmp_path: Path) -> None:
    """An auditor copies only verifier.py: it must not need the project on sys.path."""
    alone = tmp_path / "alone"
    alone.mkdir()
    script = alone / "verifier.py"
    shutil.copy(VERIFIER_PATH, script)
    path = export.write(alone)
    (alone / "cp.txt").write_bytes(export.checkpoint)
    proc = subprocess.run(
        [sys.executable, "-I", str(script), "--export", str(path), "--checkpoint", str(alone / "cp.txt"), "--key", VKEY],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=alone,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_verifier_imports_only_stdlib_and_cryptography() -> None:
    tree = ast.parse(VERIFIER_PATH.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            roots.add((node.module or "").split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"cryptography", "__future__"}
    assert roots <= allowed, roots - allowed


def test_keys_json_option(export: Export, tmp_path: Path) -> None:
    old = SignerKey.generate(ORIGIN)
    keys = {
        "keys": [
            {"name": ORIGIN, "key_id": f"{old.key_id:08x}", "verifier_key": old.verifier().encode(), "active": False, "created": "2026-01-01T00:00:00.000000Z"},
            {"name": ORIGIN, "key_id": f"{SIGNER.key_id:08x}", "verifier_key": VKEY, "active": True, "created": "2026-06-01T00:00:00.000000Z"},
        ]
    }
    (tmp_path / "keys.json").write_text(json.dumps(keys))
    (tmp_path / "cp.txt").write_bytes(export.checkpoint)
    proc = run_cli("--export", export.write(tmp_path), "--checkpoint", tmp_path / "cp.txt", "--keys-json", tmp_path / "keys.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_usage_errors_exit_2(export: Export, tmp_path: Path) -> None:
    (tmp_path / "cp.txt").write_bytes(export.checkpoint)
    path = export.write(tmp_path)
    assert run_cli("--export", path, "--checkpoint", tmp_path / "cp.txt").returncode == 2  # no key
    bad = run_cli("--export", path, "--checkpoint", tmp_path / "cp.txt", "--key", "not-a-key")
    assert bad.returncode == 2 and "malformed verifier key" in bad.stderr
    assert run_cli("--export", tmp_path / "missing.jsonl", "--checkpoint", tmp_path / "cp.txt", "--key", VKEY).returncode == 2


def test_stdin_export(export: Export, tmp_path: Path) -> None:
    (tmp_path / "cp.txt").write_bytes(export.checkpoint)
    proc = subprocess.run(
        [sys.executable, str(VERIFIER_PATH), "--export", "-", "--checkpoint", str(tmp_path / "cp.txt"), "--key", VKEY],
        input=b"".join(export.lines),
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- tampering


def _reencode(leaf: bytes, change) -> bytes:
    event = json.loads(leaf)
    change(event)
    return canonical_bytes(event)


Case = tuple[list[bytes], bytes, str, int | None]  # lines, checkpoint note, problem, first bad seq


def _tamper_cases(export: Export) -> dict[str, Case]:
    """Every way of damaging an export we check, with the verdict each must produce."""
    lines, leaves, cp = export.lines, export.leaves, export.checkpoint
    k = 17

    def splice(at: int, *new: bytes, drop: int = 1) -> list[bytes]:
        return lines[:at] + list(new) + lines[at + drop:]

    def line_with_hash(seq: int, leaf: bytes, hash_of: bytes) -> bytes:
        return b'{"seq":%d,"leaf":"%s","hash":"%s"}\n' % (seq, base64.b64encode(leaf), leaf_hash(hash_of).hex().encode())

    cases: dict[str, Case] = {}
    # A payload byte changed; the line keeps the original hash.
    changed = leaves[k].replace(b'"production"', b'"pr0duction"')
    assert changed != leaves[k] and is_canonical(changed)
    cases["payload byte changed"] = (splice(k, line_with_hash(k, changed, leaves[k])), cp, "hash_mismatch", k)
    # ... and with the line's hash recomputed (an attacker who rewrites the export): the root catches it.
    cases["payload changed, hash recomputed"] = (splice(k, export_line(k, changed)), cp, "root_mismatch", None)
    cases["payload changed, no hash on line"] = (
        splice(k, export_line(k, changed, with_hash=False)), cp, "root_mismatch", None)
    raw = bytearray(leaves[k])
    raw[raw.index(b"alice")] ^= 0x20  # 'a' -> 'A'
    cases["leaf byte flipped"] = (splice(k, line_with_hash(k, bytes(raw), leaves[k])), cp, "hash_mismatch", k)

    cases["line deleted"] = (splice(k), cp, "seq_mismatch", k)
    cases["two lines swapped"] = (splice(k, lines[k + 1], lines[k], drop=2), cp, "seq_mismatch", k)
    cases["seq duplicated"] = (splice(k + 1, lines[k], drop=0), cp, "seq_mismatch", k + 1)
    cases["seq duplicated, tail dropped"] = (splice(k + 1, lines[k], drop=0)[:-1], cp, "seq_mismatch", k + 1)
    cases["first line deleted"] = (lines[1:], cp, "seq_mismatch", 0)

    # Swapped lines with renumbered envelopes and recomputed hashes: the leaves' own seq catches it.
    swapped = splice(k, export_line(k, leaves[k + 1]), export_line(k + 1, leaves[k]), drop=2)
    cases["swapped and renumbered"] = (swapped, cp, "leaf_seq_mismatch", k)
    # Swapped, renumbered, and each leaf's seq rewritten: canonical and consistent, but the root differs.
    a = _reencode(leaves[k + 1], lambda e: e.update(seq=k))
    b = _reencode(leaves[k], lambda e: e.update(seq=k + 1))
    cases["swapped, leaves rewritten"] = (
        splice(k, export_line(k, a), export_line(k + 1, b), drop=2), cp, "root_mismatch", None)

    # Non-canonical leaves (hash recomputed so only the canonical check can catch them).
    def noncanonical(name: str, leaf: bytes, at: int = k) -> None:
        assert leaf != leaves[at], name
        cases[name] = (splice(at, export_line(at, leaf)), cp, "leaf_not_canonical", at)

    noncanonical("extra whitespace in leaf", leaves[k].replace(b'"action":', b'"action": '))
    reversed_keys = dict(reversed(json.loads(leaves[k]).items()))
    noncanonical("keys not sorted", json.dumps(reversed_keys, ensure_ascii=False, separators=(",", ":")).encode())
    noncanonical("duplicate key in leaf", leaves[k][:-1] + b',"seq":%d}' % k)
    k_uni = next(i for i in range(N) if not leaves[i].isascii())
    escaped = json.dumps(json.loads(leaves[k_uni]), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    noncanonical("escaped non-ASCII in leaf", escaped.encode(), at=k_uni)
    noncanonical("leaf not an object", canonical_bytes([k]))
    noncanonical("invalid UTF-8 in leaf", leaves[k].replace(b"alice", b"al\xffce"))
    no_seq = _reencode(leaves[k], lambda e: e.pop("seq"))
    cases["leaf without seq"] = (splice(k, export_line(k, no_seq)), cp, "leaf_seq_mismatch", k)

    # Malformed lines.
    bad_lines = {
        "line not JSON": splice(k, b"garbage\n"),
        "blank line": splice(k, b"\n", drop=0),
        "line cut short": lines[:k] + [lines[k][:50]],
        "leaf not base64": splice(k, b'{"seq":%d,"leaf":"***"}\n' % k),
        "seq is a string": splice(k, lines[k].replace(b'"seq":%d' % k, b'"seq":"%d"' % k)),
        "duplicate seq key in line": splice(k, lines[k].replace(b'{"seq":%d' % k, b'{"seq":%d,"seq":%d' % (k, k))),
        "uppercase hash": splice(k, lines[k][:-67] + lines[k][-67:].upper()),
    }
    for name, damaged in bad_lines.items():
        cases[name] = (damaged, cp, "line_malformed", k)

    # Length problems.
    cases["truncated tail"] = (lines[:-3], cp, "truncated", N - 3)
    cases["empty export"] = ([], cp, "truncated", 0)
    extra = export_line(N, canonical_bytes(make_event(N)))
    cases["extra line beyond checkpoint"] = (lines + [extra], cp, "beyond_checkpoint", N)

    # Checkpoint problems.
    stranger = checkpoint_for(leaves, SignerKey.generate(ORIGIN))
    cases["checkpoint signed by unknown key"] = (lines, stranger, "checkpoint_unverified", None)
    same_name = checkpoint_for(leaves, SignerKey(ORIGIN, bytes(32)))
    cases["checkpoint by same-name other key"] = (lines, same_name, "checkpoint_unverified", None)
    altered = cp.replace(b"\n%d\n" % N, b"\n%d\n" % (N - 1))
    assert altered != cp
    cases["checkpoint text altered after signing"] = (lines, altered, "checkpoint_bad_signature", None)
    forked = checkpoint_for(leaves[:k] + [changed] + leaves[k + 1:])
    cases["forked root (signed by the real key)"] = (lines, forked, "root_mismatch", None)
    cases["checkpoint not a note"] = (lines, b"hello\n", "checkpoint_malformed", None)
    zero_padded = sign_note(f"{ORIGIN}\n0{N}\n{base64.b64encode(export.root).decode()}\n", [SIGNER])
    cases["checkpoint size with leading zero"] = (lines, zero_padded, "checkpoint_malformed", None)
    return cases


TAMPER_NAMES = list(_tamper_cases(build_export(N)).keys())


@pytest.mark.parametrize("name", TAMPER_NAMES)
def test_tampering_is_detected(export: Export, name: str) -> None:
    lines, cp, problem, bad_seq = _tamper_cases(export)[name]
    result = verifier.verify_export(lines, cp, [VKEY])
    assert not result.ok, name
    assert (result.problem, result.first_bad_seq) == (problem, bad_seq), f"{name}: {result}"
    assert result.detail


@pytest.mark.parametrize(
    "name",
    ["payload byte changed", "line deleted", "two lines swapped", "seq duplicated", "extra whitespace in leaf",
     "truncated tail", "checkpoint signed by unknown key", "forked root (signed by the real key)"],
)
def test_tampering_is_detected_via_cli(export: Export, tmp_path: Path, name: str) -> None:
    lines, cp, problem, bad_seq = _tamper_cases(export)[name]
    (tmp_path / "events.jsonl").write_bytes(b"".join(lines))
    (tmp_path / "cp.txt").write_bytes(cp)
    proc = run_cli("--export", tmp_path / "events.jsonl", "--checkpoint", tmp_path / "cp.txt", "--key", VKEY)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    where = f"seq {bad_seq}" if bad_seq is not None else "log"
    assert proc.stdout.startswith(f"FAIL: {where}: {problem}: "), proc.stdout


# --------------------------------------------------------------------------- several checkpoints


def test_older_checkpoints_are_checked_in_the_same_pass(export: Export) -> None:
    older = [checkpoint_for(export.leaves, size=s) for s in (1, 8, 20, N)]
    result = verifier.verify_export(export.lines, export.checkpoint, [VKEY], extra_checkpoints=older)
    assert result.ok, result
    fork = checkpoint_for(export.leaves, size=20, root=root_from_leaf_hashes([leaf_hash(b"x")] * 20))
    result = verifier.verify_export(export.lines, export.checkpoint, [VKEY], extra_checkpoints=[older[1], fork])
    assert (result.ok, result.problem, result.first_bad_seq) == (False, "root_mismatch", None)
    assert "[0, 20)" in (result.detail or "")
    bigger = checkpoint_for(export.leaves + [canonical_bytes(make_event(N))])
    result = verifier.verify_export(export.lines, export.checkpoint, [VKEY], extra_checkpoints=[bigger])
    assert result.problem == "beyond_checkpoint"
    conflict = checkpoint_for(export.leaves, size=N, root=EMPTY_ROOT)
    result = verifier.verify_export(export.lines, export.checkpoint, [VKEY], extra_checkpoints=[conflict])
    assert result.problem == "checkpoint_conflict"


def test_older_checkpoints_via_cli(export: Export, tmp_path: Path) -> None:
    (tmp_path / "head.txt").write_bytes(export.checkpoint)
    (tmp_path / "old.txt").write_bytes(checkpoint_for(export.leaves, size=9))
    path = export.write(tmp_path)
    # Given in either order: the largest is the head.
    for order in (("old.txt", "head.txt"), ("head.txt", "old.txt")):
        args = [a for name in order for a in ("--checkpoint", tmp_path / name)]
        proc = run_cli("--export", path, *args, "--key", VKEY)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rotated_keys(export: Export) -> None:
    new = SignerKey.generate(ORIGIN)
    both = sign_checkpoint(Checkpoint(ORIGIN, N, export.root), [new, SIGNER])
    assert verifier.verify_export(export.lines, both, [VKEY]).ok
    assert verifier.verify_export(export.lines, both, [new.verifier().encode()]).ok
    only_new = sign_checkpoint(Checkpoint(ORIGIN, N, export.root), [new])
    assert verifier.verify_export(export.lines, only_new, [VKEY]).problem == "checkpoint_unverified"
    assert verifier.verify_export(export.lines, only_new, [VKEY, new.verifier().encode()]).ok


def test_empty_log() -> None:
    cp = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), [SIGNER])
    assert verifier.verify_export([], cp, [VKEY]).ok
    bad = sign_checkpoint(Checkpoint(ORIGIN, 0, bytes(32)), [SIGNER])
    assert verifier.verify_export([], bad, [VKEY]).problem == "root_mismatch"
    assert verifier.verify_export([export_line(0, canonical_bytes(make_event(0)))], cp, [VKEY]).problem == "beyond_checkpoint"


def test_lenient_line_shapes_are_accepted(export: Export) -> None:
    """Any JSON object with seq/leaf (and optionally hash) is a line; the compact form is a fast path."""
    lines = []
    for i, leaf in enumerate(export.leaves):
        obj = {"hash": leaf_hash(leaf).hex(), "leaf": base64.b64encode(leaf).decode(), "seq": i, "extra": "ignored"}
        if i % 2:
            del obj["hash"]
        lines.append((json.dumps(obj, indent=None) + ("\r\n" if i % 3 else "\n")).encode())
    assert verifier.verify_export(lines, export.checkpoint, [VKEY]).ok
    as_str = [line.decode() for line in export.lines]
    assert verifier.verify_export(as_str, export.checkpoint, [VKEY]).ok  # type: ignore[arg-type]


def test_bad_keys_are_reported_not_raised(export: Export) -> None:
    assert verifier.verify_export(export.lines, export.checkpoint, []).problem == "bad_key"
    assert verifier.verify_export(export.lines, export.checkpoint, ["x+1+2"]).problem == "bad_key"
    mangled = VKEY[:-2] + ("A" if VKEY[-2] != "A" else "B") + VKEY[-1]
    assert verifier.verify_export(export.lines, export.checkpoint, [mangled]).problem == "bad_key"


# --------------------------------------------------------------------------- agreement with core


def test_merkle_roots_agree() -> None:
    hashes = [leaf_hash(b"%d" % i) for i in range(300)]
    builder = TreeBuilder()
    assert verifier.merkle_root([]) == builder.root() == EMPTY_ROOT
    for n, h in enumerate(hashes, start=1):
        builder.append(h)
        if n < 70 or n % 37 == 0:
            assert verifier.merkle_root(hashes[:n]) == builder.root(), n


def test_key_ids_and_key_strings_agree() -> None:
    for name in ["PeterNeumann", ORIGIN, "caf\u00e9/\u65e5\u672c"]:
        signer = SignerKey.generate(name)
        vkey = signer.verifier()
        assert verifier.key_id(name, vkey.public_key) == key_id(name, vkey.public_key) == vkey.key_id
        assert verifier.parse_verifier_key(vkey.encode()) == (name, vkey.key_id, vkey.public_key)
    go = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    assert verifier.parse_verifier_key(go)[1] == VerifierKey.parse(go).key_id == 0xC74F20A3


def test_go_note_verifies_in_standalone() -> None:
    go = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
    note = (text + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n").encode()
    assert verifier.open_note(note, [go]) == (text, ["PeterNeumann"])
    with pytest.raises(verifier.VerifyError) as err:
        verifier.open_note(note.replace(b"cryptography", b"cryptographY"), [go])
    assert err.value.problem == "checkpoint_bad_signature"


def test_checkpoints_agree(export: Export) -> None:
    cp = verifier.open_checkpoint(export.checkpoint, [VKEY])
    assert (cp.origin, cp.size, cp.root_hash) == (ORIGIN, N, export.root)
    ext = sign_checkpoint(Checkpoint(ORIGIN, 3, export.root, ("ext",)), [SIGNER])
    assert verifier.open_checkpoint(ext, [VKEY]).size == 3


def _double(bits: int) -> float:
    return struct.unpack(">d", bits.to_bytes(8, "big"))[0]


def test_es6_number_formatting_agrees_with_rfc8785() -> None:
    rng = random.Random(262)
    values = [0.0, -0.0, 1.0, 0.1, 1e21, 1e20, 1e-6, 1e-7, 5e-324, 1.7976931348623157e308, 123456789.125, 2.0**53, 2.0**70]
    values += [_double(rng.getrandbits(64)) for _ in range(5000)]
    values += [rng.uniform(-1e6, 1e6) for _ in range(1000)] + [float(rng.randrange(-(10**22), 10**22)) for _ in range(500)]
    for v in values:
        if v != v or v in (float("inf"), float("-inf")):
            continue
        assert verifier.jcs_dumps(v) == rfc8785.dumps(v), repr(v)


def _random_value(rng: random.Random, depth: int = 0) -> object:
    alphabet = ["a", "Z", "0", " ", '"', "\\", "/", "\n", "\x00", "\x1f", "\x7f", "\u00e9", "\u2028", "\ufb33", "\ue000", "\U0001f600", "\U00010000"]
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 7, 2**53 - 1, -(2**53 - 1), rng.randrange(-(10**9), 10**9)])
    if kind == 2:
        return rng.choice([0.5, 1e21, 1e-7, 3.0, _double(rng.getrandbits(62))])
    if kind in (3, 4):
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(5)))
    if kind in (5, 6):
        return {"".join(rng.choice(alphabet) for _ in range(rng.randrange(4))): _random_value(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_jcs_encoders_agree_on_random_values() -> None:
    rng = random.Random(1)
    for _ in range(3000):
        value = _random_value(rng)
        expected = rfc8785.dumps(value)
        assert verifier.jcs_dumps(value) == expected == canonical_bytes(value), repr(value)
        assert verifier.check_canonical_leaf(expected) == json.loads(expected)


def _variants(canonical: bytes) -> list[bytes]:
    """Plausible non-canonical (and some canonical) spellings of the same JSON."""
    value = json.loads(canonical)
    out = [
        canonical,
        canonical + b"\n",
        b" " + canonical,
        canonical.replace(b":", b": ", 1),
        canonical.replace(b",", b" ,", 1),
        json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":")).encode(),
        json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"),
        json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8", "surrogatepass"),
        canonical.replace(b"/", b"\\/"),
        canonical.replace(b"1", b"1.0", 1),
        canonical.replace(b"0", b"-0", 1),
        canonical.replace(b"e+", b"e", 1),
        canonical.replace(b'"', b"'", 2),
    ]
    if isinstance(value, dict) and value:
        first = next(iter(sorted(value)))
        out.append(canonical[:-1] + b"," + json.dumps(first).encode() + b":null}")  # duplicate key
    return out


def test_canonical_checks_agree_with_core() -> None:
    rng = random.Random(2)
    checked = 0
    for _ in range(1500):
        canonical = rfc8785.dumps(_random_value(rng))
        for data in _variants(canonical):
            core = is_canonical(data)
            try:
                verifier.check_canonical_leaf(data)
                standalone = True
            except ValueError:
                standalone = False
            assert core == standalone, data
            checked += 1
    assert checked > 10000


@pytest.mark.parametrize(
    "data,ok",
    [
        (b"9007199254740992", True),  # 2**53 as JCS writes that double
        (b"9007199254740993", False),  # denotes 2**53
        (b'{"n":673789926489793000}', True),
        (b"1" + b"0" * 400, False),
        (b'{"a":1,"a":1}', False),
        (b'{"a":NaN}', False),
        (b"1e400", False),
        (b'"\\ud800"', False),
        (b'"\xed\xa0\x80"', False),
        ('{"\U0001f600":1,"\ufb33":2}'.encode(), True),  # UTF-16 order
        ('{"\ufb33":2,"\U0001f600":1}'.encode(), False),  # code point order
    ],
)
def test_canonical_edge_cases_agree(data: bytes, ok: bool) -> None:
    assert is_canonical(data) is ok
    if ok:
        verifier.check_canonical_leaf(data)
    else:
        with pytest.raises(ValueError):
            verifier.check_canonical_leaf(data)
