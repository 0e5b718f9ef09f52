"""Worker-process side of parallel log verification (PostgreSQL): no Django, one connection each.

Checking a leaf (canonical form, hash, columns) costs several times what reading it does, and
each leaf checks independently, so ``audits.verification`` hands ``seq`` ranges to a pool of
processes started with ``spawn`` (never ``fork``: a forked child would share the parent's
database socket). This module is what those processes import: psycopg and the pure checks of
``audits.core.logcheck``, nothing that needs ``django.setup()``, so a worker starts in a fraction
of a second. The parent keeps the one job that needs order: feeding the leaf hashes to the tree.
"""
from __future__ import annotations

from typing import Any

from audits.core.logcheck import Problem, check_rows

# The columns of ``audits.core.logcheck.ROW_COLUMNS``, with ``ts`` rendered by the server in the
# leaf's own layout (RFC 3339, UTC, microseconds): a string comparison instead of a datetime
# conversion per row, and the formatting runs in the server's process, beside the checks.
PG_SELECT = ("SELECT seq, leaf, leaf_hash, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
             "action, actor_id, actor_name, target_type, target_id, request_id FROM audits_auditevent ")

_CONNECTION: list[Any] = []


def init_worker(conninfo: str) -> None:
    """Open this process's connection once; every range it checks reuses it."""
    import psycopg

    _CONNECTION.append(psycopg.connect(conninfo, autocommit=True))


def check_range(bounds: tuple[int, int]) -> tuple[int, int, bytes, Problem | None]:
    """Check the events with ``start <= seq < end``; return (start, good rows, their hashes, problem).

    Hashes come back concatenated (32 bytes each, in ``seq`` order): 32 bytes per leaf is all the
    parent needs, and one ``bytes`` pickles far faster than a list of them.
    """
    start, end = bounds
    with _CONNECTION[0].cursor(binary=True) as cur:
        cur.execute(PG_SELECT + "WHERE seq >= %s AND seq < %s ORDER BY seq", [start, end])
        result = check_rows(cur, start)
    return start, result.count, b"".join(result.hashes), result.problem
