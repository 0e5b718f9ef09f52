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


def signing_key() -> SignerKey:
    """The active signer; in development it is created on first use."""
    if settings.AUDIT_SIGNING_KEY:
        key = SignerKey.parse(settings.AUDIT_SIGNING_KEY)
        return key
    path = _key_dir() / "signing.key"
    if path.exists():
        key = SignerKey.parse(path.read_text().strip())
    elif settings.PRODUCTION:
        raise ImproperlyConfigured("Set AUDIT_SIGNING_KEY (or provide GOVAUDIT_KEY_DIR/signing.key) in production; "
                                   "generate one with `manage.py audit_keygen`.")
    else:
        key = SignerKey.generate(_key_name())
        _write_private(path, key.encode())
    _publish(key.verifier())
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
