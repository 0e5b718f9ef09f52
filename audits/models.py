"""Audit log storage.

Three tables:

* ``AuditPending``: the queue. A service appends its event here, inside its own transaction, so
  the event is durable exactly when the change is. Rows leave the queue only by being sequenced.
* ``AuditEvent``: the log. One row per leaf, ``seq`` dense from 0, the leaf's exact canonical
  bytes and their RFC 6962 leaf hash. The filter columns are copies of fields inside ``leaf``;
  verification checks they agree, and anything shown to people is parsed from ``leaf``.
* ``AuditCheckpoint``: signed C2SP checkpoints (size, root) with the compact range at that size,
  so the next checkpoint only hashes the leaves added since.

``AuditEvent`` and ``AuditCheckpoint`` are append-only: triggers (see the migration) refuse UPDATE
and DELETE on SQLite and PostgreSQL, and TRUNCATE on PostgreSQL. No code path edits them.
"""
from __future__ import annotations

from django.db import models


class AuditPending(models.Model):
    """An event recorded with its change, waiting for the sequencer to give it a ``seq``."""

    id = models.BigAutoField(primary_key=True)
    body = models.BinaryField()

    class Meta:
        default_permissions = ()


class AuditEvent(models.Model):
    """One leaf of the log."""

    seq = models.BigIntegerField(primary_key=True)
    ts = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=80, db_index=True)
    actor_id = models.BigIntegerField(null=True, db_index=True)
    actor_name = models.CharField(max_length=150, blank=True)
    target_type = models.CharField(max_length=60, blank=True)
    target_id = models.CharField(max_length=120, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    leaf = models.BinaryField()
    leaf_hash = models.BinaryField(max_length=32)

    class Meta:
        ordering = ["seq"]
        default_permissions = ("view",)
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_event_target")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action}"


class AuditCheckpoint(models.Model):
    """A signed checkpoint of the tree at ``size`` leaves."""

    size = models.BigIntegerField(primary_key=True)
    root_hash = models.BinaryField(max_length=32)
    note = models.TextField(help_text="The signed note, exactly as published.")
    key_name = models.CharField(max_length=120)
    key_id = models.CharField(max_length=8)
    compact_range = models.JSONField(help_text="Hex roots of the perfect subtrees covering [0, size).")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["size"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"checkpoint @{self.size}"


class AuditVerification(models.Model):
    """The outcome of one verification run of the whole log (a record, not part of the log)."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True)
    size = models.BigIntegerField(default=0)
    ok = models.BooleanField(null=True)
    first_bad_seq = models.BigIntegerField(null=True)
    problem = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        default_permissions = ("view",)


# Audit packs, their schedules and exports, and alerts: defined in audits/packs/models.py.
from audits.packs.models import Alert, AuditPack, PackExport, PackSchedule  # noqa: E402,F401
