"""RFC 6962 / RFC 9162 Merkle tree hashing, streaming roots, and proofs.

Why this module looks the way it does:

* The hashing is the Certificate Transparency one (RFC 9162 section 2.1.1) so that any third-party
  transparency-log tooling, and the single-file ``audits/verifier.py``, compute the same roots:
  ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``, the tree
  over n > 1 leaves splits at the largest power of two smaller than n, and the empty tree's root
  is ``SHA-256("")``. The distinct 0x00/0x01 prefixes stop a leaf from being passed off as an
  interior node (second-preimage attacks).
* ``TreeBuilder`` keeps only the roots of the perfect subtrees covering ``[0, size)`` (a "compact
  range", at most one per bit of ``size``), so a verifier can stream millions of leaves in
  O(log n) memory and ask the root at any intermediate size for O(log n) hashes.
* Proof *generation* takes a ``subtree_root(start, end)`` callback instead of a leaf list, because
  the service holds its leaves in a database: the callback lets it fetch or cache subtree roots
  however it likes. ``inclusion_ranges``/``consistency_ranges`` expose the ranges needed up front
  so they can be fetched in one batch. Every range is either a perfect, aligned subtree
  (``end - start`` a power of two, ``start`` a multiple of it, immutable once the log has grown
  past it, so cacheable forever) or ends at the tree size.
* Proof *verification* follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 literally and is strict:
  wrong hash lengths, too few or too many proof hashes, out-of-range indexes and sizes all make it
  return ``False``. It never raises on hostile *values* (a server may send anything); it raises
  ``ProofError`` only when called with arguments of the wrong Python *type* (e.g. hex strings
  instead of bytes), which is a bug in the caller, not an attack. Silently returning ``False`` for
  that would hide the bug; silently accepting is impossible either way.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "ProofError",
    "TreeBuilder",
    "consistency_proof",
    "consistency_proof_from_list",
    "consistency_ranges",
    "inclusion_proof",
    "inclusion_proof_from_list",
    "inclusion_ranges",
    "leaf_hash",
    "list_subtree_root",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Every hash in the tree is a SHA-256 digest."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string (RFC 9162 section 2.1.1)."""

_sha256 = hashlib.sha256

SubtreeRoot = Callable[[int, int], bytes]
"""``subtree_root(start, end)`` must return MTH(leaves[start:end]) for ``0 <= start < end``."""


class ProofError(ValueError):
    """A proof function was called incorrectly (a caller bug, never a verification outcome)."""


def leaf_hash(data: bytes) -> bytes:
    """Hash of one leaf's exact bytes: SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (n >= 2): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def _require_int(name: str, value: object) -> int:
    # bool is an int subclass; a True/False size is certainly a caller bug.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProofError(f"{name} must be an int, got {type(value).__name__}")
    return value


def _require_bytes(name: str, value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ProofError(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


class TreeBuilder:
    """Streaming Merkle tree: append leaf hashes, ask the root at the current size at any time.

    State is the compact range of ``[0, size)``: the roots of the perfect subtrees whose sizes are
    the set bits of ``size``, largest (leftmost) first. Appending costs one leaf-level store plus,
    on average, one node hash; ``root()`` folds at most ``log2(size)`` hashes and does not change
    the state, so asking the root at every stored checkpoint size while streaming is cheap.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._nodes: list[bytes] = []
        self._size = 0

    @classmethod
    def from_nodes(cls, size: int, nodes: Sequence[bytes]) -> TreeBuilder:
        """Resume from a saved compact range (``size`` and ``nodes`` as returned by a builder).

        Lets the service continue hashing from its last checkpoint instead of from leaf 0.
        """
        size = _require_int("size", size)
        if size < 0:
            raise ProofError("size must be >= 0")
        node_list = [_require_bytes("node", n) for n in nodes]
        if len(node_list) != size.bit_count():
            raise ProofError(f"a compact range of size {size} has {size.bit_count()} nodes, got {len(node_list)}")
        if any(len(n) != HASH_SIZE for n in node_list):
            raise ProofError("compact range nodes must be 32-byte hashes")
        builder = cls()
        builder._nodes = node_list
        builder._size = size
        return builder

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        """The compact range, leftmost (largest) perfect subtree first; persist it to resume."""
        return tuple(self._nodes)

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf by its *leaf hash* (not its data; see ``append_data``)."""
        if len(leaf_hash) != HASH_SIZE:
            raise ProofError("leaf hashes must be 32 bytes")
        nodes = self._nodes
        n = self._size
        h = leaf_hash
        # Each trailing 1 bit of the old size is a perfect subtree that now has a sibling.
        while n & 1:
            h = _sha256(b"\x01" + nodes.pop() + h).digest()
            n >>= 1
        nodes.append(bytes(h))
        self._size += 1

    def append_data(self, data: bytes) -> bytes:
        """Append one leaf by its raw bytes; returns the leaf hash."""
        h = _sha256(b"\x00" + data).digest()
        self.append(h)
        return h

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes; the same as repeated ``append``, with less per-call overhead."""
        nodes = self._nodes
        size = self._size
        pop = nodes.pop
        push = nodes.append
        sha = _sha256
        try:
            for h in leaf_hashes:
                if len(h) != HASH_SIZE:
                    raise ProofError("leaf hashes must be 32 bytes")
                n = size
                while n & 1:
                    h = sha(b"\x01" + pop() + h).digest()
                    n >>= 1
                push(bytes(h))
                size += 1
        finally:
            self._size = size

    def root(self) -> bytes:
        """MTH of the leaves appended so far (``EMPTY_ROOT`` when there are none)."""
        nodes = self._nodes
        if not nodes:
            return EMPTY_ROOT
        h = nodes[-1]
        for left in reversed(nodes[:-1]):
            h = _sha256(b"\x01" + left + h).digest()
        return h

    def copy(self) -> TreeBuilder:
        """An independent builder with the same state (e.g. to explore a hypothetical append)."""
        other = TreeBuilder()
        other._nodes = list(self._nodes)
        other._size = self._size
        return other


def root_from_leaf_hashes(hashes: Sequence[bytes] | Iterable[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes (streamed through ``TreeBuilder``, O(log n) memory)."""
    builder = TreeBuilder()
    builder.extend(hashes)
    return builder.root()


# --------------------------------------------------------------------------- proof generation


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose subtree roots form PATH(index, D[0:size]), in proof order (bottom up).

    Follows RFC 9162 section 2.1.3.1: descend from the root, taking the sibling of the half that
    contains ``index`` at each level; the proof lists them from the leaf upwards.
    """
    index = _require_int("index", index)
    size = _require_int("size", size)
    if size < 1 or not 0 <= index < size:
        raise ProofError(f"no inclusion proof for index {index} in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        mid = start + _split(end - start)
        if index < mid:
            ranges.append((mid, end))
            end = mid
        else:
            ranges.append((start, mid))
            start = mid
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose subtree roots form PROOF(old_size, D[0:new_size]), in proof order.

    Follows SUBPROOF of RFC 9162 section 2.1.4.1. The proof between equal sizes is empty; so is
    the proof from size 0, which RFC 9162 leaves undefined and this module treats as trivially
    consistent (every tree extends the empty tree; see ``verify_consistency``).
    """
    old_size = _require_int("old_size", old_size)
    new_size = _require_int("new_size", new_size)
    if old_size < 0 or new_size < old_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    ranges: list[tuple[int, int]] = []
    start, end, m, whole_old_tree = 0, new_size, old_size, True
    while True:
        n = end - start
        if m == n:
            # The old tree's root is itself a node of the new tree: include it unless the
            # verifier already knows it (it is the whole old tree, i.e. old_root).
            if not whole_old_tree:
                ranges.append((start, end))
            break
        k = _split(n)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            m -= k
            whole_old_tree = False
    ranges.reverse()
    return ranges


def inclusion_proof(index: int, size: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """Inclusion proof (audit path) of leaf ``index`` in the tree of the first ``size`` leaves."""
    return [subtree_root(s, e) for s, e in inclusion_ranges(index, size)]


def consistency_proof(old_size: int, new_size: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """Consistency proof that the tree of ``old_size`` leaves is a prefix of ``new_size``'s."""
    return [subtree_root(s, e) for s, e in consistency_ranges(old_size, new_size)]


def list_subtree_root(leaf_hashes: Sequence[bytes]) -> SubtreeRoot:
    """A ``subtree_root`` callback over an in-memory list of leaf hashes (tests, small logs)."""

    def subtree_root(start: int, end: int) -> bytes:
        if not 0 <= start < end <= len(leaf_hashes):
            raise ProofError(f"range [{start}, {end}) outside a list of {len(leaf_hashes)} leaves")
        return root_from_leaf_hashes(leaf_hashes[start:end])

    return subtree_root


def inclusion_proof_from_list(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Inclusion proof of ``index`` in the tree of all of ``leaf_hashes``."""
    return inclusion_proof(index, len(leaf_hashes), list_subtree_root(leaf_hashes))


def consistency_proof_from_list(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Consistency proof from the first ``old_size`` leaves to all of ``leaf_hashes``."""
    return consistency_proof(old_size, len(leaf_hashes), list_subtree_root(leaf_hashes))


# --------------------------------------------------------------------------- proof verification


def _proof_hashes(proof: object) -> list[bytes] | None:
    """Proof items as bytes, or None if any has the wrong length. Type errors raise ProofError."""
    if isinstance(proof, (bytes, bytearray, str)) or not isinstance(proof, Iterable):
        raise ProofError("proof must be a sequence of bytes objects")
    out = [_require_bytes("proof item", p) for p in proof]
    if any(len(p) != HASH_SIZE for p in out):
        return None
    return out


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """True iff ``proof`` shows the leaf with ``leaf_hash`` is at ``index`` in the tree ``root``.

    RFC 9162 section 2.1.3.2, verbatim, plus strictness: every hash must be 32 bytes, ``index``
    must be in ``[0, size)``, and the proof must be exactly as long as the path (extra or missing
    hashes fail: the final check that ``sn`` reached 0 catches both).
    """
    leaf_hash = _require_bytes("leaf_hash", leaf_hash)
    root = _require_bytes("root", root)
    index = _require_int("index", index)
    size = _require_int("size", size)
    path = _proof_hashes(proof)
    if path is None or len(leaf_hash) != HASH_SIZE or len(root) != HASH_SIZE:
        return False
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash
    for p in path:
        if sn == 0:
            return False  # more proof than path
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """True iff ``proof`` shows the tree ``old_root`` (``old_size`` leaves) is a prefix of ``new_root``.

    RFC 9162 section 2.1.4.2 for ``0 < old_size < new_size``. The edge cases the RFC leaves to the
    caller are decided here, strictly:

    * ``old_size == new_size``: consistent iff the proof is empty and the roots are equal.
    * ``old_size == 0``: consistent iff the proof is empty and ``old_root`` is ``EMPTY_ROOT``
      (every tree extends the empty tree; ``new_root`` is only length-checked).
    * ``old_size > new_size``, negative sizes, wrong hash lengths: not consistent.
    """
    old_root = _require_bytes("old_root", old_root)
    new_root = _require_bytes("new_root", new_root)
    old_size = _require_int("old_size", old_size)
    new_size = _require_int("new_size", new_size)
    path = _proof_hashes(proof)
    if path is None or len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        return False
    if old_size < 0 or new_size < old_size:
        return False
    if old_size == 0:
        return not path and old_root == EMPTY_ROOT
    if old_size == new_size:
        return not path and old_root == new_root
    # Step 1: a proof between different non-empty sizes is never empty.
    if not path:
        return False
    # Step 2: if the old tree is perfect, its root is the first node on the path.
    if old_size & (old_size - 1) == 0:
        path = [old_root, *path]
    # Steps 3-4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    # Step 7.
    return sn == 0 and fr == old_root and sr == new_root
