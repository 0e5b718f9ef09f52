"""C2SP signed notes and checkpoints, checked against Go's published ``sumdb/note`` vectors.

Why vectors from Go: ``golang.org/x/mod/sumdb/note`` is the reference implementation of the
format. Ed25519 is deterministic, so reproducing its signed note byte for byte (and rejecting the
same malformed inputs) shows any Go-ecosystem verifier or witness will accept our checkpoints.
"""
from __future__ import annotations

import base64

import pytest

from audits.core.note import (
    Checkpoint,
    InvalidSignatureError,
    MalformedNoteError,
    NoteError,
    SignerKey,
    UnverifiedNoteError,
    VerifierKey,
    format_checkpoint,
    is_valid_key_name,
    key_id,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    sign_checkpoint,
    sign_note,
)

# Test vectors from golang.org/x/mod/sumdb/note (note_test.go / package documentation).
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
ENOCH_SIG = "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
SIGNED = (TEXT + "\n" + PETER_SIG).encode()


# --------------------------------------------------------------------------- keys


def test_go_verifier_key_parses_and_round_trips() -> None:
    v = VerifierKey.parse(PETER_VKEY)
    assert v.name == "PeterNeumann"
    assert v.key_id == 0xC74F20A3
    assert v.key_id_hex == "c74f20a3"
    assert v.encode() == PETER_VKEY
    assert key_id("PeterNeumann", v.public_key) == 0xC74F20A3


def test_go_signer_key_parses_and_matches_verifier() -> None:
    s = SignerKey.parse(PETER_SKEY)
    assert s.key_id == 0xC74F20A3
    assert s.encode() == PETER_SKEY
    assert s.verifier().encode() == PETER_VKEY
    assert "AYEKFALV" not in repr(s), "the seed must not appear in repr"


def test_sign_reproduces_go_signed_note_byte_for_byte() -> None:
    assert sign_note(TEXT, [SignerKey.parse(PETER_SKEY)]) == SIGNED


def test_generated_keys_round_trip() -> None:
    s = SignerKey.generate("audit.example.org/log")
    assert SignerKey.parse(s.encode()) == s
    v = VerifierKey.parse(s.verifier().encode())
    assert v == s.verifier()
    assert v.key_id == s.key_id
    assert v.verify(b"msg", s.sign(b"msg"))
    assert not v.verify(b"msg!", s.sign(b"msg"))
    assert not v.verify(b"msg", s.sign(b"msg")[:63])


def test_key_id_definition() -> None:
    import hashlib

    pub = bytes(range(32))
    expected = int.from_bytes(hashlib.sha256(b"name\n\x01" + pub).digest()[:4], "big")
    assert key_id("name", pub) == expected
    with pytest.raises(ValueError):
        key_id("name", pub[:31])


@pytest.mark.parametrize(
    "name,ok",
    [
        ("PeterNeumann", True),
        ("audit.example.org/log", True),
        ("caf\u00e9", True),
        ("", False),
        ("a+b", False),
        ("a b", False),
        ("a\tb", False),
        ("a\nb", False),
        ("a\u00a0b", False),  # no-break space
        ("a\u2003b", False),  # em space
        ("a\u3000b", False),  # ideographic space
        ("a\u0085b", False),  # next line
        ("a\x01b", False),
        ("a\udc00b", False),  # not encodable as UTF-8
    ],
)
def test_key_name_rules(name: str, ok: bool) -> None:
    assert is_valid_key_name(name) is ok
    if not ok:
        with pytest.raises(MalformedNoteError):
            VerifierKey(name, bytes(32))


def test_mangled_verifier_keys_are_rejected() -> None:
    # As Go's TestNewVerifier: every proper substring and every single-byte increment fails.
    b = PETER_VKEY.encode()
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if (i, j) != (0, len(b)):
                with pytest.raises(NoteError):
                    VerifierKey.parse(b[i:j].decode("latin-1"))
    for i in range(len(b)):
        mangled = bytearray(b)
        mangled[i] += 1
        with pytest.raises(NoteError):
            VerifierKey.parse(mangled.decode("latin-1"))
    # Wrong key length and unknown algorithm, each with a key id adjusted to match (from Go).
    with pytest.raises(NoteError):
        VerifierKey.parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(NoteError):
        VerifierKey.parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    # Uppercase hex ids are not our canonical spelling.
    with pytest.raises(NoteError):
        VerifierKey.parse("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_mangled_signer_keys_are_rejected() -> None:
    b = PETER_SKEY.encode()
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if (i, j) != (0, len(b)):
                with pytest.raises(NoteError):
                    SignerKey.parse(b[i:j].decode("latin-1"))
    for i in range(len(b)):
        mangled = bytearray(b)
        mangled[i] += 1
        with pytest.raises(NoteError):
            SignerKey.parse(mangled.decode("latin-1"))


# --------------------------------------------------------------------------- open


def test_open_go_note() -> None:
    note = open_note(SIGNED, [PETER_VKEY])
    assert note.text == TEXT
    assert [(s.name, s.key_id) for s in note.verified] == [("PeterNeumann", 0xC74F20A3)]
    assert note.unverified == ()
    text, verified = open_note(SIGNED, [VerifierKey.parse(PETER_VKEY)])
    assert text == TEXT and len(verified) == 1
    assert note.verified[0].line() == PETER_SIG


def test_one_verified_one_unknown() -> None:
    note = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [PETER_VKEY])
    assert [s.name for s in note.verified] == ["PeterNeumann"]
    assert [(s.name, s.key_id) for s in note.unverified] == [("EnochRoot", 0xAF0CFE78)]


def test_both_verified() -> None:
    note = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [PETER_VKEY, ENOCH_VKEY])
    assert [s.name for s in note.verified] == ["PeterNeumann", "EnochRoot"]
    assert note.unverified == ()


def test_no_known_signature_is_unverified_and_carries_the_note() -> None:
    with pytest.raises(UnverifiedNoteError) as err:
        open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [])
    assert [s.name for s in err.value.note.unverified] == ["PeterNeumann", "EnochRoot"]
    assert err.value.note.verified == ()


def test_require_a_specific_key() -> None:
    both = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    assert open_note(both, [PETER_VKEY], require=ENOCH_VKEY).signed_by(VerifierKey.parse(ENOCH_VKEY))
    with pytest.raises(UnverifiedNoteError, match="EnochRoot"):
        open_note(SIGNED, [PETER_VKEY], require=ENOCH_VKEY)


def test_invalid_signature_by_known_key_rejects_the_note() -> None:
    bad = TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(InvalidSignatureError, match="PeterNeumann\\+c74f20a3"):
        open_note(bad.encode(), [PETER_VKEY])
    with pytest.raises(InvalidSignatureError):
        open_note(SIGNED.replace(b"cryptography", b"cryptographY"), [PETER_VKEY])


def test_duplicate_signatures_are_collapsed() -> None:
    enoch_bad = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    note = open_note((TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_bad).encode(), [PETER_VKEY])
    assert len(note.verified) == 1
    assert len(note.unverified) == 2


def test_too_many_signatures() -> None:
    with pytest.raises(MalformedNoteError):
        open_note((TEXT + "\n" + PETER_SIG * 101).encode(), [PETER_VKEY])
    assert len(open_note((TEXT + "\n" + PETER_SIG * 100).encode(), [PETER_VKEY]).verified) == 1


@pytest.mark.parametrize(
    "msg",
    [
        # Go's badMsgs table.
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + "\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        # And some more.
        TEXT + "\n" + PETER_SIG.replace("\u2014", "-"),
        TEXT + "\n" + PETER_SIG.replace("\u2014 ", "\u2014"),
        TEXT + "\n" + PETER_SIG.replace(" x08", "  x08"),
        TEXT + "\n" + "\u2014 PeterNeumann \n",
        TEXT + "\n" + "\u2014 PeterNeumann AAAA\n",  # shorter than key id + 1 byte
        TEXT + "\n" + PETER_SIG.replace("AM=", "AN="),  # non-canonical base64 padding bits
        TEXT + "\n" + PETER_SIG + "\n",
        TEXT.replace("\n", "\r\n", 1) + "\n" + PETER_SIG,
        "",
    ],
)
def test_malformed_notes(msg: str) -> None:
    with pytest.raises(MalformedNoteError):
        open_note(msg.encode(), [PETER_VKEY])


def test_invalid_utf8_note() -> None:
    with pytest.raises(MalformedNoteError):
        open_note(b"\xff" + SIGNED, [PETER_VKEY])


def test_text_may_contain_blank_lines() -> None:
    signer = SignerKey.generate("k")
    text = "para one\n\npara two\n\n"
    note = open_note(sign_note(text, [signer]), [signer.verifier()])
    assert note.text == text


def test_sign_rejects_bad_input() -> None:
    signer = SignerKey.parse(PETER_SKEY)
    for text in ["", "no newline", "tab\there\n", "cr\r\n"]:
        with pytest.raises(MalformedNoteError):
            sign_note(text, [signer])
    with pytest.raises(ValueError):
        sign_note(TEXT, [])
    with pytest.raises(ValueError):
        sign_note(TEXT, [signer, signer])


def test_ambiguous_known_keys() -> None:
    # Same name and id, different public keys: only possible if someone tampered with the list.
    v = VerifierKey.parse(PETER_VKEY)
    other = VerifierKey("PeterNeumann", bytes(32))
    object.__setattr__(other, "key_id", v.key_id)
    with pytest.raises(NoteError, match="ambiguous"):
        open_note(SIGNED, [v, other])
    assert open_note(SIGNED, [v, v]).verified  # repeating the same key is harmless


def test_key_rotation_old_and_new_keys() -> None:
    old, new = SignerKey.generate("audit.example.org/log"), SignerKey.generate("audit.example.org/log")
    assert old.key_id != new.key_id
    cp = Checkpoint("audit.example.org/log", 10, bytes(32))
    both = sign_checkpoint(cp, [new, old])
    parsed, note = open_checkpoint(both, [old.verifier()])
    assert parsed == cp
    assert [s.key_id for s in note.verified] == [old.key_id]
    assert [s.key_id for s in note.unverified] == [new.key_id]
    only_new = sign_checkpoint(cp, [new])
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(only_new, [old.verifier()])
    assert open_checkpoint(only_new, [old.verifier(), new.verifier()])[0] == cp


# --------------------------------------------------------------------------- checkpoints


def test_c2sp_example_checkpoint_text_parses() -> None:
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = parse_checkpoint(text)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert format_checkpoint(cp.origin, cp.size, cp.root_hash) == text


def test_checkpoint_round_trip_with_extensions() -> None:
    root = bytes(range(32))
    text = format_checkpoint("audit.example.org/log", 42, root, ["ext one", "ext-two"])
    assert text == f"audit.example.org/log\n42\n{base64.b64encode(root).decode()}\next one\next-two\n"
    assert parse_checkpoint(text) == Checkpoint("audit.example.org/log", 42, root, ("ext one", "ext-two"))
    assert Checkpoint("o", 0, root).text() == f"o\n0\n{base64.b64encode(root).decode()}\n"


def test_signed_checkpoint_round_trip() -> None:
    signer = SignerKey.generate("audit.example.org/log")
    cp = Checkpoint("audit.example.org/log", 7, bytes(range(32)))
    note = sign_checkpoint(cp, [signer])
    assert note.startswith(cp.text().encode() + b"\n\xe2\x80\x94 audit.example.org/log ")
    parsed, opened = open_checkpoint(note, [signer.verifier().encode()], require=signer.verifier())
    assert parsed == cp and opened.text == cp.text()


ROOT_B64 = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "text,reason",
    [
        (f"origin\n01\n{ROOT_B64}\n", "leading zero"),
        (f"origin\n00\n{ROOT_B64}\n", "double zero"),
        (f"origin\n+1\n{ROOT_B64}\n", "plus sign"),
        (f"origin\n-1\n{ROOT_B64}\n", "negative"),
        (f"origin\n 1\n{ROOT_B64}\n", "space"),
        (f"origin\n1.0\n{ROOT_B64}\n", "decimal point"),
        (f"origin\n\u0661\n{ROOT_B64}\n", "non-ASCII digit"),
        (f"origin\n9223372036854775808\n{ROOT_B64}\n", "beyond int64"),
        (f"\n1\n{ROOT_B64}\n", "empty origin"),
        (f"origin\n1\n{base64.b64encode(bytes(31)).decode()}\n", "31-byte root"),
        (f"origin\n1\n{base64.b64encode(bytes(33)).decode()}\n", "33-byte root"),
        ("origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n", "non-canonical base64"),
        ("origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", "missing padding"),
        (f"origin\n1\n{ROOT_B64}", "no final newline"),
        (f"origin\n1\n{ROOT_B64}\n\n", "empty extension line"),
        ("origin\n1\n", "no root line"),
        (f"origin\n1\n{ROOT_B64}\next\x01\n", "control character"),
    ],
)
def test_parse_checkpoint_is_strict(text: str, reason: str) -> None:
    with pytest.raises(MalformedNoteError):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    "args",
    [
        ("", 1, bytes(32)),
        ("a\nb", 1, bytes(32)),
        ("o", -1, bytes(32)),
        ("o", True, bytes(32)),
        ("o", 1, bytes(31)),
        ("o", 2**63, bytes(32)),
    ],
)
def test_format_checkpoint_rejects_bad_input(args: tuple) -> None:
    with pytest.raises(ValueError):
        format_checkpoint(*args)
    with pytest.raises(ValueError):
        format_checkpoint("o", 1, bytes(32), [""])
