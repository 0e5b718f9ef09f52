"""C2SP signed notes (Ed25519) and transparency-log checkpoints.

Why this format: a checkpoint ("origin / tree size / root hash", signed) is the one artefact an
auditor must trust, so it uses the public C2SP formats (https://c2sp.org/signed-note and
https://c2sp.org/tlog-checkpoint) that Go's ``golang.org/x/mod/sumdb/note`` and the wider
transparency-log ecosystem (witnesses, monitors) already read. Any of those tools can check our
checkpoints; our verifier can check theirs. The tests reproduce the Go package's published
vectors byte for byte (Ed25519 signatures are deterministic).

Encodings (all base64 is standard RFC 4648 section 4 with padding):

* key id: the first 4 bytes, big-endian, of SHA-256(name || 0x0A || 0x01 || 32-byte public key);
* verifier key (public, shareable): ``<name>+<8 lowercase hex key id>+<base64(0x01 || pubkey)>``;
* signer key (SECRET): ``PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || 32-byte seed)>``, the
  string Go's ``note.NewSigner`` reads and ``note.GenerateKey`` writes, so keys can move between
  this service and Go tooling;
* signed note: text (non-empty, ends in newline), a blank line, then one line per signature:
  ``U+2014 EM DASH, space, key name, space, base64(4-byte key id || 64-byte signature), newline``.
  The Ed25519 signature covers the text bytes exactly, final newline included.

Parsing is strict where it costs nothing (canonical base64, lowercase hex) and otherwise follows
Go's ``note.Open``: signatures by unknown keys are kept as *unverified* and do not fail the note
(that is what makes key rotation and witness cosignatures work), a signature by a known key that
does not verify fails the whole note, and a note with no verified signature fails.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "ALG_ED25519",
    "Checkpoint",
    "InvalidSignatureError",
    "MAX_SIGNATURES",
    "MalformedNoteError",
    "NoteError",
    "NoteSignature",
    "OpenedNote",
    "SignerKey",
    "UnverifiedNoteError",
    "VerifierKey",
    "format_checkpoint",
    "is_valid_key_name",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "sign_checkpoint",
    "sign_note",
]

ALG_ED25519 = 0x01
"""C2SP signature type byte for Ed25519."""

MAX_SIGNATURES = 100
"""Notes with more signature lines are rejected (Go's limit; C2SP requires accepting >= 16)."""

_EM_DASH_PREFIX = "\u2014 "
_HEX8 = re.compile(r"[0-9a-f]{8}")
_SIZE = re.compile(r"0|[1-9][0-9]*")
_MAX_TREE_SIZE = 2**63 - 1  # the int64 of Go's tlog; far beyond any real log


class NoteError(ValueError):
    """Base class for signed-note and checkpoint failures."""


class MalformedNoteError(NoteError):
    """The bytes are not a well-formed signed note (or checkpoint, or key string)."""


class InvalidSignatureError(NoteError):
    """A signature by a known key did not verify: the note must be rejected as a whole."""

    def __init__(self, name: str, key_id: int) -> None:
        super().__init__(f"invalid signature for key {name}+{key_id:08x}")
        self.name = name
        self.key_id = key_id


class UnverifiedNoteError(NoteError):
    """The note parsed but no known key signed it (or not the key the caller required)."""

    def __init__(self, message: str, note: OpenedNote) -> None:
        super().__init__(message)
        self.note = note


def is_valid_key_name(name: object) -> bool:
    """Key names are non-empty, valid UTF-8, with no whitespace, no '+' and no control characters.

    Python's ``str.isspace`` covers every Unicode White_Space character Go's ``unicode.IsSpace``
    does (plus the C0 separators U+001C..U+001F, which are control characters anyway).
    """
    if not isinstance(name, str) or not name or "+" in name:
        return False
    if any(ch.isspace() or ord(ch) < 0x20 or ch == "\x7f" for ch in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def key_id(name: str, public_key: bytes) -> int:
    """The C2SP key id of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || pubkey)[:4], big-endian."""
    if len(public_key) != 32:
        raise ValueError("Ed25519 public keys are 32 bytes")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _b64decode_canonical(text: str) -> bytes:
    """Strict standard base64: alphabet, padding, and no alternative spellings of the same bytes."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedNoteError("invalid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedNoteError("non-canonical base64")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class VerifierKey:
    """A named Ed25519 public key that checks note signatures."""

    name: str
    public_key: bytes = field(repr=False)
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise MalformedNoteError(f"invalid key name {self.name!r}")
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise MalformedNoteError("Ed25519 public keys are 32 bytes")
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key))

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Parse ``name+hexid+base64(0x01||pubkey)``; the id must match the name and key."""
        parts = vkey.split("+", 2) if isinstance(vkey, str) else []
        if len(parts) != 3 or not _HEX8.fullmatch(parts[1]):
            raise MalformedNoteError("malformed verifier key")
        name, hex_id, b64 = parts
        raw = _b64decode_canonical(b64)
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise MalformedNoteError("verifier key is not an Ed25519 key")
        key = cls(name, raw[1:])
        if key.key_id != int(hex_id, 16):
            raise MalformedNoteError("verifier key id does not match its name and public key")
        return key

    def encode(self) -> str:
        """The verifier key string (safe to publish)."""
        return f"{self.name}+{self.key_id:08x}+{_b64(bytes([ALG_ED25519]) + self.public_key)}"

    @property
    def key_id_hex(self) -> str:
        """The key id as 8 lowercase hex digits, as it appears in key strings."""
        return f"{self.key_id:08x}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is this key's Ed25519 signature of ``message``."""
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SignerKey:
    """A named Ed25519 private key (its 32-byte seed). Never log or repr the seed."""

    name: str
    seed: bytes = field(repr=False)
    public_key: bytes = field(init=False, repr=False, compare=False)
    key_id: int = field(init=False, compare=False)
    # Loaded once: loading the seed again for each signature cost as much as signing.
    _private: Ed25519PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise MalformedNoteError(f"invalid key name {self.name!r}")
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise MalformedNoteError("Ed25519 seeds are 32 bytes")
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        object.__setattr__(self, "_private", private)
        object.__setattr__(self, "public_key", public)
        object.__setattr__(self, "key_id", key_id(self.name, public))

    @classmethod
    def generate(cls, name: str) -> SignerKey:
        """A fresh random key for ``name``."""
        private = Ed25519PrivateKey.generate()
        seed = private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return cls(name, seed)

    @classmethod
    def parse(cls, skey: str) -> SignerKey:
        """Parse Go's ``PRIVATE+KEY+name+hexid+base64(0x01||seed)``; the id is checked."""
        parts = skey.split("+", 4) if isinstance(skey, str) else []
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY" or not _HEX8.fullmatch(parts[3]):
            raise MalformedNoteError("malformed signer key")
        raw = _b64decode_canonical(parts[4])
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise MalformedNoteError("signer key is not an Ed25519 key")
        key = cls(parts[2], raw[1:])
        if key.key_id != int(parts[3], 16):
            raise MalformedNoteError("signer key id does not match its name and public key")
        return key

    def encode(self) -> str:
        """The secret signer key string (Go ``note`` format). Treat it like a password."""
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{_b64(bytes([ALG_ED25519]) + self.seed)}"

    @property
    def key_id_hex(self) -> str:
        """The key id as 8 lowercase hex digits (same as the matching verifier key's)."""
        return f"{self.key_id:08x}"

    def verifier(self) -> VerifierKey:
        """The public half, for publishing and verifying."""
        return VerifierKey(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """Raw 64-byte Ed25519 signature of ``message``."""
        return self._private.sign(message)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note: who claims to have signed, and the raw signature bytes."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """The signature line as it appears in a note (with its trailing newline)."""
        blob = _b64(self.key_id.to_bytes(4, "big") + self.signature)
        return f"{_EM_DASH_PREFIX}{self.name} {blob}\n"


@dataclass(frozen=True)
class OpenedNote:
    """A parsed note whose ``verified`` signatures were checked against known keys.

    Unpacks as ``text, verified = open_note(...)`` for convenience; ``unverified`` holds
    signatures by keys the caller did not supply (e.g. witnesses or retired keys).
    """

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...] = ()

    def __iter__(self) -> Iterator[object]:
        return iter((self.text, self.verified))

    def signed_by(self, key: VerifierKey) -> bool:
        """True iff a verified signature is by exactly this key (name and id)."""
        return any(s.name == key.name and s.key_id == key.key_id for s in self.verified)


# C0 control characters except newline (U+000A); one regex scan instead of a Python loop per character.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")


def _check_note_text(text: str) -> None:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise MalformedNoteError("note text must be a str ending in a newline")
    if _CONTROL.search(text) is not None:
        raise MalformedNoteError("note text may not contain control characters other than newline")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedNoteError("note text is not valid Unicode") from exc


def sign_note(text: str, signers: Sequence[SignerKey]) -> bytes:
    """The signed note: ``text``, a blank line, one signature line per signer (in order)."""
    _check_note_text(text)
    if not signers:
        raise ValueError("a signed note needs at least one signer")
    seen: set[tuple[str, int]] = set()
    message = text.encode("utf-8")
    lines = []
    for signer in signers:
        ident = (signer.name, signer.key_id)
        if ident in seen:
            raise ValueError(f"duplicate signer {signer.name}+{signer.key_id:08x}")
        seen.add(ident)
        lines.append(NoteSignature(signer.name, signer.key_id, signer.sign(message)).line())
    return (text + "\n" + "".join(lines)).encode("utf-8")


def _as_verifier(key: VerifierKey | str) -> VerifierKey:
    return key if isinstance(key, VerifierKey) else VerifierKey.parse(key)


def open_note(
    data: bytes,
    known: Iterable[VerifierKey | str],
    *,
    require: VerifierKey | str | None = None,
) -> OpenedNote:
    """Parse a signed note and verify every signature made by a ``known`` key.

    Raises ``MalformedNoteError`` for syntax errors, ``InvalidSignatureError`` when a known key's
    signature does not verify, and ``UnverifiedNoteError`` when no known key signed (or, with
    ``require``, when that particular key did not). Repeated identical signatures are collapsed,
    as in Go. Two known keys with the same name and id are rejected as ambiguous.
    """
    verifiers: dict[tuple[str, int], VerifierKey] = {}
    for k in known:
        v = _as_verifier(k)
        ident = (v.name, v.key_id)
        if ident in verifiers and verifiers[ident] != v:
            raise NoteError(f"ambiguous key {v.name}+{v.key_id:08x}")
        verifiers[ident] = v
    required = _as_verifier(require) if require is not None else None
    if required is not None:
        verifiers.setdefault((required.name, required.key_id), required)

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("open_note takes bytes")
    try:
        msg = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedNoteError("note is not UTF-8") from exc
    if any(ord(ch) < 0x20 and ch != "\n" for ch in msg):
        raise MalformedNoteError("note contains control characters")
    split = msg.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no signature block")
    text, sig_block = msg[: split + 1], msg[split + 2 :]
    if not sig_block.endswith("\n"):
        raise MalformedNoteError("signature block must end in a newline")

    message = text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen_verified: set[tuple[str, int]] = set()
    seen_unverified: set[str] = set()
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"more than {MAX_SIGNATURES} signatures")
    for line in lines:
        if not line.startswith(_EM_DASH_PREFIX):
            raise MalformedNoteError("signature line must start with an em dash and a space")
        name, sep, b64 = line[len(_EM_DASH_PREFIX) :].partition(" ")
        if not sep or not is_valid_key_name(name) or not b64:
            raise MalformedNoteError("malformed signature line")
        raw = _b64decode_canonical(b64)
        if len(raw) < 5:
            raise MalformedNoteError("signature too short")
        sig = NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])
        ident = (sig.name, sig.key_id)
        verifier = verifiers.get(ident)
        if verifier is None:
            if line not in seen_unverified:
                seen_unverified.add(line)
                unverified.append(sig)
            continue
        if ident in seen_verified:
            continue
        seen_verified.add(ident)
        if not verifier.verify(message, sig.signature):
            raise InvalidSignatureError(sig.name, sig.key_id)
        verified.append(sig)

    note = OpenedNote(text, tuple(verified), tuple(unverified))
    if not verified:
        raise UnverifiedNoteError("note has no verifiable signatures", note)
    if required is not None and not note.signed_by(required):
        raise UnverifiedNoteError(f"note is not signed by {required.name}+{required.key_id:08x}", note)
    return note


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """The body of a tlog checkpoint: which log, how many leaves, and their Merkle root."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The checkpoint's note text (validates like ``format_checkpoint``)."""
        return format_checkpoint(self.origin, self.size, self.root_hash, self.extensions)


def format_checkpoint(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    """``origin``, decimal ``size``, base64 ``root``, then any extension lines, each ending in "\\n"."""
    if not isinstance(origin, str) or not origin or "\n" in origin:
        raise ValueError("origin must be a non-empty single line")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= _MAX_TREE_SIZE:
        raise ValueError("size must be an int in [0, 2**63)")
    if not isinstance(root, bytes) or len(root) != 32:
        raise ValueError("root must be 32 bytes")
    for ext in extensions:
        if not isinstance(ext, str) or not ext or "\n" in ext:
            raise ValueError("extension lines must be non-empty single lines")
    text = f"{origin}\n{size}\n{_b64(root)}\n" + "".join(f"{ext}\n" for ext in extensions)
    _check_note_text(text)
    return text


def parse_checkpoint(text: str) -> Checkpoint:
    """Strictly parse checkpoint note text (as returned in ``OpenedNote.text``)."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise MalformedNoteError("checkpoint text must end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedNoteError("checkpoint needs origin, size and root hash lines")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise MalformedNoteError("checkpoint origin is empty")
    if any(ord(ch) < 0x20 for ch in text.replace("\n", "")):
        raise MalformedNoteError("checkpoint contains control characters")
    if not _SIZE.fullmatch(size_text):
        raise MalformedNoteError("checkpoint size must be decimal without leading zeros")
    size = int(size_text)
    if size > _MAX_TREE_SIZE:
        raise MalformedNoteError("checkpoint size out of range")
    root = _b64decode_canonical(root_text)
    if len(root) != 32:
        raise MalformedNoteError("checkpoint root hash must be 32 bytes")
    if any(not ext for ext in extensions):
        raise MalformedNoteError("checkpoint extension lines must be non-empty")
    return Checkpoint(origin, size, root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[SignerKey]) -> bytes:
    """The signed checkpoint note."""
    return sign_note(checkpoint.text(), signers)


def open_checkpoint(
    data: bytes,
    known: Iterable[VerifierKey | str],
    *,
    require: VerifierKey | str | None = None,
) -> tuple[Checkpoint, OpenedNote]:
    """Verify a signed checkpoint note and parse its text (see ``open_note`` for the rules)."""
    note = open_note(data, known, require=require)
    return parse_checkpoint(note.text), note
