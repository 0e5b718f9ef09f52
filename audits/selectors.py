"""Reads on the audit log: events a principal may see, proofs, the export stream."""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast

from audits.checkpoints import subtree_root, tree_size
from audits.core.merkle import consistency_proof, inclusion_proof
from audits.models import AuditEvent
from governance.access import Principal
from governance.errors import ValidationFailed


def event_list(*, principal: Principal) -> QuerySet[AuditEvent]:
    """Everything for audit-log readers; otherwise events about models, versions and datasets one may see."""
    qs = AuditEvent.objects.all()
    if principal.can("view_audit_log") and principal.team_scope is None:
        return qs
    if not principal.can("view_own_audit_events"):
        return qs.none()
    from registry.models import ModelVersion
    from registry.selectors import dataset_list, model_list

    models = model_list(principal=principal)
    model_ids = models.annotate(s=Cast("pk", CharField())).values("s")
    version_ids = ModelVersion.objects.filter(model__in=models).annotate(s=Cast("pk", CharField())).values("s")
    dataset_ids = dataset_list(principal=principal).annotate(s=Cast("pk", CharField())).values("s")
    return qs.filter(Q(target_type="registry.model", target_id__in=model_ids)
                     | Q(target_type="registry.version", target_id__in=version_ids)
                     | Q(target_type="registry.dataset", target_id__in=dataset_ids))


def event_json(event: AuditEvent) -> dict[str, Any]:
    """What people see of an event: parsed from its leaf bytes, never from the filter columns."""
    leaf = bytes(event.leaf)
    return {"seq": event.seq, "event": json.loads(leaf), "leaf_hash": bytes(event.leaf_hash).hex()}


def _check_size(size: int) -> int:
    current = tree_size()
    if not 1 <= size <= current:
        raise ValidationFailed(f"size must be between 1 and the log's current size {current}.", code="invalid_size")
    return size


def inclusion(*, index: int, size: int) -> dict[str, Any]:
    """An RFC 9162 inclusion proof of leaf ``index`` in the tree of the first ``size`` leaves."""
    _check_size(size)
    if not 0 <= index < size:
        raise ValidationFailed(f"index must be between 0 and size-1 ({size - 1}).", code="invalid_index")
    event = AuditEvent.objects.get(seq=index)
    return {"index": index, "size": size, "leaf_hash": bytes(event.leaf_hash).hex(),
            "root": subtree_root(0, size).hex(),
            "proof": [h.hex() for h in inclusion_proof(index, size, subtree_root)]}


def consistency(*, old: int, new: int) -> dict[str, Any]:
    """An RFC 9162 consistency proof between the trees of the first ``old`` and ``new`` leaves."""
    _check_size(new)
    if not 1 <= old <= new:
        raise ValidationFailed("old must be between 1 and new.", code="invalid_old")
    return {"old": old, "new": new, "old_root": subtree_root(0, old).hex(), "new_root": subtree_root(0, new).hex(),
            "proof": [h.hex() for h in consistency_proof(old, new, subtree_root)]}


def export_lines(*, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """JSON Lines, one per event: seq, the exact leaf bytes (base64) and the leaf hash (hex)."""
    qs = AuditEvent.objects.filter(seq__gte=start).order_by("seq")
    if end is not None:
        qs = qs.filter(seq__lt=end)
    for seq, leaf, leaf_hash in qs.values_list("seq", "leaf", "leaf_hash").iterator(chunk_size=5000):
        line = {"seq": seq, "leaf": base64.b64encode(bytes(leaf)).decode("ascii"), "hash": bytes(leaf_hash).hex()}
        yield (json.dumps(line, separators=(",", ":")) + "\n").encode("ascii")
