#!/usr/bin/env python3
"""Standalone verifier for audit-log exports. One file: Python 3.11+ stdlib + ``cryptography``.

Why it exists: an auditor should not have to trust the service, its database, or its code to
check the log. Copy this file, install ``cryptography``, and run::

    python verifier.py --export events.jsonl --checkpoint checkpoint.txt \\
        --key 'audit.example.org/log+1a2b3c4d+AXW...='

It re-derives everything from the exported leaf bytes and checks, in one streaming pass with
O(log n) memory:

1. the checkpoint note is signed by one of the given verifier keys (C2SP signed-note, Ed25519)
   and its body is a well-formed C2SP tlog-checkpoint;
2. line ``i`` of the export has ``"seq": i`` (dense from 0, no gaps, duplicates or reordering);
3. the leaf (base64 in ``"leaf"``) hashes to the line's ``"hash"`` when it carries one;
4. the leaf is RFC 8785 (JCS) canonical JSON: an object whose ``"seq"`` equals the line's;
5. the RFC 6962 Merkle root of the first N leaves equals the checkpoint root, where N is the
   checkpoint size, and the export has exactly N lines. Extra ``--checkpoint`` files (older
   checkpoints you kept) are checked against the root at their own sizes in the same pass, which
   proves the log you hold now extends the one you were shown then.

Exit status 0 means everything verified; 1 means a problem, printed with the first bad ``seq``
when it can be located (a root mismatch cannot be pinned to one leaf); 2 means bad usage.

The format is specified in docs/audit-log.md. This file deliberately imports nothing from the
service so that it can be read and audited on its own; the service's test-suite checks that it
agrees with the service's own implementation.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

try:  # Only signature checks need it; the rest of the file works (and is tested) without it.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # pragma: no cover - reported when a signature must be checked
    Ed25519PublicKey = None  # type: ignore[assignment,misc]
    InvalidSignature = Exception  # type: ignore[assignment,misc]

__all__ = [
    "PROBLEMS",
    "Checkpoint",
    "VerifyError",
    "VerifyResult",
    "check_canonical_leaf",
    "jcs_dumps",
    "key_id",
    "main",
    "merkle_root",
    "open_checkpoint",
    "open_note",
    "parse_verifier_key",
    "verify_export",
]

_sha256 = hashlib.sha256
EMPTY_ROOT = _sha256(b"").digest()
MAX_SAFE_INT = 2**53 - 1


# ============================================================================ Merkle (RFC 6962)


def merkle_root(leaf_hashes: Iterable[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash over leaf hashes (each SHA-256(0x00 || leaf)), streamed."""
    stack: list[bytes] = []
    size = 0
    for h in leaf_hashes:
        n = size
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        size += 1
    return _fold(stack)


def _fold(stack: list[bytes]) -> bytes:
    """Root of a compact range (perfect subtree roots, largest first)."""
    if not stack:
        return EMPTY_ROOT
    h = stack[-1]
    for left in reversed(stack[:-1]):
        h = _sha256(b"\x01" + left + h).digest()
    return h


# ============================================================================ signed notes


class VerifyError(ValueError):
    """A key, note or checkpoint is malformed or does not verify."""

    def __init__(self, problem: str, detail: str) -> None:
        super().__init__(f"{problem}: {detail}")
        self.problem = problem
        self.detail = detail


def _b64(text: str, what: str) -> bytes:
    """Strict, canonical standard base64 (one spelling per byte string)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise VerifyError("malformed", f"{what}: invalid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise VerifyError("malformed", f"{what}: non-canonical base64")
    return raw


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in name)


def key_id(name: str, public_key: bytes) -> int:
    """C2SP key id: first 4 bytes (big-endian) of SHA-256(name || 0x0A || 0x01 || public key)."""
    return int.from_bytes(_sha256(name.encode("utf-8") + b"\n\x01" + public_key).digest()[:4], "big")


def parse_verifier_key(vkey: str) -> tuple[str, int, bytes]:
    """``name+<8 hex key id>+<base64(0x01 || 32-byte Ed25519 key)>`` -> (name, key id, key)."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]) or not _valid_name(parts[0]):
        raise VerifyError("bad_key", f"malformed verifier key {vkey!r}")
    raw = _b64(parts[2], "verifier key")
    if len(raw) != 33 or raw[0] != 0x01:
        raise VerifyError("bad_key", f"not an Ed25519 verifier key: {vkey!r}")
    if key_id(parts[0], raw[1:]) != int(parts[1], 16):
        raise VerifyError("bad_key", f"key id does not match name and key: {vkey!r}")
    return parts[0], int(parts[1], 16), raw[1:]


def _ed25519_ok(public_key: bytes, message: bytes, signature: bytes) -> bool:
    if Ed25519PublicKey is None:
        raise VerifyError("setup", "the 'cryptography' package is required to check signatures")
    if len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def open_note(data: bytes, verifier_keys: Sequence[str]) -> tuple[str, list[str]]:
    """Verify a C2SP signed note; returns (text, names of the given keys that signed it).

    Signatures by keys not given are ignored (they may be witnesses or other logs); a signature
    by a given key that does not verify rejects the note; at least one must verify.
    """
    keys: dict[tuple[str, int], bytes] = {}
    for vkey in verifier_keys:
        name, kid, pub = parse_verifier_key(vkey)
        keys[(name, kid)] = pub
    try:
        msg = data.decode("utf-8")
    except UnicodeDecodeError:
        raise VerifyError("checkpoint_malformed", "note is not UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in msg):
        raise VerifyError("checkpoint_malformed", "note contains control characters")
    split = msg.rfind("\n\n")
    if split < 0 or not msg.endswith("\n"):
        raise VerifyError("checkpoint_malformed", "note has no signature block")
    text, block = msg[: split + 1], msg[split + 2 : -1]
    lines = block.split("\n")
    if len(lines) > 100:
        raise VerifyError("checkpoint_malformed", "too many signatures")
    signed_by: list[str] = []
    for line in lines:
        name, sep, b64 = line[2:].partition(" ")
        if not line.startswith("\u2014 ") or not sep or not _valid_name(name):
            raise VerifyError("checkpoint_malformed", f"malformed signature line {line!r}")
        try:
            raw = _b64(b64, "signature")
        except VerifyError:
            raise VerifyError("checkpoint_malformed", f"malformed signature line {line!r}") from None
        if len(raw) < 5:
            raise VerifyError("checkpoint_malformed", "signature too short")
        kid = int.from_bytes(raw[:4], "big")
        pub = keys.get((name, kid))
        if pub is None:
            continue
        if not _ed25519_ok(pub, text.encode("utf-8"), raw[4:]):
            raise VerifyError("checkpoint_bad_signature", f"invalid signature by {name}+{kid:08x}")
        if name not in signed_by:
            signed_by.append(name)
    if not signed_by:
        raise VerifyError("checkpoint_unverified", "no signature by any of the given keys")
    return text, signed_by


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: origin, tree size, root hash, and the key names that signed it."""

    origin: str
    size: int
    root_hash: bytes
    signed_by: tuple[str, ...]


def open_checkpoint(data: bytes, verifier_keys: Sequence[str]) -> Checkpoint:
    """Verify a signed C2SP tlog-checkpoint and parse it strictly."""
    text, signed_by = open_note(data, verifier_keys)
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not lines[0] or any(not ext for ext in lines[3:]):
        raise VerifyError("checkpoint_malformed", "checkpoint needs origin, size, root lines")
    if not re.fullmatch(r"0|[1-9][0-9]{0,18}", lines[1]) or int(lines[1]) >= 2**63:
        raise VerifyError("checkpoint_malformed", f"bad tree size {lines[1]!r}")
    try:
        root = _b64(lines[2], "root hash")
    except VerifyError:
        raise VerifyError("checkpoint_malformed", "root hash is not canonical base64") from None
    if len(root) != 32:
        raise VerifyError("checkpoint_malformed", "root hash is not 32 bytes")
    return Checkpoint(lines[0], int(lines[1]), root, tuple(signed_by))


# ============================================================================ RFC 8785 (JCS)


class _NotCanonical(ValueError):
    pass


class _FloatSeen(Exception):
    pass


def _pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _NotCanonical("duplicate object key")
    return obj


def _safe_int(text: str) -> int:
    """Fast path: integers that are exact doubles stay ints; others go to the full path."""
    value = int(text)
    if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        return value
    raise _FloatSeen


def _int_as_double(text: str) -> int | float:
    """Full path: RFC 8785 reads every number as a double; big integers are judged as such."""
    value = int(text)
    if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        return value
    try:
        return float(value)
    except OverflowError:
        raise _NotCanonical(f"number {text[:20]}... overflows a double") from None


def _no_constant(text: str) -> object:
    raise _NotCanonical(f"{text} is not JSON")


def _float_seen(text: str) -> object:
    raise _FloatSeen


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NotCanonical(f"number {text} overflows a double")
    return value


_fast_decoder = json.JSONDecoder(parse_int=_safe_int, parse_float=_float_seen, parse_constant=_no_constant)
_full_decoder = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_int=_int_as_double, parse_float=_finite_float, parse_constant=_no_constant
)


def _make_fast_encoder() -> Callable[[object], str]:
    """Compact, key-sorted, non-ASCII-preserving JSON encoder (CPython's C encoder if present).

    For values with no floats whose keys have no characters outside the Basic Multilingual Plane
    its output *is* RFC 8785: code point order equals UTF-16 code unit order without surrogate
    pairs, and its string escaping (\\" \\\\ \\b \\f \\n \\r \\t, other controls as lowercase
    \\u00xx, everything else raw) and integer formatting are exactly RFC 8785's.
    """
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is not None:
        encoder = c_make_encoder(None, None, json.encoder.encode_basestring, None, ":", ",", True, False, False)
        return lambda value: "".join(encoder(value, 0))
    return json.JSONEncoder(  # pragma: no cover - non-CPython
        ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False, check_circular=False
    ).encode


_fast_encode = _make_fast_encoder()
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE_RE = re.compile(r'["\\\x00-\x1f]')
_FOUR_BYTE_UTF8 = re.compile(rb"[\xf0-\xf4]")  # lead byte of a character outside the BMP


def _es6_number(value: float) -> str:
    """ECMAScript Number::toString for a finite double, as RFC 8785 section 3.2.2.3 requires.

    ``repr`` gives the shortest digit string that round-trips (the same digits ECMAScript picks);
    only the layout (where the point goes, when to use an exponent) differs, and is redone here.
    """
    if value == 0:
        return "0"  # also -0
    if value < 0:
        return "-" + _es6_number(-value)
    mantissa, _, exp = repr(value).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    n = len(whole) + (int(exp) if exp else 0)  # value = 0.DIGITS * 10**n
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{head}e{sign}{abs(e)}"


def _jcs_string(s: str) -> str:
    return '"' + _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(0)) or f"\\u{ord(m.group(0)):04x}", s) + '"'


def _jcs(value: object, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise _NotCanonical("integer outside the I-JSON range")
        out.append(str(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _NotCanonical("NaN/Infinity")
        out.append(_es6_number(value))
    elif isinstance(value, str):
        out.append(_jcs_string(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _jcs(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))):
            if i:
                out.append(",")
            out.append(_jcs_string(key))
            out.append(":")
            _jcs(value[key], out)
        out.append("}")
    else:
        raise TypeError(f"not a JSON value: {type(value).__name__}")


def jcs_dumps(value: object) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of a JSON value (dict/list/str/int/float/bool/None)."""
    out: list[str] = []
    _jcs(value, out)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise _NotCanonical("string with a lone surrogate") from None


def check_canonical_leaf(leaf: bytes) -> object:
    """Parse ``leaf`` and return its value if it is exactly its own RFC 8785 encoding.

    Raises ``ValueError`` (with the reason) otherwise: invalid UTF-8, invalid JSON, duplicate
    keys, NaN/Infinity, numbers beyond double range, or any byte differing from canonical form.
    As RFC 8785 prescribes, every number is judged as the IEEE 754 double it denotes, so
    ``9007199254740992`` is canonical and ``9007199254740993`` is not.

    Fast path (no non-integers, no integers beyond +/-(2**53-1), no characters outside the BMP):
    parse with the C decoder, re-encode with ``_fast_encode`` (which is JCS for such values) and
    compare. Duplicate keys need no separate check there: the parsed dict keeps one member per
    key, so the re-encoding cannot match. Otherwise the full JCS encoder above is used.
    """
    try:
        text = leaf.decode("utf-8")
    except UnicodeDecodeError:
        raise _NotCanonical("leaf is not UTF-8") from None
    try:
        try:
            value = _fast_decoder.decode(text)
            if leaf.isascii() or not _FOUR_BYTE_UTF8.search(leaf):
                if _fast_encode(value) == text:
                    return value
                raise _NotCanonical("leaf is not in RFC 8785 canonical form")
        except _FloatSeen:
            pass
        value = _full_decoder.decode(text)  # rejects duplicate keys explicitly
        if jcs_dumps(value) == leaf:
            return value
    except _NotCanonical:
        raise
    except RecursionError:
        raise _NotCanonical("leaf nested too deeply") from None
    except ValueError as exc:
        raise _NotCanonical(f"leaf is not valid JSON: {exc}") from None
    raise _NotCanonical("leaf is not in RFC 8785 canonical form")


# ============================================================================ export verification


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of ``verify_export``.

    ``size`` is the number of leaves that passed every per-line check (on success: the checkpoint
    size). ``first_bad_seq`` is the first sequence number found bad, or None when the problem is
    not tied to one leaf (checkpoint problems, a root mismatch). ``problem`` is a short code (see
    ``PROBLEMS``) and ``detail`` a human-readable explanation.
    """

    ok: bool
    size: int
    first_bad_seq: int | None
    problem: str | None
    detail: str | None = None
    root_hash: bytes | None = None
    checkpoint: Checkpoint | None = None


PROBLEMS = {
    "bad_key": "a --key is not a valid verifier key",
    "checkpoint_malformed": "the checkpoint is not a well-formed signed checkpoint",
    "checkpoint_unverified": "no signature on the checkpoint by any given key",
    "checkpoint_bad_signature": "a given key's signature on the checkpoint does not verify",
    "checkpoint_conflict": "two checkpoints claim different roots for the same size",
    "line_malformed": "an export line is not the JSON object described in the format",
    "seq_mismatch": "line i does not carry seq i (missing, duplicated, reordered lines)",
    "hash_mismatch": "the leaf bytes do not hash to the line's hash",
    "leaf_not_canonical": "the leaf bytes are not RFC 8785 canonical JSON of an object",
    "leaf_seq_mismatch": "the leaf's own seq field differs from the line's seq",
    "truncated": "the export has fewer lines than the checkpoint size",
    "beyond_checkpoint": "the export has more lines than the checkpoint size",
    "root_mismatch": "the Merkle root of the leaves differs from a checkpoint's root",
}


def _fail(problem: str, detail: str, seq: int | None, size: int, cp: Checkpoint | None = None) -> VerifyResult:
    return VerifyResult(False, size, seq, problem, detail, None, cp)


def verify_export(
    lines: Iterable[bytes],
    checkpoint_note: bytes,
    verifier_keys: Sequence[str],
    *,
    extra_checkpoints: Sequence[bytes] = (),
) -> VerifyResult:
    """Verify an export (JSON Lines, one event per line, in ``seq`` order) against a checkpoint.

    ``checkpoint_note`` is the signed checkpoint the export claims to match: the export must have
    exactly its size in lines. ``extra_checkpoints`` are further signed checkpoints (typically
    older ones) whose roots must match the tree at their sizes; none may exceed the main one.
    Never raises for bad data; a malformed ``verifier_keys`` entry gives problem ``bad_key``.
    """
    try:
        for vkey in verifier_keys:
            parse_verifier_key(vkey)
        if not verifier_keys:
            raise VerifyError("bad_key", "no verifier key given")
        head = open_checkpoint(bytes(checkpoint_note), verifier_keys)
        others = [open_checkpoint(bytes(n), verifier_keys) for n in extra_checkpoints]
    except VerifyError as exc:
        return _fail(exc.problem, exc.detail, None, 0)
    total = head.size
    checks: dict[int, bytes] = {}
    for cp in [head, *others]:
        if cp.size > total:
            detail = f"extra checkpoint of size {cp.size} exceeds the export's checkpoint size {total}"
            return _fail("beyond_checkpoint", detail, None, 0, head)
        if checks.setdefault(cp.size, cp.root_hash) != cp.root_hash:
            detail = f"two signed checkpoints give different roots for size {cp.size}"
            return _fail("checkpoint_conflict", detail, None, 0, head)
    if 0 in checks and checks[0] != EMPTY_ROOT:
        return _fail("root_mismatch", "a checkpoint of size 0 must have the empty-tree root", None, 0, head)
    check_sizes = sorted(s for s in checks if s > 0)
    next_check = check_sizes.pop(0) if check_sizes else -1

    sha = _sha256
    a2b = binascii.a2b_base64
    hexlify = binascii.hexlify
    envelope = _ENVELOPE.fullmatch
    stack: list[bytes] = []
    push, pop = stack.append, stack.pop
    seq = 0
    for raw in lines:
        if seq >= total:
            return _fail("beyond_checkpoint", f"line {seq} is beyond the checkpoint size {total}", seq, seq, head)
        # ---- the line envelope: {"seq": int, "leaf": base64, "hash": hex (optional)}
        m = envelope(raw) if type(raw) is bytes else None
        if m is not None:  # the exact compact form the service writes
            line_seq: object = int(m[1])
            leaf_b64: str | bytes = m[2]
            expected_hash: bytes | None = m[3]
        else:  # any other valid JSON object with those members
            try:
                line = _pairs_decoder.decode(raw if type(raw) is str else bytes(raw).decode("utf-8"))
                if type(line) is not dict:
                    raise ValueError("not a JSON object")
                line_seq = line["seq"]
                leaf_b64 = line["leaf"]
                hash_hex = line.get("hash")
                if type(line_seq) is not int or type(leaf_b64) is not str:
                    raise ValueError("seq must be an integer and leaf a string")
                if hash_hex is not None and (type(hash_hex) is not str or not _HEX64.fullmatch(hash_hex)):
                    raise ValueError("hash must be 64 lowercase hex digits")
                expected_hash = None if hash_hex is None else hash_hex.encode("ascii")
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                return _fail("line_malformed", f"line {seq}: {exc.__class__.__name__}: {exc}", seq, seq, head)
        if line_seq != seq:
            return _fail("seq_mismatch", f"line {seq} carries seq {line_seq}", seq, seq, head)
        try:
            leaf = a2b(leaf_b64, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            return _fail("line_malformed", f"seq {seq}: leaf is not base64 ({exc})", seq, seq, head)
        lh = sha(b"\x00" + leaf).digest()
        if expected_hash is not None and expected_hash != hexlify(lh):
            detail = f"seq {seq}: leaf hashes to {lh.hex()}, line says {expected_hash.decode()}"
            return _fail("hash_mismatch", detail, seq, seq, head)
        # ---- the leaf itself
        try:
            event = check_canonical_leaf(leaf)
        except ValueError as exc:
            return _fail("leaf_not_canonical", f"seq {seq}: {exc}", seq, seq, head)
        if type(event) is not dict:
            return _fail("leaf_not_canonical", f"seq {seq}: leaf is not a JSON object", seq, seq, head)
        leaf_seq = event.get("seq")
        if type(leaf_seq) is not int or leaf_seq != seq:
            return _fail("leaf_seq_mismatch", f"line {seq}: leaf has seq {leaf_seq!r}", seq, seq, head)
        # ---- the tree (compact range, inlined for speed)
        n = seq
        h = lh
        while n & 1:
            h = sha(b"\x01" + pop() + h).digest()
            n >>= 1
        push(h)
        seq += 1
        if seq == next_check:
            if _fold(stack) != checks[seq]:
                detail = f"the root of leaves [0, {seq}) differs from the signed checkpoint of size {seq}"
                return _fail("root_mismatch", detail, None, seq, head)
            next_check = check_sizes.pop(0) if check_sizes else -1
    if seq < total:
        return _fail("truncated", f"export ends after {seq} lines; the checkpoint covers {total}", seq, seq, head)
    root = _fold(stack)
    if root != head.root_hash:  # only reachable for size 0 (checked above) or a logic error
        return _fail("root_mismatch", "root differs from the checkpoint", None, seq, head)
    return VerifyResult(True, seq, None, None, None, root, head)


def _pairs_envelope(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in export line")
    return obj


_pairs_decoder = json.JSONDecoder(object_pairs_hook=_pairs_envelope, parse_constant=_no_constant)
_ENVELOPE = re.compile(rb'\{"seq":(0|[1-9][0-9]{0,17}),"leaf":"([A-Za-z0-9+/]*={0,2})","hash":"([0-9a-f]{64})"\}\n?')
_HEX64 = re.compile(r"[0-9a-f]{64}")


# ============================================================================ command line


def _load_keys_json(path: str) -> list[str]:
    with open(path, "rb") as f:
        doc = json.load(f)
    return [k["verifier_key"] for k in doc["keys"]]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="verifier.py",
        description="Verify an audit-log export (JSON Lines) against a signed C2SP checkpoint.",
    )
    parser.add_argument("--export", required=True, help="export file (JSON Lines), or - for stdin")
    parser.add_argument(
        "--checkpoint",
        required=True,
        action="append",
        help="signed checkpoint the export ends at; repeat to also check older checkpoints",
    )
    parser.add_argument("--key", action="append", default=[], help="verifier key name+hexid+base64 (repeatable)")
    parser.add_argument("--keys-json", help="a saved GET /api/v1/audit/keys response; all its keys are trusted")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)

    keys = list(args.key)
    try:
        if args.keys_json:
            keys.extend(_load_keys_json(args.keys_json))
        notes = []
        for path in args.checkpoint:
            with open(path, "rb") as f:
                notes.append(f.read())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not keys:
        print("error: give at least one --key or --keys-json", file=sys.stderr)
        return 2
    # The head checkpoint is the largest; the others are checked on the way.
    try:
        sizes = [open_checkpoint(n, keys).size for n in notes]
        order = sorted(range(len(notes)), key=lambda i: -sizes[i])
        notes = [notes[i] for i in order]
    except VerifyError:
        pass  # verify_export reports the problem with its code
    try:
        if args.export == "-":
            result = verify_export(sys.stdin.buffer, notes[0], keys, extra_checkpoints=notes[1:])
        else:
            with open(args.export, "rb") as f:
                result = verify_export(f, notes[0], keys, extra_checkpoints=notes[1:])
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.problem == "bad_key":
        print(f"error: {result.detail}", file=sys.stderr)
        return 2
    if result.ok:
        if not args.quiet:
            cp = result.checkpoint
            assert cp is not None and result.root_hash is not None
            print(
                f"OK: {result.size} events verified; root {base64.b64encode(result.root_hash).decode()} "
                f"matches checkpoint {cp.origin!r} of size {cp.size} signed by {', '.join(cp.signed_by)}"
            )
        return 0
    where = f"seq {result.first_bad_seq}" if result.first_bad_seq is not None else "log"
    print(f"FAIL: {where}: {result.problem}: {result.detail}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
