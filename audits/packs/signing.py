"""Who signs a pack, and how: the organisation's X.509 certificate for the PDF (PAdES B-B with
pyHanko), and the audit log's Ed25519 key for the manifest (a DSSE envelope).

Production reads the operator's certificate and key from ``GOVAUDIT_PACK_SIGNING_CERT`` /
``GOVAUDIT_PACK_SIGNING_KEY`` (PEM files; the certificate file may carry intermediates after the
leaf). Development generates a self-signed organisation certificate on first use into
``GOVAUDIT_KEY_DIR/pack-signing/`` (never committed: the key folder is outside the repository).
It is marked CA (path length 0) because PKIX validators such as NSS, which poppler's ``pdfsig``
uses, accept only CA certificates as trust anchors; its key usage is digital signature plus
non-repudiation (content commitment), as a document signature needs, plus certificate signing
for the anchor role.
"""
from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audits.core.note import SignerKey

DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
SIGNATURE_FIELD = "AuditPackSignature"


@dataclass(frozen=True)
class OrganisationSigner:
    """The certificate chain (leaf first, PEM) and private key (PEM) that sign pack PDFs."""

    cert_pem: bytes
    chain_pem: tuple[bytes, ...]
    key_pem: bytes
    key_password: bytes | None
    development: bool

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


def _dev_dir() -> Path:
    return Path(settings.KEY_DIR) / "pack-signing"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def generate_development_certificate(common_name: str, *, days: int = 3650) -> tuple[bytes, bytes]:
    """A self-signed organisation certificate and its ECDSA P-256 key, both PEM.

    P-256 rather than RSA: every PDF validator we target accepts it, and loading and using the
    key is over ten times faster (pyHanko loads the key for every signature).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "govaudit (development)"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Audit packs"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
    ])
    now = datetime.now(dt_timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _split_pem(data: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    parts = [p.strip() + b"\n" + marker + b"\n" for p in data.split(marker) if b"BEGIN CERTIFICATE" in p]
    return [p.lstrip() for p in parts]


def organisation_signer() -> OrganisationSigner:
    """The configured signer; in development a self-signed one is created on first use."""
    cert_path = getattr(settings, "GOVAUDIT_PACK_SIGNING_CERT", None)
    key_path = getattr(settings, "GOVAUDIT_PACK_SIGNING_KEY", None)
    password = getattr(settings, "GOVAUDIT_PACK_SIGNING_KEY_PASSWORD", None)
    if cert_path or key_path:
        if not (cert_path and key_path):
            raise ImproperlyConfigured("Set both GOVAUDIT_PACK_SIGNING_CERT and GOVAUDIT_PACK_SIGNING_KEY.")
        try:
            certs = _split_pem(Path(cert_path).read_bytes())
            key_pem = Path(key_path).read_bytes()
        except OSError as exc:
            raise ImproperlyConfigured(f"Cannot read the pack signing certificate or key: {exc}") from exc
        if not certs:
            raise ImproperlyConfigured(f"{cert_path} holds no PEM certificate.")
        return OrganisationSigner(certs[0], tuple(certs[1:]), key_pem,
                                  password.encode() if password else None, development=False)
    if settings.PRODUCTION:
        raise ImproperlyConfigured("Audit packs are signed with your organisation's certificate: set "
                                   "GOVAUDIT_PACK_SIGNING_CERT and GOVAUDIT_PACK_SIGNING_KEY (PEM files).")
    folder = _dev_dir()
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    if not (cert_file.exists() and key_file.exists()):
        cert_pem, key_pem = generate_development_certificate(
            f"govaudit development pack signing ({settings.AUDIT_LOG_ORIGIN})")
        _write_private(key_file, key_pem)
        cert_file.write_bytes(cert_pem)
    return OrganisationSigner(cert_file.read_bytes(), (), key_file.read_bytes(), None, development=True)


def trusted_certificates() -> list[bytes]:
    """PEM certificates whose pack signatures this service accepts (current, plus any listed)."""
    out = [organisation_signer().cert_pem]
    for path in (getattr(settings, "GOVAUDIT_PACK_TRUSTED_CERTS", None) or "").split(","):
        if path.strip():
            out += _split_pem(Path(path.strip()).read_bytes())
    return out


def sign_pdf(pdf: bytes, signer: OrganisationSigner, *, reason: str, location: str = "") -> bytes:
    """Add a PAdES B-B signature (ETSI.CAdES.detached, SHA-256) covering the whole file."""
    from pyhanko.keys import load_certs_from_pemder_data, load_private_key_from_pemder_data
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    cert = next(iter(load_certs_from_pemder_data(signer.cert_pem)))
    chain = [c for pem in signer.chain_pem for c in load_certs_from_pemder_data(pem)]
    key = load_private_key_from_pemder_data(signer.key_pem, passphrase=signer.key_password)
    simple = signers.SimpleSigner(signing_cert=cert, signing_key=key,
                                  cert_registry=SimpleCertificateStore.from_certs([cert, *chain]))
    meta = signers.PdfSignatureMetadata(field_name=SIGNATURE_FIELD, subfilter=fields.SigSeedSubFilter.PADES,
                                        md_algorithm="sha256", reason=reason, location=location or None)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    out = signers.PdfSigner(meta, simple).sign_pdf(writer)
    return out.getvalue()


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def dsse_envelope(payload: bytes, key: SignerKey, *, payload_type: str = DSSE_PAYLOAD_TYPE) -> dict[str, object]:
    """A DSSE envelope over ``payload``, signed with the log's Ed25519 key (keyid = name+hexid)."""
    sig = key.sign(dsse_pae(payload_type, payload))
    return {"payloadType": payload_type, "payload": base64.b64encode(payload).decode("ascii"),
            "signatures": [{"keyid": f"{key.name}+{key.key_id_hex}", "sig": base64.b64encode(sig).decode("ascii")}]}
