"""Make an NSS certificate database that trusts one certificate, for poppler's ``pdfsig -nssdir``.

Debian's ``certutil`` (libnss3-tools) is not installed here, but ``pdfsig`` needs ``libnss3``
anyway, so this calls the library directly: create a database, import the certificate and mark
it a trusted CA for e-mail (document) signing, as ``certutil -A -t C,C,C`` would.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = textwrap.dedent("""
    import ctypes, ctypes.util, sys
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    class Item(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("data", ctypes.c_char_p), ("len", ctypes.c_uint)]

    class Trust(ctypes.Structure):
        _fields_ = [("ssl", ctypes.c_uint), ("email", ctypes.c_uint), ("objsign", ctypes.c_uint)]

    folder, pem = sys.argv[1], open(sys.argv[2], "rb").read()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    nss = ctypes.CDLL(ctypes.util.find_library("nss3"))
    nss.NSS_Initialize.argtypes = [ctypes.c_char_p] * 4 + [ctypes.c_uint32]
    assert nss.NSS_Initialize(f"sql:{folder}".encode(), b"", b"", b"secmod.db", 0) == 0, "NSS_Initialize"
    nss.CERT_GetDefaultCertDB.restype = ctypes.c_void_p
    db = nss.CERT_GetDefaultCertDB()
    item = Item(0, der, len(der))
    nss.CERT_NewTempCertificate.restype = ctypes.c_void_p
    nss.CERT_NewTempCertificate.argtypes = [ctypes.c_void_p, ctypes.POINTER(Item), ctypes.c_char_p, ctypes.c_int,
                                            ctypes.c_int]
    cert = nss.CERT_NewTempCertificate(db, ctypes.byref(item), None, 0, 1)
    nss.PK11_GetInternalKeySlot.restype = ctypes.c_void_p
    slot = nss.PK11_GetInternalKeySlot()
    nss.PK11_ImportCert.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    assert nss.PK11_ImportCert(slot, cert, 0, b"audit-pack-signer", 0) == 0, "PK11_ImportCert"
    nss.PK11_InitPin.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    nss.PK11_InitPin(slot, b"", b"")
    nss.CERT_FindCertByDERCert.restype = ctypes.c_void_p
    nss.CERT_FindCertByDERCert.argtypes = [ctypes.c_void_p, ctypes.POINTER(Item)]
    stored = nss.CERT_FindCertByDERCert(db, ctypes.byref(item))
    valid_ca, trusted_ca = 1 << 3, 1 << 4
    flags = valid_ca | trusted_ca
    trust = Trust(flags, flags, flags)
    nss.CERT_ChangeCertTrust.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(Trust)]
    assert nss.CERT_ChangeCertTrust(db, stored, ctypes.byref(trust)) == 0, "CERT_ChangeCertTrust"
    nss.NSS_Shutdown()
""")


def available() -> bool:
    return ctypes.util.find_library("nss3") is not None


def trust_db(folder: Path, cert_pem: bytes) -> str:
    """A new NSS database in ``folder`` trusting ``cert_pem``; returns the ``sql:`` path for -nssdir.

    Runs in a child process: NSS keeps global state once initialised.
    """
    folder.mkdir(parents=True, exist_ok=True)
    pem = folder / "trusted.pem"
    pem.write_bytes(cert_pem)
    subprocess.run([sys.executable, "-c", _SCRIPT, str(folder), str(pem)], check=True, capture_output=True,
                   timeout=60)
    return f"sql:{folder}"
