#!/usr/bin/env python3
"""Standalone verifier for govaudit audit packs. Python 3.11+, ``cryptography`` and ``pyhanko``.

Why it exists: an auditor who never logs in must be able to check that nothing in a pack was
changed, without trusting the service, its database or its code. Copy this file and
``verifier.py`` (the audit log's verifier, which it reuses for signed notes and canonical JSON)
side by side, ``pip install cryptography pyhanko``, and run::

    python pack_verifier.py PACK.zip --key 'govaudit.example/audit-log+1a2b3c4d+AXW...' \\
        --cert organisation-cert.pem

``--key`` is the audit log's verifier key (it signs the checkpoint, the manifest's DSSE envelope
and the promotion receipts) and ``--cert`` the organisation certificate that signs the PDF; pin
both through a channel you trust. ``--trust-pack-keys`` takes them from the pack itself instead,
which only shows the pack is consistent with itself (anyone can make a consistent pack).

It checks, and names every problem it finds (the codes are listed in ``PROBLEMS`` and in
docs/audit-packs.md): the DSSE envelope (payload type, signature by a trusted key), that
``manifest.json`` is exactly the signed payload, every file's SHA-256 against the manifest (none
missing, none added), the checkpoint's signature and that it is the one the manifest names, every
event's leaf bytes (hash, canonical JSON, seq, period) and its inclusion proof against the
checkpoint's root, the signed decision receipts, and the PDF's PAdES signature (intact, by a
trusted certificate, covering the entire file: an incremental update appended after signing is
caught). Exit status 0: everything verified; 1: problems (printed); 2: bad usage.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import io
import json
import re
import sys
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

try:  # in the repository
    from audits.verifier import VerifyError, check_canonical_leaf, open_checkpoint, open_note, parse_verifier_key
except ImportError:  # copied next to verifier.py
    from verifier import VerifyError, check_canonical_leaf, open_checkpoint, open_note, parse_verifier_key  # type: ignore

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # pragma: no cover - reported as a setup problem
    Ed25519PublicKey = None  # type: ignore[assignment,misc]
    InvalidSignature = Exception  # type: ignore[assignment,misc]

__all__ = ["PROBLEMS", "PackReport", "Problem", "main", "verify_inclusion", "verify_pack"]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:govaudit:audit-pack:v1"
DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
MANIFEST = "manifest.json"
ENVELOPE = "manifest.dsse.json"
_sha256 = hashlib.sha256
MAX_READ_BYTES = 256 * 1024**2  # files read whole (PDF, JSON); the events are streamed, whatever their size

PROBLEMS = {
    "zip_unreadable": "the file is not a readable zip",
    "unsafe_entry": "a zip entry has an absolute or '..' path, or appears twice",
    "envelope_missing": "manifest.dsse.json is missing or not a DSSE envelope",
    "dsse_payload_type": "the envelope's payloadType is not application/vnd.in-toto+json",
    "dsse_unknown_key": "no signature on the envelope is by a trusted key",
    "dsse_bad_signature": "a trusted key's signature on the envelope does not verify",
    "manifest_missing": "manifest.json is missing",
    "manifest_mismatch": "manifest.json differs from the payload the envelope signs (an entry was edited)",
    "manifest_malformed": "the signed payload is not an in-toto Statement v1 of an audit pack",
    "missing_file": "a file the manifest lists is not in the pack (removed)",
    "unlisted_file": "the pack holds a file the manifest does not list (added)",
    "digest_mismatch": "a file's SHA-256 differs from the manifest's (changed)",
    "checkpoint_malformed": "the checkpoint is not a well-formed signed checkpoint",
    "checkpoint_unverified": "the checkpoint is not signed by a trusted key",
    "checkpoint_bad_signature": "a trusted key's signature on the checkpoint does not verify",
    "checkpoint_mismatch": "the checkpoint is not the one the manifest names",
    "event_malformed": "a line of evidence/events.jsonl is not an event with its leaf and proof",
    "event_hash_mismatch": "an event's leaf bytes do not hash to its recorded hash",
    "event_not_canonical": "an event's leaf is not RFC 8785 canonical JSON of an object with its seq",
    "event_outside_period": "an event is not in the pack's period, or events are out of order",
    "inclusion_proof_invalid": "an event's inclusion proof does not reach the checkpoint's root",
    "events_count_mismatch": "the number or range of events differs from the manifest's",
    "receipt_unverified": "a promotion decision's receipt is not signed by a trusted key",
    "pdf_unreadable": "report.pdf cannot be parsed as a PDF",
    "pdf_not_signed": "report.pdf has no signature, or more than one",
    "pdf_signature_invalid": "report.pdf's signature does not match its bytes (the PDF was changed)",
    "pdf_untrusted_signer": "report.pdf is signed by a certificate that is not trusted",
    "pdf_incremental_update": "report.pdf was changed after signing (an incremental update was appended)",
    "setup": "a required package (cryptography, pyhanko) is missing, or no trusted key was given",
}


@dataclass(frozen=True)
class Problem:
    code: str
    detail: str
    file: str = ""

    def __str__(self) -> str:
        return f"{self.code}{' (' + self.file + ')' if self.file else ''}: {self.detail}"


@dataclass
class PackReport:
    """Outcome: ``ok`` iff no problem; ``facts`` says what was checked (signer, counts, ...)."""

    problems: list[Problem] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def codes(self) -> set[str]:
        return {p.code for p in self.problems}

    def add(self, code: str, detail: str, file: str = "") -> None:
        self.problems.append(Problem(code, detail, file))

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "problems": [{"code": p.code, "file": p.file, "detail": p.detail}
                                            for p in self.problems], "facts": self.facts}


# ============================================================================ primitives


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2, strict (wrong lengths, extra or missing hashes fail)."""
    if len(leaf_hash) != 32 or len(root) != 32 or any(len(p) != 32 for p in proof) or not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _ed25519_ok(public_key: bytes, message: bytes, signature: bytes) -> bool:
    if len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def _b64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a base64 string")
    return base64.b64decode(text.encode("ascii"), validate=True)


# ============================================================================ the pack


def _check_envelope(zf: zipfile.ZipFile, names: set[str], keys: Sequence[str], report: PackReport) -> bytes | None:
    """The DSSE payload (even when its signature fails, so the other checks can still name problems)."""
    if ENVELOPE not in names:
        report.add("envelope_missing", "the pack has no manifest.dsse.json", ENVELOPE)
        return None
    try:
        env = json.loads(zf.read(ENVELOPE))
        payload = _b64(env["payload"])
        sigs = env["signatures"]
        payload_type = env["payloadType"]
        if not isinstance(sigs, list) or not sigs:
            raise ValueError("no signatures")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        report.add("envelope_missing", f"not a DSSE envelope: {exc}", ENVELOPE)
        return None
    if payload_type != DSSE_PAYLOAD_TYPE:
        report.add("dsse_payload_type", f"payloadType is {payload_type!r}, expected {DSSE_PAYLOAD_TYPE!r}", ENVELOPE)
    trusted = {}
    for k in keys:
        name, kid, pub = parse_verifier_key(k)
        trusted[f"{name}+{kid:08x}"] = pub
    pae = dsse_pae(str(payload_type), payload)
    signed_by = []
    for s in sigs:
        if not isinstance(s, dict):
            continue
        try:
            sig = _b64(s.get("sig"))
        except (ValueError, binascii.Error):
            report.add("dsse_bad_signature", "a signature is not base64", ENVELOPE)
            continue
        keyid = s.get("keyid")
        candidates = [(keyid, trusted[keyid])] if keyid in trusted else []
        for kid, pub in candidates:
            if _ed25519_ok(pub, pae, sig):
                signed_by.append(kid)
            elif payload_type == DSSE_PAYLOAD_TYPE:  # a swapped type is already named above
                report.add("dsse_bad_signature", f"the signature by trusted key {kid} does not verify", ENVELOPE)
    if not signed_by and not any(p.code in ("dsse_bad_signature", "dsse_payload_type") for p in report.problems):
        ids = ", ".join(str(s.get("keyid")) for s in sigs if isinstance(s, dict))
        report.add("dsse_unknown_key", f"signed by {ids or 'no key id'}, none of them a trusted key", ENVELOPE)
    report.facts["manifest_signed_by"] = signed_by
    return payload


def _statement(payload: bytes, report: PackReport) -> dict | None:
    try:
        st = json.loads(payload)
        if st.get("_type") != STATEMENT_TYPE or st.get("predicateType") != PREDICATE_TYPE:
            raise ValueError(f"_type {st.get('_type')!r}, predicateType {st.get('predicateType')!r}")
        subjects = {}
        for s in st["subject"]:
            name, digest = s["name"], s["digest"]["sha256"]
            if not isinstance(name, str) or not re.fullmatch(r"[0-9a-f]{64}", digest) or name in subjects:
                raise ValueError(f"bad subject {s!r}")
            subjects[name] = digest
        st["_subjects"] = subjects
        if not isinstance(st.get("predicate"), dict):
            raise ValueError("no predicate")
        return st
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        report.add("manifest_malformed", str(exc), MANIFEST)
        return None


def _file_digest(zf: zipfile.ZipFile, name: str) -> str:
    sha = _sha256()
    with zf.open(name) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _check_events(zf: zipfile.ZipFile, pred: dict, size: int, root: bytes, report: PackReport) -> None:
    name = "evidence/events.jsonl"
    events = pred.get("events") or {}
    period = pred.get("period") or {}
    try:
        start, end = _ts(period["start"]), _ts(period["end"])
    except (KeyError, ValueError, TypeError):
        report.add("manifest_malformed", "the predicate's period is not two timestamps", MANIFEST)
        return
    count, first, last, previous, bad = 0, None, None, -1, 0

    def fail(code: str, detail: str) -> None:
        nonlocal bad
        bad += 1
        if bad <= 20:  # name the first ones; the count says the rest
            report.add(code, detail, name)

    with zf.open(name) as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = json.loads(raw)
                seq, leaf, stored = line["seq"], _b64(line["leaf"]), bytes.fromhex(line["hash"])
                proof = [bytes.fromhex(p) for p in line["proof"]]
                if type(seq) is not int:
                    raise ValueError("seq is not an integer")
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                fail("event_malformed", f"line {lineno}: {exc}")
                continue
            count += 1
            first = seq if first is None else first
            last = seq
            lh = _sha256(b"\x00" + leaf).digest()
            if lh != stored:
                fail("event_hash_mismatch", f"seq {seq}: leaf hashes to {lh.hex()}, line says {stored.hex()}")
            try:
                event = check_canonical_leaf(leaf)
                if not isinstance(event, dict) or event.get("seq") != seq:
                    raise ValueError(f"the leaf's seq is {event.get('seq') if isinstance(event, dict) else '?'}")
            except ValueError as exc:
                fail("event_not_canonical", f"seq {seq}: {exc}")
                event = None
            if event is not None:
                try:
                    when = _ts(event["ts"])
                    if not start <= when < end:
                        fail("event_outside_period", f"seq {seq} at {event['ts']} is outside the period")
                except (KeyError, ValueError, TypeError):
                    fail("event_not_canonical", f"seq {seq}: no valid ts")
            if seq <= previous:
                fail("event_outside_period", f"seq {seq} follows seq {previous}: events out of order or repeated")
            previous = seq
            if not verify_inclusion(lh, seq, size, proof, root):
                fail("inclusion_proof_invalid", f"seq {seq}: the proof does not reach the root of checkpoint size {size}")
    if bad > 20:
        report.add(report.problems[-1].code, f"... and {bad - 20} more event problem(s)", name)
    if (count, first, last) != (events.get("count"), events.get("first_seq"), events.get("last_seq")):
        report.add("events_count_mismatch", f"the file holds {count} events (seq {first} to {last}); the manifest "
                   f"says {events.get('count')} (seq {events.get('first_seq')} to {events.get('last_seq')})", name)
    report.facts["events_verified"] = count - bad if bad < count else 0


def _check_receipts(zf: zipfile.ZipFile, keys: Sequence[str], report: PackReport) -> None:
    name = "evidence/decisions.json"
    try:
        decisions = json.loads(zf.read(name))
    except (KeyError, ValueError) as exc:
        report.add("manifest_malformed", f"{name} is unreadable: {exc}", name)
        return
    checked = 0
    for d in decisions if isinstance(decisions, list) else []:
        receipt = d.get("receipt") if isinstance(d, dict) else None
        if not receipt:
            continue
        try:
            open_note(receipt.encode("utf-8"), keys)
            checked += 1
        except VerifyError as exc:
            report.add("receipt_unverified", f"promotion #{d.get('id')}: {exc.detail}", name)
    report.facts["receipts_verified"] = checked


def _check_pdf(data: bytes, certs: Sequence[bytes], report: PackReport) -> None:
    name = "report.pdf"
    try:
        from pyhanko.pdf_utils.reader import PdfFileReader
        from pyhanko.sign.validation import validate_pdf_signature
        from pyhanko.sign.validation.status import SignatureCoverageLevel
        from pyhanko_certvalidator import ValidationContext
        from pyhanko.keys import load_certs_from_pemder_data
    except ImportError as exc:
        report.add("setup", f"pyhanko is needed to check the PDF signature: {exc}", name)
        return
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        sigs = reader.embedded_signatures
    except Exception as exc:  # pyhanko raises several kinds for damaged files
        report.add("pdf_unreadable", f"{type(exc).__name__}: {exc}", name)
        return
    if len(sigs) != 1:
        report.add("pdf_not_signed", f"the PDF has {len(sigs)} signatures; a pack's report has exactly one", name)
        if not sigs:
            return
    roots = [c for pem in certs for c in load_certs_from_pemder_data(pem)]
    try:
        status = validate_pdf_signature(sigs[0], ValidationContext(trust_roots=roots, allow_fetching=False))
    except Exception as exc:
        report.add("pdf_signature_invalid", f"the signature cannot be validated: {type(exc).__name__}: {exc}", name)
        return
    report.facts["pdf_signer"] = status.signing_cert.subject.human_friendly
    report.facts["pdf_coverage"] = status.coverage.name if status.coverage else None
    if not (status.intact and status.valid):
        report.add("pdf_signature_invalid", "the signed bytes were changed: the digest or signature does not match",
                   name)
    elif not status.trusted:
        report.add("pdf_untrusted_signer", f"signed by '{status.signing_cert.subject.human_friendly}', which is not "
                   "a trusted certificate", name)
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        report.add("pdf_incremental_update", f"the signature covers {status.coverage.name if status.coverage else 'no'} "
                   f"part of the file, not all of it (modification level "
                   f"{status.modification_level.name if status.modification_level else 'unknown'})", name)


def verify_pack(source: str | bytes | io.BufferedIOBase, *, log_keys: Sequence[str] = (),
                pdf_certs: Sequence[bytes] = (), trust_pack_keys: bool = False) -> PackReport:
    """Verify a pack (a path, the zip's bytes, or a binary file object). Never raises for bad data."""
    report = PackReport()
    if Ed25519PublicKey is None:
        report.add("setup", "the 'cryptography' package is required")
        return report
    try:
        zf = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
        entries = [i.filename for i in zf.infolist()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        report.add("zip_unreadable", str(exc))
        return report
    with zf:
        try:
            names = set(entries)
            for info in zf.infolist():
                n = info.filename
                if n.startswith("/") or ".." in n.split("/") or entries.count(n) > 1:
                    report.add("unsafe_entry", f"entry {n!r}", n)
                elif not n.endswith(".jsonl") and info.file_size > MAX_READ_BYTES:
                    report.add("unsafe_entry", f"{info.file_size} bytes unpacked: too large to be a pack's file", n)
            if report.problems:
                return report  # nothing in an unsafe zip is read
            keys = list(log_keys)
            certs = list(pdf_certs)
            if trust_pack_keys:
                report.facts["warning"] = "keys taken from the pack itself: this shows consistency, not authenticity"
                try:
                    keys += [k for k in zf.read("keys/log-keys.txt").decode("ascii").split() if k]
                    certs.append(zf.read("keys/pdf-signing-cert.pem"))
                except (KeyError, UnicodeDecodeError):
                    pass
            try:
                for k in keys:
                    parse_verifier_key(k)
            except VerifyError as exc:
                report.add("setup", exc.detail)
                return report
            if not keys or not certs:
                report.add("setup", "give the log's verifier key (--key) and the organisation certificate (--cert), "
                                    "or --trust-pack-keys")
                return report

            payload = _check_envelope(zf, names, keys, report)
            if MANIFEST not in names:
                report.add("manifest_missing", "the pack has no manifest.json", MANIFEST)
            elif payload is not None and zf.read(MANIFEST) != payload:
                report.add("manifest_mismatch", "manifest.json is not byte for byte the payload the envelope signs",
                           MANIFEST)
            if payload is None:
                return report
            st = _statement(payload, report)
            if st is None:
                return report
            subjects = st["_subjects"]
            pred = st["predicate"]
            report.facts.update({"pack": pred.get("pack"), "framework": pred.get("framework"),
                                 "period": pred.get("period"), "files": len(subjects)})
            for n, digest in sorted(subjects.items()):
                if n not in names:
                    report.add("missing_file", "listed in the manifest, not in the pack", n)
                elif _file_digest(zf, n) != digest:
                    report.add("digest_mismatch", f"SHA-256 differs from the manifest's {digest[:16]}...", n)
            for n in sorted(names - set(subjects) - {MANIFEST, ENVELOPE}):
                if not n.endswith("/"):
                    report.add("unlisted_file", "in the pack, not listed in the manifest", n)

            cp = None
            if "checkpoint" in names:
                try:
                    cp = open_checkpoint(zf.read("checkpoint"), keys)
                except VerifyError as exc:
                    report.add(exc.problem if exc.problem in PROBLEMS else "checkpoint_malformed", exc.detail,
                               "checkpoint")
            want = pred.get("checkpoint") or {}
            if cp is not None:
                report.facts["checkpoint"] = {"origin": cp.origin, "size": cp.size, "root": cp.root_hash.hex()}
                if (cp.size, cp.root_hash.hex(), cp.origin) != (want.get("size"), want.get("root"), want.get("origin")):
                    report.add("checkpoint_mismatch", f"the checkpoint is size {cp.size}, root {cp.root_hash.hex()[:16]}...; "
                               f"the manifest names size {want.get('size')}", "checkpoint")
                if "evidence/events.jsonl" in names:
                    _check_events(zf, pred, cp.size, cp.root_hash, report)
            if "evidence/decisions.json" in names:
                _check_receipts(zf, keys, report)
            if "report.pdf" in names:
                _check_pdf(zf.read("report.pdf"), certs, report)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            report.add("zip_unreadable", f"a member cannot be read: {exc}")
    return report


# ============================================================================ command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pack_verifier.py", description="Verify a govaudit audit pack (zip).")
    parser.add_argument("pack")
    parser.add_argument("--key", action="append", default=[], help="trusted log verifier key (repeatable)")
    parser.add_argument("--keys-file", help="a file of verifier keys, one per line")
    parser.add_argument("--cert", action="append", default=[], help="trusted signing certificate, PEM (repeatable)")
    parser.add_argument("--trust-pack-keys", action="store_true",
                        help="trust the keys inside the pack (shows consistency only, not who made it)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    keys = list(args.key)
    try:
        if args.keys_file:
            with open(args.keys_file, encoding="ascii") as fh:
                keys += [line.strip() for line in fh if line.strip()]
        certs = []
        for path in args.cert:
            with open(path, "rb") as fh:
                certs.append(fh.read())
        with open(args.pack, "rb") as fh:
            report = verify_pack(fh, log_keys=keys, pdf_certs=certs, trust_pack_keys=args.trust_pack_keys)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=1, default=str))
    elif report.ok:
        f = report.facts
        print(f"OK: pack #{f.get('pack')} ({f.get('framework')}), {f.get('files')} files match the signed manifest; "
              f"{f.get('events_verified')} events proven against checkpoint size "
              f"{(f.get('checkpoint') or {}).get('size')}; PDF signed by {f.get('pdf_signer')} over the entire file")
    else:
        for p in report.problems:
            print(f"FAIL: {p}")
    if any(p.code == "setup" for p in report.problems):
        return 2
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
