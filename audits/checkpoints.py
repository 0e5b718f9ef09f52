"""Signed checkpoints of the log, and the tree reads that proofs need.

A checkpoint stores the compact range at its size (the roots of the perfect subtrees covering
[0, size)), so the next one hashes only the leaves added since; a checkpoint is never re-signed.
Creating one is not itself an audit event: it is a signed statement about the log, kept in the
log's own append-only table.
"""
from __future__ import annotations

from collections import OrderedDict
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audits.core.merkle import TreeBuilder, node_hash, root_from_leaf_hashes
from audits.core.note import Checkpoint, sign_checkpoint
from audits.keys import signing_key
from audits.models import AuditCheckpoint, AuditEvent
from audits.services import audit_sequence

_CHECKPOINT_LOCK_KEY = 0x6A7564_17_C4E
_CHUNK = 20_000


def tree_size() -> int:
    last = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    return 0 if last is None else last + 1


def iter_leaf_hashes(start: int, end: int):  # type: ignore[no-untyped-def]
    """Leaf hashes of seq in [start, end), streamed in order."""
    qs = (AuditEvent.objects.filter(seq__gte=start, seq__lt=end).order_by("seq")
          .values_list("leaf_hash", flat=True))
    for value in qs.iterator(chunk_size=_CHUNK):
        yield bytes(value)


def latest_checkpoint() -> AuditCheckpoint | None:
    return AuditCheckpoint.objects.order_by("-size").first()


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_CHECKPOINT_LOCK_KEY])


def checkpoint_create() -> AuditCheckpoint | None:
    """Sign a checkpoint at the current tree size; None when the log is empty or unchanged."""
    audit_sequence(inline=True)
    key = signing_key()
    with transaction.atomic():
        _lock()
        size = tree_size()
        last = latest_checkpoint()
        if size == 0 or (last is not None and last.size >= size):
            return None
        if last is None:
            builder = TreeBuilder()
        else:
            builder = TreeBuilder.from_nodes(last.size, [bytes.fromhex(h) for h in last.compact_range])
        builder.extend(iter_leaf_hashes(builder.size, size))
        if builder.size != size:
            raise RuntimeError(f"the log has gaps below seq {size}: run manage.py audit_verify")
        root = builder.root()
        note = sign_checkpoint(Checkpoint(settings.AUDIT_LOG_ORIGIN, size, root), [key]).decode("utf-8")
        return AuditCheckpoint.objects.create(
            size=size, root_hash=root, note=note, key_name=key.name, key_id=key.key_id_hex,
            compact_range=[n.hex() for n in builder.nodes], created_at=timezone.now())


def checkpoint_if_due() -> AuditCheckpoint | None:
    """The scheduled rule: every N events or T seconds (whichever first), if anything is new."""
    audit_sequence(inline=True)
    last = latest_checkpoint()
    size = tree_size()
    if size == 0 or (last is not None and size <= last.size):
        return None
    grown = size - (last.size if last else 0)
    age = timezone.now() - last.created_at if last else timedelta.max
    if grown >= settings.AUDIT_CHECKPOINT_EVERY_EVENTS or age >= timedelta(seconds=settings.AUDIT_CHECKPOINT_EVERY_SECONDS):
        return checkpoint_create()
    return None


# --- Subtree roots for proofs --------------------------------------------------------------------
# Perfect, aligned subtrees never change once their leaves exist, so their roots are cached.
_CACHE: OrderedDict[tuple[int, int], bytes] = OrderedDict()
_CACHE_MAX = 200_000
_DIRECT = 4096


def subtree_root(start: int, end: int) -> bytes:
    """MTH of leaves [start, end), reading leaf hashes from the database."""
    n = end - start
    perfect = n & (n - 1) == 0 and start % n == 0
    if perfect and (start, end) in _CACHE:
        _CACHE.move_to_end((start, end))
        return _CACHE[(start, end)]
    if n <= _DIRECT:
        hashes = list(iter_leaf_hashes(start, end))
        if len(hashes) != n:
            raise LookupError(f"leaves [{start}, {end}) are not all in the log")
        root = root_from_leaf_hashes(hashes)
    else:
        k = 1 << ((n - 1).bit_length() - 1)
        root = node_hash(subtree_root(start, start + k), subtree_root(start + k, end))
    if perfect:
        _CACHE[(start, end)] = root
        if len(_CACHE) > _CACHE_MAX:
            _CACHE.popitem(last=False)
    return root
