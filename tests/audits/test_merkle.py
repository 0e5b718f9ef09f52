"""RFC 6962 / 9162 Merkle tree: published vectors, a naive reference, and forged-proof rejection.

Why so adversarial: a proof verifier that accepts one forged proof makes the whole log's
tamper-evidence worthless (immudb GHSA-672p-m5jq-mrh8 accepted forged proofs). So every valid
proof generated here is mutated in every way we can think of, and each mutation must be rejected,
while an independent, recursive reference verifier written from the RFC's *definitions* of PATH
and SUBPROOF must agree with the optimized one on every input.
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import pytest

from audits.core import merkle
from audits.core.merkle import (
    EMPTY_ROOT,
    ProofError,
    TreeBuilder,
    consistency_proof,
    consistency_proof_from_list,
    consistency_ranges,
    inclusion_proof,
    inclusion_proof_from_list,
    inclusion_ranges,
    leaf_hash,
    list_subtree_root,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# --------------------------------------------------------------------------- published vectors
# Certificate Transparency / transparency-dev reference tree: leaf inputs, roots of the first
# 1..8 leaves, all complete-subtree node hashes, and published inclusion/consistency proofs.
CT_LEAVES = [bytes.fromhex(h) for h in [
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
]]
CT_ROOTS = [bytes.fromhex(h) for h in [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]]
CT_NODES = [[bytes.fromhex(h) for h in level] for level in [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]]
N = CT_NODES
CT_INCLUSION = [  # (index, size, proof)
    (0, 1, []),
    (0, 8, [N[0][1], N[1][1], N[2][1]]),
    (5, 8, [N[0][4], N[1][3], N[2][0]]),
    (2, 3, [N[1][0]]),
    (1, 5, [N[0][0], N[1][1], N[0][4]]),
]
CT_CONSISTENCY = [  # (old, new, proof)
    (1, 1, []),
    (1, 8, [N[0][1], N[1][1], N[2][1]]),
    (6, 8, [N[1][2], N[1][3], N[2][0]]),
    (2, 5, [N[1][1], N[0][4]]),
]
CT_LEAF_HASHES = [leaf_hash(d) for d in CT_LEAVES]


# --------------------------------------------------------------------------- naive reference
# Written from the RFC 9162 section 2.1 definitions, recursively, sharing no code with merkle.py.


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    """MTH over raw leaf *data*."""
    if len(d) == 0:
        return _h(b"")
    if len(d) == 1:
        return _h(b"\x00" + d[0])
    k = _k(len(d))
    return _h(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


def _ref_path_root(leaf: bytes, m: int, n: int, proof: list[bytes]) -> bytes | None:
    if n == 1:
        return leaf if not proof else None
    if not proof:
        return None
    k = _k(n)
    *inner, last = proof
    if m < k:
        sub = _ref_path_root(leaf, m, k, inner)
        return None if sub is None else _h(b"\x01" + sub + last)
    sub = _ref_path_root(leaf, m - k, n - k, inner)
    return None if sub is None else _h(b"\x01" + last + sub)


def ref_verify_inclusion(leaf: bytes, m: int, n: int, proof: list[bytes], root: bytes) -> bool:
    """Recompute the root by walking PATH's definition; exact lengths everywhere."""
    if not 0 <= m < n or len(leaf) != 32 or len(root) != 32 or any(len(p) != 32 for p in proof):
        return False
    return _ref_path_root(leaf, m, n, list(proof)) == root


def _ref_sub_roots(m: int, n: int, proof: list[bytes], b: bool, old_root: bytes) -> tuple[bytes, bytes] | None:
    """(old root, new root) implied by SUBPROOF(m, D[0:n], b) == proof, or None if shapes differ."""
    if m == n:
        if b:
            return (old_root, old_root) if not proof else None
        return (proof[0], proof[0]) if len(proof) == 1 else None
    if not proof:
        return None
    k = _k(n)
    *inner, last = proof
    if m <= k:
        sub = _ref_sub_roots(m, k, inner, b, old_root)
        return None if sub is None else (sub[0], _h(b"\x01" + sub[1] + last))
    sub = _ref_sub_roots(m - k, n - k, inner, False, old_root)
    return None if sub is None else (_h(b"\x01" + last + sub[0]), _h(b"\x01" + last + sub[1]))


def ref_verify_consistency(m: int, n: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> bool:
    if not 0 < m <= n or len(old_root) != 32 or len(new_root) != 32 or any(len(p) != 32 for p in proof):
        return False
    got = _ref_sub_roots(m, n, list(proof), True, old_root)
    return got == (old_root, new_root)


def make_leaves(n: int, salt: str = "") -> list[bytes]:
    """Distinct leaf data (distinct leaves: identical siblings would make index swaps legitimate)."""
    return [f"leaf {salt}{i}".encode() for i in range(n)]


# --------------------------------------------------------------------------- hashing and roots


def test_leaf_and_node_hash_domain_separation() -> None:
    assert leaf_hash(b"") == bytes.fromhex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert node_hash(b"a" * 32, b"b" * 32) == _h(b"\x01" + b"a" * 32 + b"b" * 32)
    assert leaf_hash(b"a" * 64) != node_hash(b"a" * 32, b"a" * 32)


def test_empty_tree_root() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert TreeBuilder().root() == EMPTY_ROOT
    assert ref_mth([]) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_published_roots_of_the_reference_tree(size: int) -> None:
    assert root_from_leaf_hashes(CT_LEAF_HASHES[:size]) == CT_ROOTS[size - 1], f"size {size}"
    assert ref_mth(CT_LEAVES[:size]) == CT_ROOTS[size - 1], f"reference disagrees at size {size}"


def test_full_reference_tree_root_literal() -> None:
    assert root_from_leaf_hashes(CT_LEAF_HASHES).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def test_published_node_hashes() -> None:
    subtree = list_subtree_root(CT_LEAF_HASHES)
    for level, nodes in enumerate(CT_NODES):
        width = 1 << level
        for i, expected in enumerate(nodes):
            assert subtree(i * width, (i + 1) * width) == expected, f"level {level} node {i}"


@pytest.mark.parametrize("index,size,proof", CT_INCLUSION)
def test_published_inclusion_proofs(index: int, size: int, proof: list[bytes]) -> None:
    assert inclusion_proof_from_list(index, CT_LEAF_HASHES[:size]) == proof
    assert verify_inclusion(CT_LEAF_HASHES[index], index, size, proof, CT_ROOTS[size - 1])


@pytest.mark.parametrize("old,new,proof", CT_CONSISTENCY)
def test_published_consistency_proofs(old: int, new: int, proof: list[bytes]) -> None:
    assert consistency_proof_from_list(old, CT_LEAF_HASHES[:new]) == proof
    assert verify_consistency(old, new, CT_ROOTS[old - 1], CT_ROOTS[new - 1], proof)


def test_roots_match_reference_for_many_sizes() -> None:
    data = make_leaves(300)
    hashes = [leaf_hash(d) for d in data]
    for n in list(range(0, 80)) + [127, 128, 129, 255, 256, 257, 300]:
        assert root_from_leaf_hashes(hashes[:n]) == ref_mth(data[:n]), f"size {n}"


# --------------------------------------------------------------------------- streaming builder


def test_builder_matches_batch_root_at_every_size() -> None:
    hashes = [leaf_hash(d) for d in make_leaves(600)]
    builder = TreeBuilder()
    for n, h in enumerate(hashes, start=1):
        builder.append(h)
        assert builder.size == n
        assert len(builder.nodes) == bin(n).count("1"), f"compact range at size {n}"
        assert builder.root() == root_from_leaf_hashes(hashes[:n]), f"size {n}"
        assert builder.root() == builder.root(), "root() must not change state"


def test_builder_extend_append_data_copy_and_resume() -> None:
    data = make_leaves(100)
    hashes = [leaf_hash(d) for d in data]
    a = TreeBuilder()
    a.extend(hashes[:37])
    b = TreeBuilder()
    for d in data[:37]:
        assert b.append_data(d) == leaf_hash(d)
    assert a.root() == b.root() and a.nodes == b.nodes
    c = a.copy()
    c.extend(hashes[37:])
    assert a.size == 37, "copy must be independent"
    resumed = TreeBuilder.from_nodes(a.size, list(a.nodes))
    resumed.extend(hashes[37:])
    assert resumed.root() == c.root() == root_from_leaf_hashes(hashes)


def test_builder_rejects_bad_input() -> None:
    b = TreeBuilder()
    for bad in (b"", b"x" * 31, b"x" * 33):
        with pytest.raises(ProofError):
            b.append(bad)
        with pytest.raises(ProofError):
            b.extend([bad])
    assert b.size == 0
    with pytest.raises(ProofError):
        TreeBuilder.from_nodes(3, [b"x" * 32])  # size 3 needs two nodes
    with pytest.raises(ProofError):
        TreeBuilder.from_nodes(-1, [])
    with pytest.raises(ProofError):
        TreeBuilder.from_nodes(1, [b"x" * 31])


# --------------------------------------------------------------------------- generation


def test_ranges_are_perfect_subtrees_or_end_at_size() -> None:
    for size in range(1, 70):
        for index in range(size):
            for start, end in inclusion_ranges(index, size):
                width = end - start
                perfect = width & (width - 1) == 0 and start % width == 0
                assert perfect or end == size, (index, size, start, end)
        for old in range(1, size + 1):
            for start, end in consistency_ranges(old, size):
                width = end - start
                perfect = width & (width - 1) == 0 and start % width == 0
                assert perfect or end == size, (old, size, start, end)


def test_inclusion_proofs_match_reference_and_verify_for_all_sizes_and_indexes() -> None:
    data = make_leaves(70)
    hashes = [leaf_hash(d) for d in data]
    for size in range(1, 71):
        root = ref_mth(data[:size])
        for index in range(size):
            proof = inclusion_proof_from_list(index, hashes[:size])
            assert proof == ref_path(index, data[:size]), f"PATH({index}, {size})"
            assert verify_inclusion(hashes[index], index, size, proof, root), f"verify({index}, {size})"


def test_consistency_proofs_match_reference_and_verify_for_all_pairs() -> None:
    data = make_leaves(40)
    hashes = [leaf_hash(d) for d in data]
    roots = [ref_mth(data[:n]) for n in range(41)]
    for new in range(1, 41):
        for old in range(1, new + 1):
            proof = consistency_proof_from_list(old, hashes[:new])
            assert proof == ref_proof(old, data[:new]), f"PROOF({old}, {new})"
            assert verify_consistency(old, new, roots[old], roots[new], proof), f"verify({old}, {new})"
            assert ref_verify_consistency(old, new, roots[old], roots[new], proof)


def test_generation_uses_the_callback() -> None:
    hashes = [leaf_hash(d) for d in make_leaves(21)]
    calls: list[tuple[int, int]] = []
    inner = list_subtree_root(hashes)

    def subtree_root(start: int, end: int) -> bytes:
        calls.append((start, end))
        return inner(start, end)

    proof = inclusion_proof(13, 21, subtree_root)
    assert calls == inclusion_ranges(13, 21)
    assert proof == [inner(s, e) for s, e in calls]
    calls.clear()
    consistency_proof(6, 21, subtree_root)
    assert calls == consistency_ranges(6, 21)


@pytest.mark.parametrize("index,size", [(0, 0), (-1, 5), (5, 5), (6, 5), (0, -1)])
def test_inclusion_generation_rejects_impossible_requests(index: int, size: int) -> None:
    with pytest.raises(ProofError):
        inclusion_ranges(index, size)


@pytest.mark.parametrize("old,new", [(-1, 3), (4, 3), (1, -1)])
def test_consistency_generation_rejects_impossible_requests(old: int, new: int) -> None:
    with pytest.raises(ProofError):
        consistency_ranges(old, new)


def test_consistency_from_zero_and_equal_sizes_are_empty() -> None:
    assert consistency_ranges(0, 0) == []
    assert consistency_ranges(0, 9) == []
    assert consistency_ranges(9, 9) == []


def test_programmer_errors_raise_proof_error() -> None:
    h = b"x" * 32
    with pytest.raises(ProofError):
        verify_inclusion(h.hex(), 0, 1, [], h)  # type: ignore[arg-type]
    with pytest.raises(ProofError):
        verify_inclusion(h, 0, 1, [h.hex()], h)  # type: ignore[list-item]
    with pytest.raises(ProofError):
        verify_inclusion(h, 0, 1, h, h)  # a bytes object is not a list of hashes
    with pytest.raises(ProofError):
        verify_inclusion(h, True, 2, [h], h)  # type: ignore[arg-type]
    with pytest.raises(ProofError):
        verify_consistency(1, 2, h, h, "ab")  # type: ignore[arg-type]
    with pytest.raises(ProofError):
        verify_consistency(1.0, 2, h, h, [h])  # type: ignore[arg-type]
    with pytest.raises(ProofError):
        inclusion_ranges("1", 2)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- adversarial inclusion


def _flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _bits(rng: random.Random) -> list[int]:
    """Bits to flip in a 32-byte hash: both ends of every byte edge case plus a random sample."""
    return sorted({0, 1, 7, 8, 127, 128, 248, 255, *rng.sample(range(256), 8)})


RNG_SEED = 6962


def _inclusion_cases() -> list[tuple[int, int]]:
    cases = {(0, 1), (0, 2), (1, 2), (2, 3), (0, 7), (6, 7), (3, 8), (7, 8), (8, 9), (4, 13), (12, 13), (31, 33), (32, 33)}
    rng = random.Random(RNG_SEED)
    for _ in range(12):
        size = rng.randrange(2, 70)
        cases.add((rng.randrange(size), size))
    return sorted(cases)


def _inclusion_mutations(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes, rng: random.Random):
    """Yield (label, leaf, index, size, proof, root) for forged variants of a valid proof."""
    other = _h(b"some other hash")
    for i, p in enumerate(proof):
        for bit in _bits(rng):
            yield f"flip bit {bit} of proof[{i}]", leaf, index, size, proof[:i] + [_flip(p, bit)] + proof[i + 1:], root
        yield f"proof[{i}] truncated to 31 bytes", leaf, index, size, proof[:i] + [p[:31]] + proof[i + 1:], root
        yield f"proof[{i}] extended to 33 bytes", leaf, index, size, proof[:i] + [p + b"\x00"] + proof[i + 1:], root
        yield f"proof[{i}] replaced", leaf, index, size, proof[:i] + [other] + proof[i + 1:], root
        yield f"proof[{i}] duplicated", leaf, index, size, proof[: i + 1] + [p] + proof[i + 1:], root
    for bit in _bits(rng):
        yield f"flip bit {bit} of leaf", _flip(leaf, bit), index, size, proof, root
        yield f"flip bit {bit} of root", leaf, index, size, proof, _flip(root, bit)
    yield "leaf 31 bytes", leaf[:31], index, size, proof, root
    yield "leaf 33 bytes", leaf + b"\x00", index, size, proof, root
    yield "root 31 bytes", leaf, index, size, proof, root[:31]
    yield "root 33 bytes", leaf, index, size, proof, root + b"\x00"
    if root != leaf:  # in a one-leaf tree the root *is* the leaf hash
        yield "root is the leaf", leaf, index, size, proof, leaf
    yield "empty root", leaf, index, size, proof, EMPTY_ROOT
    for new_index in {index - 1, index + 1, index ^ 1, size, size + 1, -1, 2 * index + 1}:
        if new_index != index:
            yield f"index {new_index}", leaf, new_index, size, proof, root
    if proof:
        yield "proof emptied", leaf, index, size, [], root
        yield "drop last", leaf, index, size, proof[:-1], root
        yield "drop first", leaf, index, size, proof[1:], root
        if len(proof) > 1:
            yield "reversed", leaf, index, size, proof[::-1], root
    yield "append extra", leaf, index, size, proof + [other], root
    yield "append root", leaf, index, size, proof + [root], root
    yield "append duplicate of last", leaf, index, size, proof + proof[-1:] if proof else [leaf], root
    yield "prepend extra", leaf, index, size, [other] + proof, root
    yield "prepend leaf", leaf, index, size, [leaf] + proof, root
    yield "size 0", leaf, index, 0, proof, root
    yield "negative size", leaf, index, -size, proof, root


@pytest.mark.parametrize("index,size", _inclusion_cases())
def test_forged_inclusion_proofs_are_rejected(index: int, size: int) -> None:
    rng = random.Random(f"{RNG_SEED}/{index}/{size}")
    hashes = [leaf_hash(d) for d in make_leaves(size)]
    root = root_from_leaf_hashes(hashes)
    proof = inclusion_proof_from_list(index, hashes)
    assert verify_inclusion(hashes[index], index, size, proof, root)
    count = 0
    for label, m_leaf, m_index, m_size, m_proof, m_root in _inclusion_mutations(hashes[index], index, size, proof, root, rng):
        count += 1
        got = verify_inclusion(m_leaf, m_index, m_size, m_proof, m_root)
        assert not got, f"forged inclusion proof accepted ({label}) for index {index}, size {size}"
        assert got == ref_verify_inclusion(m_leaf, m_index, m_size, m_proof, m_root), label
    assert count > 20
    # The other leaves' hashes are not at this index.
    for j in range(size):
        if j != index:
            assert not verify_inclusion(hashes[j], index, size, proof, root), f"leaf {j} accepted at index {index}"


@pytest.mark.parametrize("index,size", _inclusion_cases())
def test_inclusion_with_wrong_size_and_that_size_s_root_is_rejected(index: int, size: int) -> None:
    hashes = [leaf_hash(d) for d in make_leaves(2 * size + 2)]
    proof = inclusion_proof_from_list(index, hashes[:size])
    for wrong in {size - 1, size + 1, 2 * size, size + 2}:
        if wrong <= 0:
            continue
        root = root_from_leaf_hashes(hashes[:wrong])
        assert not verify_inclusion(hashes[index], index, wrong, proof, root), f"size {size} proof accepted as size {wrong}"
        # With the *original* root the RFC algorithm only sees the path's shape, which some other
        # sizes share (e.g. index 0 in sizes 3 and 4); that cannot forge anything, because a
        # signed checkpoint binds the root to its real size. It must still agree with the
        # definition-based reference.
        orig = root_from_leaf_hashes(hashes[:size])
        assert verify_inclusion(hashes[index], index, wrong, proof, orig) == ref_verify_inclusion(
            hashes[index], index, wrong, proof, orig
        ), f"size {size} -> {wrong}"


# --------------------------------------------------------------------------- adversarial consistency


def _consistency_cases() -> list[tuple[int, int]]:
    cases = {(1, 2), (1, 3), (2, 3), (1, 8), (2, 5), (3, 7), (4, 8), (4, 9), (6, 8), (7, 8), (5, 13), (8, 16), (15, 33), (16, 33), (32, 33)}
    rng = random.Random(RNG_SEED + 1)
    for _ in range(12):
        new = rng.randrange(2, 70)
        cases.add((rng.randrange(1, new), new))
    return sorted(cases)


@pytest.mark.parametrize("old,new", _consistency_cases())
def test_forged_consistency_proofs_are_rejected(old: int, new: int) -> None:
    rng = random.Random(f"{RNG_SEED}/c/{old}/{new}")
    hashes = [leaf_hash(d) for d in make_leaves(2 * new + 2)]
    roots = {n: root_from_leaf_hashes(hashes[:n]) for n in range(0, 2 * new + 3)}
    proof = consistency_proof_from_list(old, hashes[:new])
    o, n = roots[old], roots[new]
    assert verify_consistency(old, new, o, n, proof)
    other = _h(b"another hash")

    def mutations():
        for i, p in enumerate(proof):
            for bit in _bits(rng):
                yield f"flip bit {bit} of proof[{i}]", old, new, o, n, proof[:i] + [_flip(p, bit)] + proof[i + 1:]
            yield f"proof[{i}] 31 bytes", old, new, o, n, proof[:i] + [p[:31]] + proof[i + 1:]
            yield f"proof[{i}] 33 bytes", old, new, o, n, proof[:i] + [p + b"\x00"] + proof[i + 1:]
            yield f"proof[{i}] replaced", old, new, o, n, proof[:i] + [other] + proof[i + 1:]
            yield f"proof[{i}] duplicated", old, new, o, n, proof[: i + 1] + [p] + proof[i + 1:]
        for bit in _bits(rng):
            yield f"flip bit {bit} of old root", old, new, _flip(o, bit), n, proof
            yield f"flip bit {bit} of new root", old, new, o, _flip(n, bit), proof
        yield "old root 31 bytes", old, new, o[:31], n, proof
        yield "new root 33 bytes", old, new, o, n + b"\x00", proof
        yield "roots swapped", old, new, n, o, proof
        yield "sizes swapped", new, old, o, n, proof
        yield "sizes and roots swapped", new, old, n, o, proof
        yield "old > new", new + 1, new, o, n, proof
        yield "empty proof", old, new, o, n, []
        yield "drop last", old, new, o, n, proof[:-1]
        yield "drop first", old, new, o, n, proof[1:]
        yield "append extra", old, new, o, n, proof + [other]
        yield "append new root", old, new, o, n, proof + [n]
        yield "append duplicate", old, new, o, n, proof + proof[-1:]
        yield "prepend extra", old, new, o, n, [other] + proof
        yield "prepend old root", old, new, o, n, [o] + proof
        yield "old size 0", 0, new, o, n, proof
        yield "negative old size", -old, new, o, n, proof
        # Wrong sizes, each with the genuine root of that size: the claim is false.
        for m in {old - 1, old + 1, 2 * old}:
            if 0 < m < new and m != old:
                yield f"old size {m}", m, new, roots[m], n, proof
        for m in {new - 1, new + 1, 2 * new}:
            if m > old and m != new:
                yield f"new size {m}", old, m, o, roots[m], proof
        # A fork: the same old tree, a different new tree of the same size.
        forked = hashes[:old] + [leaf_hash(b"forged " + bytes([i])) for i in range(new - old)]
        yield "forked new tree", old, new, o, root_from_leaf_hashes(forked), proof
        yield "forked tree's own proof against the real new root", old, new, o, n, consistency_proof_from_list(old, forked)

    count = 0
    for label, m_old, m_new, m_o, m_n, m_proof in mutations():
        count += 1
        got = verify_consistency(m_old, m_new, m_o, m_n, m_proof)
        assert not got, f"forged consistency proof accepted ({label}) for {old} -> {new}"
        if m_old > 0:
            assert got == ref_verify_consistency(m_old, m_new, m_o, m_n, m_proof), label
    assert count > 20


def test_consistency_edge_cases() -> None:
    hashes = [leaf_hash(d) for d in make_leaves(8)]
    r5 = root_from_leaf_hashes(hashes[:5])
    r8 = root_from_leaf_hashes(hashes)
    # Equal sizes: empty proof and equal roots only.
    assert verify_consistency(5, 5, r5, r5, [])
    assert not verify_consistency(5, 5, r5, r8, [])
    assert not verify_consistency(5, 5, r5, r5, [r5])
    # From the empty tree: empty proof and the empty root only.
    assert verify_consistency(0, 8, EMPTY_ROOT, r8, [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 8, r5, r8, [])
    assert not verify_consistency(0, 8, EMPTY_ROOT, r8, [r8])
    assert not verify_consistency(0, 8, EMPTY_ROOT, r8[:31], [])
    # Backwards and negative.
    assert not verify_consistency(8, 5, r8, r5, consistency_proof_from_list(5, hashes))
    assert not verify_consistency(-1, 5, r5, r5, [])
    assert not verify_consistency(-5, -5, r5, r5, [])


def test_inclusion_edge_cases() -> None:
    h = leaf_hash(b"only")
    assert verify_inclusion(h, 0, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [h], h)
    assert not verify_inclusion(h, 1, 1, [], h)
    assert not verify_inclusion(h, 0, 0, [], h)
    assert not verify_inclusion(h, -1, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [], EMPTY_ROOT)
    # Domain separation: the bytes of an interior node, presented as leaf *data*, hash to
    # something else, so a subtree cannot be passed off as one leaf of a smaller tree.
    hashes = [leaf_hash(d) for d in make_leaves(4)]
    root = root_from_leaf_hashes(hashes)
    as_leaf = leaf_hash(hashes[0] + hashes[1])
    assert as_leaf != node_hash(hashes[0], hashes[1])
    assert not verify_inclusion(as_leaf, 0, 2, [node_hash(hashes[2], hashes[3])], root)


def test_module_exports() -> None:
    for name in merkle.__all__:
        assert hasattr(merkle, name), name


def test_documented_proof_examples_verify() -> None:
    """The JSON proof examples in docs/audit-log.md must stay correct."""
    import json
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "audit-log.md").read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", doc, flags=re.S) if '"proof"' in b]
    kinds = set()
    for block in blocks:
        proof = [bytes.fromhex(p) for p in block["proof"]]
        if "index" in block:
            kinds.add("inclusion")
            root = bytes.fromhex(block["root"])
            assert root == CT_ROOTS[block["size"] - 1]
            assert verify_inclusion(bytes.fromhex(block["leaf_hash"]), block["index"], block["size"], proof, root)
            assert bytes.fromhex(block["leaf_hash"]) == CT_LEAF_HASHES[block["index"]]
        else:
            kinds.add("consistency")
            old_root, new_root = bytes.fromhex(block["old_root"]), bytes.fromhex(block["new_root"])
            assert (old_root, new_root) == (CT_ROOTS[block["old"] - 1], CT_ROOTS[block["new"] - 1])
            assert verify_consistency(block["old"], block["new"], old_root, new_root, proof)
    assert kinds == {"inclusion", "consistency"}
    for size, root in enumerate(CT_ROOTS, start=1):
        assert f"| {size} | `{root.hex()}` |" in doc
