"""Merkle tree hashing, proofs and proof verification as in RFC 6962 and RFC 9162; pure, no I/O.

Hashes are 32-byte SHA-256 digests. Leaves and nodes are domain-separated (RFC 6962 §2.1):
a leaf hash is ``SHA-256(0x00 || data)`` and an interior node ``SHA-256(0x01 || left || right)``.
Proofs are built as RFC 6962 §2.1.1 (PATH) and §2.1.2 (PROOF) define them and checked with
the RFC 9162 §2.1.3.2 and §2.1.4.2 algorithms.

A log that keeps its tree in a database serves proofs from stored hashes of *complete*
subtrees. Node ``(level, index)`` covers leaves ``[index * 2**level, (index + 1) * 2**level)``.
`inclusion_ranges` and `consistency_ranges` name the leaf ranges whose hashes a proof holds,
`range_nodes` splits a range into stored nodes, and `subtree_range_hash` folds their hashes
back into the range's hash: O(log n) lookups per proof, never a scan of the leaves.
`CompactRange` keeps the right edge of a growing tree and reports the nodes each append
completes, which is what the log stores.

>>> leaves = [leaf_hash(word) for word in (b"one", b"two", b"three")]
>>> root = root_hash(leaves)
>>> verify_inclusion(leaves[2], 2, 3, inclusion_proof(leaves, 2), root)
>>> verify_consistency(2, 3, consistency_proof(leaves, 2), root_hash(leaves[:2]), root)
>>> inclusion_ranges(2, 3), range_nodes(0, 3)
([(0, 2)], [(1, 0), (0, 2)])
>>> edge = CompactRange()
>>> [node[:2] for leaf in leaves for node in edge.append(leaf)]
[(0, 0), (0, 1), (1, 0), (0, 2)]
>>> edge.root() == root
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeAlias

from mltrail.errors import InvalidInputError, VerificationError

try:
    from mltrail import _native
except ImportError:  # built without the optional C accelerator
    _native = None  # type: ignore[assignment]

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "NodeId",
    "consistency_proof",
    "consistency_ranges",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "range_nodes",
    "root_hash",
    "root_nodes",
    "subtree_levels",
    "subtree_levels_python",
    "subtree_range_hash",
    "verify_consistency",
    "verify_inclusion",
]

NodeId: TypeAlias = tuple[int, int]
"""A stored node ``(level, index)``; covers leaves ``[index << level, (index + 1) << level)``."""

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"  # RFC 6962 §2.1: domain separation of leaves ...
_NODE_PREFIX = b"\x01"  # ... and interior nodes, against second-preimage attacks.

EMPTY_ROOT: bytes = _sha256(b"").digest()
"""MTH of the empty list, ``SHA-256("")`` (RFC 6962 §2.1)."""


def leaf_hash(data: bytes) -> bytes:
    """Hash one leaf's data: ``SHA-256(0x00 || data)`` (RFC 6962 §2.1).

    Args:
        data: the leaf's bytes (an event's canonical encoding).

    Returns:
        The 32-byte leaf hash.
    """
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two children: ``SHA-256(0x01 || left || right)`` (RFC 6962 §2.1).

    Args:
        left: hash of the left subtree.
        right: hash of the right subtree.

    Returns:
        The 32-byte interior node hash.
    """
    return _sha256(_NODE_PREFIX + left + right).digest()


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Compute the Merkle Tree Hash (MTH, RFC 6962 §2.1) over already-hashed leaves.

    Args:
        leaf_hashes: the leaf hashes in log order.

    Returns:
        The 32-byte root; `EMPTY_ROOT` for no leaves.

    Raises:
        InvalidInputError: a leaf hash is not 32 bytes.
    """
    _check_leaf_hashes(leaf_hashes)
    return _mth(leaf_hashes)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Build the audit path PATH(index, D[n]) of RFC 6962 §2.1.1, leaf to root.

    Args:
        leaf_hashes: every leaf hash of the tree, in log order.
        index: 0-based index of the leaf to prove.

    Returns:
        The sibling hashes, deepest first.

    Raises:
        InvalidInputError: ``index`` is outside the tree, or a leaf hash is not 32 bytes.
    """
    _check_leaf_hashes(leaf_hashes)
    ranges = inclusion_ranges(index, len(leaf_hashes))
    return [_mth(leaf_hashes[start:end]) for start, end in ranges]


def consistency_proof(leaf_hashes: Sequence[bytes], size1: int) -> list[bytes]:
    """Build PROOF(size1, D[n]) of RFC 6962 §2.1.2 between a prefix and the whole tree.

    Args:
        leaf_hashes: every leaf hash of the newer tree, in log order.
        size1: size of the older tree, ``1 <= size1 <= len(leaf_hashes)``.

    Returns:
        The proof hashes (empty when ``size1 == len(leaf_hashes)``).

    Raises:
        InvalidInputError: ``size1`` is out of range, or a leaf hash is not 32 bytes.
    """
    _check_leaf_hashes(leaf_hashes)
    ranges = consistency_ranges(size1, len(leaf_hashes))
    return [_mth(leaf_hashes[start:end]) for start, end in ranges]


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Name the leaf ranges ``[start, end)`` whose MTHs form the audit path, in proof order.

    Unrolls the recursion of RFC 6962 §2.1.1: with ``k`` the largest power of two below
    the subtree's size, the path goes into one half and records the MTH of the other.

    Args:
        index: 0-based leaf index.
        size: tree size.

    Returns:
        One range per proof hash, deepest first; each is a subtree `subtree_range_hash`
        can hash from `range_nodes`.

    Raises:
        InvalidInputError: unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise InvalidInputError(f"leaf index {index} is outside a tree of size {size}")
    siblings: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        mid = start + _split(end - start)
        if index < mid:
            siblings.append((mid, end))
            end = mid
        else:
            siblings.append((start, mid))
            start = mid
    siblings.reverse()  # collected root-down; the proof lists them leaf-up
    return siblings


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Name the leaf ranges whose MTHs form the consistency proof, in proof order.

    Unrolls SUBPROOF(m, D[n], b) of RFC 6962 §2.1.2.

    Args:
        size1: size of the older tree, ``1 <= size1 <= size2``.
        size2: size of the newer tree.

    Returns:
        One range per proof hash; empty when ``size1 == size2``.

    Raises:
        InvalidInputError: unless ``1 <= size1 <= size2``; a proof from the empty tree
            proves nothing and `verify_consistency` refuses one.
    """
    if not 1 <= size1 <= size2:
        raise InvalidInputError(
            f"no consistency proof from size {size1} to size {size2}; need 1 <= size1 <= size2"
        )
    outer: list[tuple[int, int]] = []
    start, end, whole_old_tree = 0, size2, True
    while size1 - start != end - start:
        mid = start + _split(end - start)
        if size1 <= mid:
            outer.append((mid, end))
            end = mid
        else:
            outer.append((start, mid))
            start, whole_old_tree = mid, False
    # SUBPROOF(m, D[m], false) = [MTH(D[m])]: the old tree's last complete subtree leads.
    head = [] if whole_old_tree else [(start, end)]
    return head + outer[::-1]


def range_nodes(start: int, end: int) -> list[NodeId]:
    """Split leaves ``[start, end)`` into maximal complete aligned subtrees, left to right.

    This is the compact-range decomposition: node sizes first grow (limited by the
    alignment of ``start``) and then shrink (limited by ``end``), so there are at most
    about ``2 * log2(end - start)`` nodes.

    Args:
        start: first leaf index.
        end: one past the last leaf index.

    Returns:
        ``(level, index)`` ids; empty when ``start == end``.

    Raises:
        InvalidInputError: unless ``0 <= start <= end``.
    """
    if not 0 <= start <= end:
        raise InvalidInputError(
            f"leaf range [{start}, {end}) is not a range; need 0 <= start <= end"
        )
    nodes: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def root_nodes(size: int) -> list[NodeId]:
    """Name the complete subtrees covering a tree of ``size`` leaves: ``range_nodes(0, size)``.

    Args:
        size: tree size.

    Returns:
        One node per set bit of ``size``, largest first.
    """
    return range_nodes(0, size)


def subtree_range_hash(nodes: Sequence[bytes]) -> bytes:
    """Fold the hashes of a range's `range_nodes` right to left into the range's MTH.

    Valid for the ranges ``[start, end)`` with ``start == 0`` or ``start`` a multiple of
    the smallest power of two ``>= end - start`` (the "valid subtrees" of RFC 6962 trees:
    ``[k * 2**j, min((k + 1) * 2**j, size))``). Their `range_nodes` shrink strictly from left
    to right, and RFC 6962 §2.1 splits such a range into its first node and the rest, so the
    MTH is ``node_hash(n0, node_hash(n1, ... node_hash(n[-2], n[-1])))``. Every range
    `inclusion_ranges` and `consistency_ranges` return, and every prefix ``[0, size)``, is
    valid. For any other range the result is not its MTH.

    Args:
        nodes: hashes of ``range_nodes(start, end)``, in that order.

    Returns:
        The range's MTH; `EMPTY_ROOT` for no nodes.
    """
    if not nodes:
        return EMPTY_ROOT
    acc = nodes[-1]
    for left in reversed(nodes[:-1]):
        acc = _sha256(_NODE_PREFIX + left + acc).digest()
    return acc


def subtree_levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Hash every complete subtree of a run of leaves, one level at a time.

    Level 0 is the leaf hashes; level ``k`` holds ``len(leaf_hashes) >> k`` hashes, the
    ``i``-th being the MTH of leaves ``[i * 2**k, (i + 1) * 2**k)`` of the run. When the run
    starts at a multiple of ``2**k`` (an aligned chunk of a log), that is stored node
    ``(k, (start >> k) + i)``. The C accelerator (`mltrail._native`) builds the levels
    when it is built; otherwise each level is one list comprehension over the one below.
    The leaf hashes are not checked for length (callers made them with `leaf_hash`).

    >>> levels = subtree_levels([leaf_hash(bytes([i])) for i in range(5)])
    >>> [len(level) for level in levels]
    [5, 2, 1]
    >>> levels[2][0] == root_hash(levels[0][:4])
    True

    Args:
        leaf_hashes: the run's leaf hashes, in log order.

    Returns:
        The levels from 0 up to the highest with a complete subtree (one list for no leaves).
    """
    leaves = list(leaf_hashes)
    levels = _native.subtree_levels(leaves) if _native is not None else None
    return levels if levels is not None else subtree_levels_python(leaves)


def subtree_levels_python(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """`subtree_levels` without the C accelerator (what runs when it is not built, and what
    the accelerator is tested against)."""
    level = list(leaf_hashes)
    levels = [level]
    sha, prefix = _sha256, _NODE_PREFIX
    while len(level) > 1:
        pairs = zip(level[0::2], level[1::2], strict=False)  # an odd last node has no pair yet
        level = [sha(prefix + left + right).digest() for left, right in pairs]
        levels.append(level)
    return levels


class CompactRange:
    """The right edge of a growing tree: hashes of the complete subtrees covering ``[0, size)``.

    Appending a leaf merges equal-sized subtrees like a binary counter carrying, so an
    append costs amortised two hashes and the state is ``popcount(size)`` hashes.

    Args:
        size: number of leaves already in the tree.
        hashes: hashes of ``root_nodes(size)``, in order (as `hashes` returns them).

    Raises:
        InvalidInputError: ``size`` is negative, or ``hashes`` has the wrong count or a
            hash that is not 32 bytes.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise InvalidInputError(f"compact range size {size} is negative")
        expected = size.bit_count()
        if len(hashes) != expected:
            raise InvalidInputError(
                f"compact range of size {size} needs {expected} hashes (one per node of "
                f"root_nodes({size})), got {len(hashes)}"
            )
        _check_hashes(hashes, "compact range hash")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash at index ``size``.

        Args:
            leaf: the new leaf's hash (`leaf_hash` of its data), not the data.

        Returns:
            Every node this append completes as ``(level, index, hash)``, starting with
            ``(0, index, leaf)`` and going up.

        Raises:
            InvalidInputError: ``leaf`` is not 32 bytes.
        """
        if len(leaf) != HASH_SIZE:
            raise InvalidInputError(f"leaf hash is {len(leaf)} bytes, expected {HASH_SIZE}")
        index, level, acc = self._size, 0, leaf
        created = [(0, index, leaf)]
        stack, sha, prefix = self._hashes, _sha256, _NODE_PREFIX
        while index & 1:  # a right child completes its parent with the last stored subtree
            acc = sha(prefix + stack.pop() + acc).digest()
            index >>= 1
            level += 1
            created.append((level, index, acc))
        stack.append(acc)
        self._size += 1
        return created

    def root(self) -> bytes:
        """Compute the MTH of the covered tree from the edge hashes."""
        return subtree_range_hash(self._hashes)

    def hashes(self) -> list[bytes]:
        """Copy the hashes of ``root_nodes(size)``, in order; feed them back to the constructor."""
        return list(self._hashes)

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}…)"


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Follows RFC 9162 §2.1.3.2. The proof alone does not pin ``size`` (the path for leaf 0
    of a tree of 3 also fits a tree of 4); take ``size`` and ``root`` together from one
    signed checkpoint.

    Args:
        leaf_hash: the leaf's hash (not its data).
        index: 0-based leaf index.
        size: tree size the proof is for.
        proof: the audit path, leaf to root.
        root: the trusted root hash of that tree.

    Raises:
        VerificationError: a hash is not 32 bytes, ``index >= size``, the proof has the
            wrong length, or the computed root differs from ``root``.
    """
    _require_hash(leaf_hash, "leaf hash")
    _require_hash(root, "root")
    _require_proof(proof, "inclusion proof")
    if not 0 <= index < size:  # §2.1.3.2 step 1
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    expected = _inclusion_length(index, size)
    if len(proof) != expected:
        raise VerificationError(
            f"inclusion proof for index {index} in tree of size {size} has {len(proof)} "
            f"hashes, expected {expected}"
        )
    computed = _root_from_path(leaf_hash, index, size - 1, proof)
    _require_match(computed, root, "computed root", "expected root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size2`` with ``root2`` extends the tree of ``size1``.

    Follows RFC 9162 §2.1.4.2. Unlike the RFC, ``size1 == 0`` is refused: consistency
    with the empty tree proves nothing, and the transparency-dev vectors expect an error.
    When the sizes are equal the proof must be empty and the roots byte-equal; there
    is nothing to hash, so their length is not checked.

    Args:
        size1: size of the older, trusted tree.
        size2: size of the newer tree.
        proof: the consistency proof.
        root1: root hash of the older tree.
        root2: root hash of the newer tree.

    Raises:
        VerificationError: the sizes are out of order or zero, a hash is not 32 bytes,
            the proof has the wrong length, or a recomputed root differs.
    """
    if size1 > size2:
        raise VerificationError(
            f"size1 {size1} is larger than size2 {size2}; a log never shrinks (possible rollback)"
        )
    if size1 <= 0:
        raise VerificationError(
            f"consistency from tree size {size1} proves nothing; size1 must be at least 1"
        )
    if size1 == size2:
        if proof:
            raise VerificationError(
                f"consistency proof between equal sizes {size1} must be empty, "
                f"has {len(proof)} hashes"
            )
        _require_match(root1, root2, f"root of size {size1}", "other root of the same size")
        return
    _require_hash(root1, "root1")
    _require_hash(root2, "root2")
    _require_proof(proof, "consistency proof")
    expected = _consistency_length(size1, size2)
    if len(proof) != expected:  # also catches the empty proof (expected >= 1 here)
        raise VerificationError(
            f"consistency proof from size {size1} to size {size2} has {len(proof)} "
            f"hashes, expected {expected}"
        )
    computed1, computed2 = _roots_from_consistency(size1, size2, proof, root1)
    _require_match(computed1, root1, f"computed root of size {size1}", "expected root1")
    _require_match(computed2, root2, f"computed root of size {size2}", "expected root2")


# --- private helpers -------------------------------------------------------------------


def _mth(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH by pairing level by level; an odd last node moves up unchanged.

    This equals the recursive RFC 6962 §2.1 definition: the left split of ``n`` leaves
    is the largest power of two below ``n``, which pairing builds as a complete subtree.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    sha, prefix = _sha256, _NODE_PREFIX
    while len(level) > 1:
        paired = [
            sha(prefix + a + b).digest() for a, b in zip(level[::2], level[1::2], strict=False)
        ]
        if len(level) & 1:
            paired.append(level[-1])
        level = paired
    return level[0]


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``): RFC 6962 §2.1's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_length(index: int, size: int) -> int:
    """Audit path length: levels below where the paths to ``index`` and ``size - 1``
    diverge (each has a sibling), plus one per left sibling above them on the right edge."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_length(size1: int, size2: int) -> int:
    """Consistency proof length for ``0 < size1 < size2``: an inclusion path for the old
    tree's last complete subtree, plus that subtree's hash unless it is the whole old tree."""
    shift = (size1 & -size1).bit_length() - 1
    path = _inclusion_length((size1 - 1) >> shift, ((size2 - 1) >> shift) + 1)
    return path + (0 if size1 == 1 << shift else 1)


def _root_from_path(acc: bytes, fn: int, sn: int, path: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 steps 2-4, after the caller checked the path length.

    The RFC's bookkeeping on ``sn`` (steps 4a, 4b.ii and 5) only checks the path length,
    which the caller did exactly beforehand, so it is left out: once ``fn == sn`` the two
    shift in step, stay equal, and every remaining hash is a left sibling either way.
    """
    sha, prefix = _sha256, _NODE_PREFIX
    for p in path:
        if fn & 1 or fn == sn:  # step 4b: p is a left sibling
            acc = sha(prefix + p + acc).digest()
        else:
            acc = sha(prefix + acc + p).digest()
        fn >>= 1  # step 4c
        sn >>= 1
    return acc


def _roots_from_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> tuple[bytes, bytes]:
    """RFC 9162 §2.1.4.2 steps 2-6, after the caller checked the proof length.

    Returns the recomputed old and new roots (``fr``, ``sr``). As in `_root_from_path`,
    the caller's exact length check replaces the bookkeeping on ``sn`` (steps 6a, 6b.iii
    and the ``sn == 0`` test of step 7).
    """
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # step 2: size1 is a power of two
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    sha, prefix = _sha256, _NODE_PREFIX
    for c in path[1:]:  # step 6
        if fn & 1 or fn == sn:
            fr = sha(prefix + c + fr).digest()
            sr = sha(prefix + c + sr).digest()
        else:
            sr = sha(prefix + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return fr, sr


def _check_leaf_hashes(leaf_hashes: Sequence[bytes]) -> None:
    """Refuse leaf hashes that are not 32 bytes (a caller passing data instead of hashes)."""
    _check_hashes(leaf_hashes, "leaf hash")


def _check_hashes(hashes: Sequence[bytes], what: str) -> None:
    if set(map(len, hashes)) <= {HASH_SIZE}:  # one C-level pass over a million hashes
        return
    position = next(i for i, value in enumerate(hashes) if len(value) != HASH_SIZE)
    raise InvalidInputError(
        f"{what} {position} is {len(hashes[position])} bytes, expected {HASH_SIZE}",
        hint="pass hashes made by leaf_hash(), not the leaf data",
    )


def _require_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{what} is {len(value)} bytes, expected a {HASH_SIZE}-byte hash")


def _require_proof(proof: Sequence[bytes], what: str) -> None:
    for position, value in enumerate(proof):
        _require_hash(value, f"{what} hash {position}")


def _require_match(
    computed: bytes, expected: bytes, computed_name: str, expected_name: str
) -> None:
    if computed != expected:
        raise VerificationError(
            f"{computed_name} {_short(computed)} does not match {expected_name} {_short(expected)}"
        )


def _short(value: bytes) -> str:
    text = value.hex()
    return text if len(text) <= 16 else text[:16] + "…"
