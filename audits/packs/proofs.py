"""Inclusion proofs for many leaves against one tree size, computed in a single streaming pass.

Asking ``audits.core.merkle.inclusion_proof`` once per event would walk the tree 100,000 times
for a large period. Instead: every range a proof needs is either a perfect, aligned subtree or a
suffix ``[b, size)`` where ``b`` is a boundary of the tree's compact range. One pass over the
leaf hashes from a starting compact range (a stored checkpoint at or below the first leaf of
interest) sees every perfect subtree complete exactly once; the ones some proof needs are kept.
Perfect subtrees wholly below the starting size are nodes of the starting compact range itself
(the left siblings of any later leaf's path are a prefix of its compact range, and the starting
size's range shares that prefix). Suffixes are folded from the final compact range. Memory is
the set of needed ranges (about two per leaf of interest), never the whole log.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from audits.core.merkle import TreeBuilder

_sha256 = hashlib.sha256


def _ranges(index: int, size: int) -> list[tuple[int, int]]:
    """``audits.core.merkle.inclusion_ranges`` without its argument checks (called per event:
    the indexes here come from the log itself); the tests hold the two equal."""
    out = []
    start, end = 0, size
    while end - start > 1:
        mid = start + (1 << ((end - start - 1).bit_length() - 1))
        if index < mid:
            out.append((mid, end))
            end = mid
        else:
            out.append((start, mid))
            start = mid
    out.reverse()
    return out


def _boundaries(size: int) -> list[int]:
    """Starts of the perfect subtrees of the compact range of ``size``, largest first, then ``size``."""
    out = [0]
    for bit in range(size.bit_length() - 1, -1, -1):
        if size >> bit & 1:
            out.append(out[-1] + (1 << bit))
    return out


class ProofError(ValueError):
    """The leaves streamed do not make the tree the caller expected."""


class ProofSet:
    """Subtree roots that the inclusion proofs of ``targets`` in the tree of ``size`` leaves need."""

    def __init__(self, targets: Iterable[int], size: int) -> None:
        self.size = size
        needed: set[tuple[int, int]] = set()
        for t in targets:
            if not 0 <= t < size:
                raise ProofError(f"leaf {t} is not in a tree of {size} leaves")
            needed.update(_ranges(t, size))
        self._needed = needed
        self._roots: dict[tuple[int, int], bytes] = {}
        self.root: bytes | None = None

    def compute(self, start_size: int, start_nodes: Sequence[bytes], leaf_hashes: Iterable[bytes]) -> bytes:
        """Stream the leaf hashes of ``[start_size, size)`` from a compact range at ``start_size``.

        Returns the root of the tree of ``size`` leaves (compare it with the signed checkpoint).
        """
        needed, roots = self._needed, self._roots
        builder = TreeBuilder.from_nodes(start_size, list(start_nodes))
        bounds = _boundaries(start_size)
        for i, node in enumerate(builder.nodes):
            if (bounds[i], bounds[i + 1]) in needed:
                roots[(bounds[i], bounds[i + 1])] = node
        stack = list(builder.nodes)
        pos = start_size
        sha = _sha256
        for h in leaf_hashes:
            end = pos + 1
            if (pos, end) in needed:
                roots[(pos, end)] = h
            n, width = pos, 1
            while n & 1:
                h = sha(b"\x01" + stack.pop() + h).digest()
                width <<= 1
                n >>= 1
                if (end - width, end) in needed:
                    roots[(end - width, end)] = h
            stack.append(h)
            pos = end
        if pos != self.size:
            raise ProofError(f"expected leaves up to {self.size}, the log gave {pos}")
        bounds = _boundaries(self.size)
        acc = b""
        for i in range(len(stack) - 1, -1, -1):
            acc = stack[i] if not acc else sha(b"\x01" + stack[i] + acc).digest()
            if (bounds[i], self.size) in needed:
                roots[(bounds[i], self.size)] = acc
        self.root = acc if stack else hashlib.sha256(b"").digest()
        missing = needed - roots.keys()
        if missing:
            raise ProofError(f"{len(missing)} subtree(s) not found, e.g. {sorted(missing)[0]}")
        return self.root

    def proof(self, index: int) -> list[bytes]:
        """The inclusion proof of ``index`` (RFC 9162 order, leaf's sibling first)."""
        roots = self._roots
        return [roots[r] for r in _ranges(index, self.size)]
