"""Checkpoint signing keys: loaded from the environment or a key folder, never from the database.

* ``AUDIT_SIGNING_KEY`` (production): the secret signer key string (Go ``note`` format,
  ``PRIVATE+KEY+name+id+base64``), from a secret store.
* Otherwise the key folder (``GOVAUDIT_KEY_DIR``): ``signing.key`` holds the secret (mode 0600),
  generated on first use in development only.
* ``public/*.vkey``: one verifier key per key ever used. Rotation writes a new ``signing.key`` and
  keeps every old public key listed, so old checkpoints stay verifiable.
  ``AUDIT_TRUSTED_KEYS`` (comma-separated verifier keys) adds old keys in deployments whose key
  folder is not kept.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audits.core.note import SignerKey, VerifierKey


def _key_name() -> str:
    # C2SP convention: the key name is the log's origin, so witnesses can match them.
    return settings.AUDIT_LOG_ORIGIN


def _key_dir() -> Path:
    return Path(settings.KEY_DIR)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    os.replace(tmp, path)


def _publish(verifier: VerifierKey) -> None:
    public = _key_dir() / "public"
    public.mkdir(parents=True, exist_ok=True)
    path = public / f"{verifier.key_id_hex}.vkey"
    if not path.exists():
        path.write_text(verifier.encode() + "\n")


_loaded: tuple[tuple[object, ...], SignerKey] | None = None


def _file_stamp(path: Path) -> tuple[object, ...]:
    """What identifies this version of the key file (empty if there is none): a rewrite changes it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return ()
    return ("file", str(path), st.st_ino, st.st_size, st.st_mtime_ns)


def signing_key() -> SignerKey:
    """The active signer; in development it is created on first use.

    Kept in memory while its source is unchanged: the same ``AUDIT_SIGNING_KEY`` value, or the
    same ``signing.key`` file (path, inode, size and modification time, one ``stat``). Every
    promotion signs a receipt, and reading, parsing and loading the key each time (with the
    check that its public key is published) was 3 % of a loaded server's CPU. A rotation, here
    or by another process, writes a new file (a new inode), so the next call loads it.
    """
    global _loaded
    if settings.AUDIT_SIGNING_KEY:
        source: tuple[object, ...] = ("env", settings.AUDIT_SIGNING_KEY)
        if _loaded is None or _loaded[0] != source:
            _loaded = (source, SignerKey.parse(settings.AUDIT_SIGNING_KEY))
        return _loaded[1]
    path = _key_dir() / "signing.key"
    source = _file_stamp(path)
    if source and _loaded is not None and _loaded[0] == source:
        return _loaded[1]
    if source:
        key = SignerKey.parse(path.read_text().strip())
    elif settings.PRODUCTION:
        raise ImproperlyConfigured("Set AUDIT_SIGNING_KEY (or provide GOVAUDIT_KEY_DIR/signing.key) in production; "
                                   "generate one with `manage.py audit_keygen`.")
    else:
        key = SignerKey.generate(_key_name())
        _write_private(path, key.encode())
        source = _file_stamp(path)
    _publish(key.verifier())
    _loaded = (source, key)
    return key


def rotate_signing_key() -> tuple[VerifierKey, VerifierKey]:
    """Replace the key-folder signer with a new one; the old public key stays trusted."""
    if settings.AUDIT_SIGNING_KEY:
        raise ImproperlyConfigured("The signing key comes from AUDIT_SIGNING_KEY; rotate it in your secret store "
                                   "and add the old verifier key to AUDIT_TRUSTED_KEYS.")
    old = signing_key()
    new = SignerKey.generate(_key_name())
    _publish(new.verifier())
    _write_private(_key_dir() / "signing.key", new.encode())
    return old.verifier(), new.verifier()


@dataclass(frozen=True)
class PublishedKey:
    verifier: VerifierKey
    active: bool


def trusted_keys() -> list[PublishedKey]:
    """Every key whose checkpoints this service stands behind: the active one first."""
    active = signing_key().verifier()
    keys = {active.encode(): PublishedKey(active, True)}
    public = _key_dir() / "public"
    for path in sorted(public.glob("*.vkey")) if public.exists() else []:
        v = VerifierKey.parse(path.read_text().strip())
        keys.setdefault(v.encode(), PublishedKey(v, False))
    for text in (os.environ.get("AUDIT_TRUSTED_KEYS") or "").split(","):
        if text.strip():
            v = VerifierKey.parse(text.strip())
            keys.setdefault(v.encode(), PublishedKey(v, False))
    return list(keys.values())
