"""Per-row checks of stored audit events, shared by the in-process and the parallel verifier.

Pure code: no Django, no database. Rows come in as plain tuples in the column order of
``ROW_COLUMNS`` (the caller's SQL renders ``ts`` as text in the leaf's own layout, so the column
check is a string comparison rather than a datetime conversion per row). A range of rows checks
independently of every other range; only the Merkle tree needs the resulting leaf hashes in
``seq`` order, which is why this returns them instead of building a tree.

Every check is the standalone verifier's (``audits/verifier.py``), so the service, its worker
processes and an auditor's copy of that file judge leaves identically.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable

from audits.verifier import check_canonical_leaf

# The columns a row carries, in order; ``ts_text`` is ``ts`` rendered as YYYY-MM-DDTHH:MM:SS.ffffffZ.
ROW_COLUMNS = ("seq", "leaf", "leaf_hash", "ts_text", "action", "actor_id", "actor_name", "target_type",
               "target_id", "request_id")


@dataclass
class Problem:
    """The first thing wrong in a range: its kind (a stable name), what it means, and its ``seq``."""

    kind: str
    detail: str
    seq: int | None


@dataclass
class RangeResult:
    """What checking consecutive rows found: how many were good, their leaf hashes, a problem."""

    start: int
    count: int = 0
    hashes: list[bytes] = field(default_factory=list)
    problem: Problem | None = None


def columns_match(leaf: dict[str, Any], row: tuple[Any, ...]) -> bool:
    """The filter columns (what the API searches on) say exactly what the leaf says."""
    _, _, _, ts_text, action, actor_id, actor_name, target_type, target_id, request_id = row
    actor = leaf.get("actor") or {}
    target = leaf.get("target") or {}
    return (leaf.get("action") == action and leaf.get("ts") == ts_text
            and (actor.get("id") if actor.get("type") == "user" else None) == actor_id
            and str(actor.get("username") or actor.get("name") or "") == actor_name
            and target.get("type", "") == target_type and str(target.get("id", "")) == target_id
            and (leaf.get("request_id") or "") == request_id)


def check_rows(rows: Iterable[tuple[Any, ...]], start: int, *, stop: int | None = None) -> RangeResult:
    """Check rows that should carry ``seq`` start, start+1, ... (up to ``stop``, exclusive).

    Stops at the first problem; ``count`` and ``hashes`` then cover the good rows before it.
    A ``seq`` above the expected one is a gap (rows deleted); below it, a repeat or disorder.
    """
    result = RangeResult(start=start)
    hashes = result.hashes
    sha256 = hashlib.sha256
    expected = start
    for row in rows:
        seq, leaf, stored = row[0], row[1], row[2]
        if stop is not None and seq >= stop:
            break
        if seq != expected:
            if seq > expected:
                result.problem = Problem("gap", f"expected seq {expected}, found {seq}: events are missing "
                                         "(deleted rows)", expected)
            else:
                result.problem = Problem("duplicate_seq", f"seq {seq} appears twice or out of order", expected)
            break
        if not isinstance(leaf, bytes):
            leaf = bytes(leaf)
        try:
            parsed = check_canonical_leaf(leaf)
        except ValueError as exc:
            result.problem = Problem("leaf_not_canonical", f"leaf {seq} is not canonical JSON: {exc}", seq)
            break
        if not isinstance(parsed, dict) or parsed.get("seq") != seq:
            said = parsed.get("seq") if isinstance(parsed, dict) else "?"
            result.problem = Problem("leaf_seq_mismatch", f"the leaf stored at seq {seq} says seq {said}: rows "
                                     "were moved, inserted or swapped", seq)
            break
        computed = sha256(b"\x00" + leaf).digest()
        if computed != bytes(stored):
            result.problem = Problem("hash_mismatch", f"the leaf hash stored for seq {seq} does not match its "
                                     "bytes: the event or its hash was changed", seq)
            break
        if not columns_match(parsed, row):
            result.problem = Problem("columns_mismatch", f"the filter columns of seq {seq} differ from its leaf: "
                                     "they were edited", seq)
            break
        hashes.append(computed)
        expected += 1
    result.count = expected - start
    return result
