"""Signed audit packs: what a compliance officer hands an auditor (docs/audit-packs.md).

A pack is a zip that stands on its own: a PAdES-signed PDF report, the evidence beside it (JSON
and CSV, audit events with their leaf bytes and inclusion proofs), the signed checkpoint those
proofs end at, the public keys, and an in-toto manifest of every file's SHA-256 in a DSSE
envelope. The layers:

* ``catalogue`` (data) and ``checks`` (pure): controls of HIPAA, GDPR and SOC 2, each answered by
  evidence checks that are plain functions of collected facts;
* ``proofs`` (pure): every inclusion proof of a period against one checkpoint in a single pass;
* ``pdf`` (pure): the report, byte-identical for identical inputs (reportlab invariant mode);
* ``signing``: the organisation certificate, PAdES signing (pyHanko) and the DSSE envelope;
* ``collect`` (reads) and ``build`` (writes the zip, streaming the evidence);
* ``models``, ``services``, ``tasks``, ``schedules``, ``api``, ``admin``: the Django side;
* ``audits/pack_verifier.py``: the standalone verifier an auditor runs (no Django).
"""
