"""Properties of `mltrail.ledger.merkle`: proofs verify for every size and index, any
flipped bit breaks them, and proofs served from stored nodes equal proofs from the leaves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.errors import VerificationError
from mltrail.ledger.merkle import (
    CompactRange,
    NodeId,
    consistency_proof,
    consistency_ranges,
    inclusion_proof,
    inclusion_ranges,
    leaf_hash,
    range_nodes,
    root_hash,
    subtree_levels,
    subtree_range_hash,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 300

sizes = st.integers(min_value=1, max_value=MAX_SIZE)
salts = st.binary(max_size=4)  # varies the leaves without generating 32-byte strings


def _leaves(size: int, salt: bytes) -> list[bytes]:
    """Distinct leaf hashes; a tree of size n is always the prefix of a bigger one."""
    return [leaf_hash(salt + b"/%d" % i) for i in range(size)]


def _node_store(leaves: list[bytes]) -> dict[NodeId, bytes]:
    edge = CompactRange()
    return {(lvl, idx): h for leaf in leaves for lvl, idx, h in edge.append(leaf)}


def _served(store: dict[NodeId, bytes], ranges: list[tuple[int, int]]) -> list[bytes]:
    """A proof as the SQL-backed log serves it: O(log n) node lookups per hash."""
    return [subtree_range_hash([store[n] for n in range_nodes(s, e)]) for s, e in ranges]


def _bit_flips(value: bytes) -> Iterator[bytes]:
    for bit in range(len(value) * 8):
        flipped = bytearray(value)
        flipped[bit // 8] ^= 1 << (bit % 8)
        yield bytes(flipped)


def _fails(verify: Callable[..., None], *args: object) -> bool:
    try:
        verify(*args)
    except VerificationError:
        return True
    return False


@settings(max_examples=25, deadline=None)
@given(size=sizes, salt=salts)
def test_every_inclusion_proof_verifies_and_equals_the_served_one(size: int, salt: bytes) -> None:
    leaves = _leaves(size, salt)
    root, store = root_hash(leaves), _node_store(leaves)
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        assert _served(store, inclusion_ranges(index, size)) == proof
        verify_inclusion(leaves[index], index, size, proof, root)


@settings(max_examples=25, deadline=None)
@given(size2=sizes, salt=salts)
def test_consistency_proof_from_every_older_size_verifies(size2: int, salt: bytes) -> None:
    leaves = _leaves(size2, salt)
    root2, store = root_hash(leaves), _node_store(leaves)
    for size1 in range(1, size2 + 1):
        proof = consistency_proof(leaves, size1)
        assert _served(store, consistency_ranges(size1, size2)) == proof
        verify_consistency(size1, size2, proof, root_hash(leaves[:size1]), root2)


def test_consistency_proofs_between_every_pair_of_small_sizes() -> None:
    leaves = _leaves(64, b"pairs")
    store = _node_store(leaves)
    roots = [subtree_range_hash([store[n] for n in range_nodes(0, s)]) for s in range(65)]
    for size2 in range(1, 65):
        for size1 in range(1, size2 + 1):
            proof = _served(store, consistency_ranges(size1, size2))
            verify_consistency(size1, size2, proof, roots[size1], roots[size2])


@st.composite
def leaf_in_tree(draw: st.DrawFn) -> tuple[int, int, bytes]:
    size = draw(sizes)
    return draw(st.integers(0, size - 1)), size, draw(salts)


@settings(max_examples=40, deadline=None)
@given(case=leaf_in_tree())
def test_any_flipped_bit_breaks_an_inclusion_proof(case: tuple[int, int, bytes]) -> None:
    index, size, salt = case
    leaves = _leaves(size, salt)
    leaf, root = leaves[index], root_hash(leaves)
    proof = inclusion_proof(leaves, index)
    for position, element in enumerate(proof):
        for bad in _bit_flips(element):
            tampered = [*proof[:position], bad, *proof[position + 1 :]]
            assert _fails(verify_inclusion, leaf, index, size, tampered, root)
    for bad in _bit_flips(root):
        assert _fails(verify_inclusion, leaf, index, size, proof, bad)
    for bad in _bit_flips(leaf):
        assert _fails(verify_inclusion, bad, index, size, proof, root)


@settings(max_examples=40, deadline=None)
@given(case=leaf_in_tree())
def test_an_inclusion_proof_does_not_move_to_another_index_or_tree(
    case: tuple[int, int, bytes],
) -> None:
    index, size, salt = case
    leaves = _leaves(2 * size + 1, salt)
    leaf, root = leaves[index], root_hash(leaves[:size])
    proof = inclusion_proof(leaves[:size], index)
    for other in {index - 1, index + 1, index ^ 1, index ^ 2, size, -1} - {index}:
        assert _fails(verify_inclusion, leaf, other, size, proof, root)
    # RFC 6962 proofs do not commit to the size on their own (a path in a tree of 3 can
    # equal one in a tree of 4); the size is bound by the (size, root) pair a checkpoint
    # signs. So another size is checked against that size's real root.
    for other in {size - 1, size + 1, 2 * size, size // 2} - {index, size}:
        other_root = root_hash(leaves[:other])
        assert _fails(verify_inclusion, leaf, index, other, proof, other_root)


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int, bytes]:
    size2 = draw(sizes)
    return draw(st.integers(1, size2)), size2, draw(salts)


@settings(max_examples=40, deadline=None)
@given(case=two_sizes())
def test_any_flipped_bit_breaks_a_consistency_proof(case: tuple[int, int, bytes]) -> None:
    size1, size2, salt = case
    leaves = _leaves(size2, salt)
    root1, root2 = root_hash(leaves[:size1]), root_hash(leaves)
    proof = consistency_proof(leaves, size1)
    for position, element in enumerate(proof):
        for bad in _bit_flips(element):
            tampered = [*proof[:position], bad, *proof[position + 1 :]]
            assert _fails(verify_consistency, size1, size2, tampered, root1, root2)
    for bad in _bit_flips(root1):
        assert _fails(verify_consistency, size1, size2, proof, bad, root2)
    for bad in _bit_flips(root2):
        assert _fails(verify_consistency, size1, size2, proof, root1, bad)


@settings(max_examples=40, deadline=None)
@given(case=two_sizes())
def test_a_consistency_proof_does_not_move_to_other_sizes(case: tuple[int, int, bytes]) -> None:
    size1, size2, salt = case
    leaves = _leaves(2 * size2 + 1, salt)
    proof = consistency_proof(leaves[:size2], size1)
    others = {
        (size1 + d1, size2 + d2) for d1 in (-1, 0, 1) for d2 in (-1, 0, 1) if (d1, d2) != (0, 0)
    } | {(size1, 2 * size2), (size1 // 2, size2)}
    if not proof:  # size1 == size2: the empty proof is the right one for every equal pair
        others = {(a, b) for a, b in others if a != b}
    for other1, other2 in others:
        # As for inclusion, each size is checked with its own real root.
        root1, root2 = root_hash(leaves[: max(other1, 0)]), root_hash(leaves[: max(other2, 0)])
        assert _fails(verify_consistency, other1, other2, proof, root1, root2)


@settings(max_examples=100, deadline=None)
@given(leaves=st.lists(st.binary(min_size=32, max_size=32), max_size=80), split=st.integers(0, 80))
def test_compact_range_tracks_root_hash(leaves: list[bytes], split: int) -> None:
    edge = CompactRange()
    assert edge.root() == root_hash([])
    for size, leaf in enumerate(leaves, start=1):
        for level, index, node in edge.append(leaf):
            assert node == root_hash(leaves[index << level : (index + 1) << level])
        assert edge.root() == root_hash(leaves[:size])
        assert edge.size == size
    split = min(split, len(leaves))
    resumed = CompactRange(split, _edge_of(leaves[:split]).hashes())
    for leaf in leaves[split:]:
        resumed.append(leaf)
    assert resumed.root() == root_hash(leaves)


def _edge_of(leaves: list[bytes]) -> CompactRange:
    edge = CompactRange()
    for leaf in leaves:
        edge.append(leaf)
    return edge


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 2**70), length=st.integers(0, 2**12))
def test_range_nodes_tile_the_range_with_maximal_aligned_subtrees(start: int, length: int) -> None:
    end = start + length
    nodes = range_nodes(start, end)
    position = start
    for level, index in nodes:
        assert index << level == position  # contiguous, aligned by construction of the id
        position += 1 << level
    assert position == end
    for (left_level, left_index), (right_level, _) in pairwise(nodes):
        # Two equal neighbours forming an aligned pair would be one bigger node.
        assert not (left_level == right_level and left_index % 2 == 0)
    assert len(nodes) <= 2 * max(length.bit_length(), 1)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 9, 130], ids=lambda s: f"size-{s}")
def test_subtree_range_hash_is_the_mth_of_every_proof_range(size: int) -> None:
    leaves = _leaves(size, b"ranges")
    store = _node_store(leaves)
    for start in range(size + 1):
        for end in range(start, size + 1):
            n = end - start
            if start and start % (1 << max(n - 1, 0).bit_length()):
                continue  # not a valid subtree: right-to-left folding is documented not to apply
            served = subtree_range_hash([store[node] for node in range_nodes(start, end)])
            assert served == root_hash(leaves[start:end]), (start, end)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=MAX_SIZE), salts)
def test_subtree_levels_hold_every_complete_subtree(size: int, salt: bytes) -> None:
    leaves = _leaves(size, salt)
    levels = subtree_levels(leaves)

    assert levels[0] == leaves
    assert [len(level) for level in levels] == [size >> k for k in range(max(size.bit_length(), 1))]
    for k, level in enumerate(levels):
        for i, node in enumerate(level):
            assert node == root_hash(leaves[i << k : (i + 1) << k])
