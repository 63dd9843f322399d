"""Known-answer tests for `mltrail.ledger.merkle` against vectors nobody on this project made."""

from __future__ import annotations

import base64
import doctest
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mltrail.errors import InvalidInputError, VerificationError
from mltrail.ledger import merkle
from mltrail.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeId,
    consistency_proof,
    consistency_ranges,
    inclusion_proof,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    range_nodes,
    root_hash,
    root_nodes,
    subtree_range_hash,
    verify_consistency,
    verify_inclusion,
)

# Only for collecting parameter ids; test bodies read files through the `vectors` fixture.
_TESTDATA = Path(__file__).resolve().parents[2] / "vectors" / "merkle" / "testdata"


def _probe_ids(kind: str) -> list[str]:
    return sorted(p.relative_to(_TESTDATA).as_posix() for p in (_TESTDATA / kind).rglob("*.json"))


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _b64_list(values: list[str] | None) -> list[bytes]:
    return [_b64(v) for v in values or []]  # Go encodes an empty slice as null


def _hex_list(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


@pytest.fixture(scope="module")
def reference(vectors: Path) -> dict[str, Any]:
    data: dict[str, Any] = _load(vectors / "merkle" / "rfc6962_reference_tree.json")
    return data


@pytest.fixture(scope="module")
def reference_leaves(reference: dict[str, Any]) -> list[bytes]:
    return [leaf_hash(bytes.fromhex(x)) for x in reference["leaf_inputs"]]


def _node_store(leaves: list[bytes]) -> dict[NodeId, bytes]:
    """Every complete node of the tree, as a SQL-backed log would store them."""
    edge = CompactRange()
    return {(lvl, idx): h for leaf in leaves for lvl, idx, h in edge.append(leaf)}


def _range_hash(store: dict[NodeId, bytes], start: int, end: int) -> bytes:
    return subtree_range_hash([store[node] for node in range_nodes(start, end)])


def test_module_docstring_example_runs() -> None:
    result = doctest.testmod(merkle, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --- RFC 6962 reference tree (transparency-dev/merkle testonly) ----------------------------


def test_hasher_known_answers(reference: dict[str, Any]) -> None:
    empty, leaf_empty, leaf_text, node = reference["hasher_kat"]
    assert EMPTY_ROOT.hex() == empty["want"]
    assert root_hash([]).hex() == empty["want"]
    assert leaf_hash(bytes.fromhex(leaf_empty["leaf_input_hex"])).hex() == leaf_empty["want"]
    assert leaf_hash(bytes.fromhex(leaf_text["leaf_input_hex"])).hex() == leaf_text["want"]
    left, right = bytes.fromhex(node["left_hex"]), bytes.fromhex(node["right_hex"])
    assert node_hash(left, right).hex() == node["want"]


@pytest.mark.parametrize("size", range(9), ids=lambda s: f"size-{s}")
def test_reference_root_for_every_size(
    reference: dict[str, Any], reference_leaves: list[bytes], size: int
) -> None:
    want = reference["root_hashes_by_size"][size]
    assert root_hash(reference_leaves[:size]).hex() == want
    edge = CompactRange()
    for leaf in reference_leaves[:size]:
        edge.append(leaf)
    assert edge.root().hex() == want
    store = _node_store(reference_leaves)
    assert subtree_range_hash([store[n] for n in root_nodes(size)]).hex() == want


def test_reference_node_hashes_are_the_nodes_compact_range_creates(
    reference: dict[str, Any], reference_leaves: list[bytes]
) -> None:
    store = _node_store(reference_leaves)
    want = {
        (level, index): bytes.fromhex(h)
        for level, row in enumerate(reference["node_hashes_by_level"])
        for index, h in enumerate(row)
    }
    assert store == want


def _inclusion_id(case: dict[str, Any]) -> str:
    return f"index-{case['leaf_index_0based']}-size-{case['tree_size']}"


def _consistency_id(case: dict[str, Any]) -> str:
    return f"size1-{case['size1']}-size2-{case['size2']}"


def _reference_cases(key: str) -> list[dict[str, Any]]:
    path = _TESTDATA.parent / "rfc6962_reference_tree.json"
    cases: list[dict[str, Any]] = _load(path)[key]
    return cases


@pytest.mark.parametrize("case", _reference_cases("inclusion_proofs"), ids=_inclusion_id)
def test_reference_inclusion_proof_is_exact(
    reference_leaves: list[bytes], case: dict[str, Any]
) -> None:
    index, size = case["leaf_index_0based"], case["tree_size"]
    want = _hex_list(case["audit_path"])
    leaves = reference_leaves[:size]
    assert inclusion_proof(leaves, index) == want
    store = _node_store(reference_leaves)
    assert [_range_hash(store, s, e) for s, e in inclusion_ranges(index, size)] == want
    verify_inclusion(leaves[index], index, size, want, root_hash(leaves))


@pytest.mark.parametrize("case", _reference_cases("consistency_proofs"), ids=_consistency_id)
def test_reference_consistency_proof_is_exact(
    reference_leaves: list[bytes], case: dict[str, Any]
) -> None:
    size1, size2 = case["size1"], case["size2"]
    want = _hex_list(case["proof"])
    assert consistency_proof(reference_leaves[:size2], size1) == want
    store = _node_store(reference_leaves)
    assert [_range_hash(store, s, e) for s, e in consistency_ranges(size1, size2)] == want
    root1, root2 = root_hash(reference_leaves[:size1]), root_hash(reference_leaves[:size2])
    verify_consistency(size1, size2, want, root1, root2)


# --- transparency-dev/merkle testdata probes ----------------------------------------------


@pytest.mark.parametrize("rel", _probe_ids("inclusion"), ids=str)
def test_inclusion_probe(vectors: Path, reference_leaves: list[bytes], rel: str) -> None:
    case = _load(vectors / "merkle" / "testdata" / rel)
    args = (
        _b64(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        _b64_list(case["proof"]),
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            verify_inclusion(*args)
        return
    verify_inclusion(*args)
    _, index, size, proof, root = args
    if size <= len(reference_leaves) and root == root_hash(reference_leaves[:size]):
        assert inclusion_proof(reference_leaves[:size], index) == proof


@pytest.mark.parametrize("rel", _probe_ids("consistency"), ids=str)
def test_consistency_probe(vectors: Path, reference_leaves: list[bytes], rel: str) -> None:
    case = _load(vectors / "merkle" / "testdata" / rel)
    size1, size2 = case["size1"], case["size2"]
    proof = _b64_list(case["proof"])
    root1, root2 = _b64(case["root1"]), _b64(case["root2"])
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            verify_consistency(size1, size2, proof, root1, root2)
        return
    verify_consistency(size1, size2, proof, root1, root2)
    if size2 <= len(reference_leaves) and root2 == root_hash(reference_leaves[:size2]):
        assert consistency_proof(reference_leaves[:size2], size1) == proof


def test_probe_files_are_all_collected() -> None:
    # README: 196 probes, 12 valid. A lost directory would silently shrink the suite.
    probes = _probe_ids("inclusion") + _probe_ids("consistency")
    valid = [p for p in probes if not _load(_TESTDATA / p)["wantErr"]]
    assert (len(probes), len(valid)) == (196, 12)


# --- accumulated subtree vectors (draft-ietf-plants-merkle-tree-certs appendix) -----------


def _valid_subtree(start: int, end: int) -> bool:
    """The vector file's own definition of the ranges it lists."""
    n = end - start
    bit_ceil = 1 if n <= 1 else 1 << (n - 1).bit_length()
    return start <= end and (start == 0 or start == end or start % bit_ceil == 0)


def _subtrees(size: int) -> list[tuple[int, int]]:
    return [(s, e) for e in range(size + 1) for s in range(e + 1) if _valid_subtree(s, e)]


@pytest.fixture(scope="module")
def accumulated(vectors: Path) -> dict[str, Any]:
    data: dict[str, Any] = _load(vectors / "merkle" / "accumulated_subtree_vectors.json")
    return data


@pytest.fixture(scope="module")
def accumulated_leaves() -> list[bytes]:
    return [leaf_hash(bytes([i])) for i in range(130)]  # d[i] = the single byte i


def _accumulated_want(accumulated: dict[str, Any], name: str) -> str:
    (vector,) = [v for v in accumulated["vectors"] if v["name"] == name]
    want: str = vector["sha256_of_lines"]
    return want


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("".join(lines).encode("ascii")).hexdigest()


@pytest.mark.parametrize("method", ["root_hash", "stored-nodes"])
def test_accumulated_subtree_hash(
    accumulated: dict[str, Any], accumulated_leaves: list[bytes], method: str
) -> None:
    store = _node_store(accumulated_leaves)
    lines = []
    for start, end in _subtrees(130):
        if method == "root_hash":
            mth = root_hash(accumulated_leaves[start:end])
        else:
            mth = _range_hash(store, start, end)
        lines.append(f"[{start}, {end}) {mth.hex()}\n")
    assert _digest(lines) == _accumulated_want(accumulated, "subtree_hash")


@pytest.mark.parametrize("method", ["inclusion_proof", "stored-nodes"])
def test_accumulated_subtree_inclusion(
    accumulated: dict[str, Any], accumulated_leaves: list[bytes], method: str
) -> None:
    store = _node_store(accumulated_leaves)
    lines = []
    for start, end in _subtrees(130):
        subtree = accumulated_leaves[start:end]
        for index in range(start, end):
            if method == "inclusion_proof":
                path = inclusion_proof(subtree, index - start)
            else:
                ranges = inclusion_ranges(index - start, end - start)
                path = [_range_hash(store, start + s, start + e) for s, e in ranges]
            lines.append(f"{index} [{start}, {end})" + "".join(f" {h.hex()}" for h in path) + "\n")
    assert _digest(lines) == _accumulated_want(accumulated, "subtree_inclusion")


# --- a real tiled log (transparency-dev/tessera testdata) ---------------------------------


@pytest.fixture(scope="module")
def tessera(vectors: Path) -> dict[str, Any]:
    data: dict[str, Any] = _load(vectors / "tlog-tiles" / "tessera-testdata-log.json")
    return data


def _checkpoint_root(tessera: dict[str, Any], size: int) -> bytes:
    origin, size_line, root_line = tessera["checkpoints"][str(size)].split("\n")[:3]
    assert (origin, size_line) == (tessera["origin"], str(size))
    return _b64(root_line)


def test_tessera_entry_bundle_holds_the_entries(tessera: dict[str, Any]) -> None:
    bundle = bytes.fromhex(tessera["entry_bundles_hex"]["tile/entries/000.p/15"])
    entries, pos = [], 0
    while pos < len(bundle):  # C2SP tlog-tiles: 2-byte big-endian length, then the entry
        length = int.from_bytes(bundle[pos : pos + 2], "big")
        entries.append(bundle[pos + 2 : pos + 2 + length].decode("ascii"))
        pos += 2 + length
    assert entries == tessera["entries_appended_in_order"]


def test_tessera_level0_tiles_are_leaf_hashes(tessera: dict[str, Any]) -> None:
    leaves = [leaf_hash(e.encode("ascii")) for e in tessera["entries_appended_in_order"]]
    for path, tile_hex in tessera["tiles_level0_hex"].items():
        width = int(path.rsplit("/", 1)[1])
        assert bytes.fromhex(tile_hex) == b"".join(leaves[:width]), path


@pytest.mark.parametrize("size", range(16), ids=lambda s: f"size-{s}")
def test_tessera_signed_root_at_every_size(tessera: dict[str, Any], size: int) -> None:
    leaves = [leaf_hash(e.encode("ascii")) for e in tessera["entries_appended_in_order"]]
    want = _checkpoint_root(tessera, size)
    assert root_hash(leaves[:size]) == want
    edge = CompactRange()
    for leaf in leaves[:size]:
        edge.append(leaf)
    assert edge.root() == want
    for index in range(size):
        verify_inclusion(leaves[index], index, size, inclusion_proof(leaves[:size], index), want)


def test_tessera_signed_roots_are_pairwise_consistent(tessera: dict[str, Any]) -> None:
    leaves = [leaf_hash(e.encode("ascii")) for e in tessera["entries_appended_in_order"]]
    roots = [_checkpoint_root(tessera, size) for size in range(16)]
    for size2 in range(1, 16):
        for size1 in range(1, size2 + 1):
            proof = consistency_proof(leaves[:size2], size1)
            verify_consistency(size1, size2, proof, roots[size1], roots[size2])


# --- range decomposition --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "want"),
    [
        (0, 0, []),
        (5, 5, []),
        (0, 1, [(0, 0)]),
        (0, 8, [(3, 0)]),
        (0, 7, [(2, 0), (1, 2), (0, 6)]),
        (0, 13, [(3, 0), (2, 2), (0, 12)]),
        (5, 6, [(0, 5)]),
        (3, 13, [(0, 3), (2, 1), (2, 2), (0, 12)]),
        (1, 15, [(0, 1), (1, 1), (2, 1), (2, 2), (1, 6), (0, 14)]),
        (8, 16, [(3, 1)]),
        (2**40, 2**40 + 3, [(1, 2**39), (0, 2**40 + 2)]),
    ],
    ids=lambda v: str(v).replace(" ", ""),
)
def test_range_nodes(start: int, end: int, want: list[NodeId]) -> None:
    assert range_nodes(start, end) == want


@pytest.mark.parametrize(
    ("start", "end"), [(-1, 3), (4, 3)], ids=["negative-start", "end-before-start"]
)
def test_range_nodes_refuses_non_ranges(start: int, end: int) -> None:
    with pytest.raises(InvalidInputError, match=r"leaf range \[-?\d+, \d+\) is not a range"):
        range_nodes(start, end)


@pytest.mark.parametrize(
    ("size", "want"),
    [(0, []), (1, [(0, 0)]), (6, [(2, 0), (1, 2)]), (13, [(3, 0), (2, 2), (0, 12)])],
    ids=lambda v: str(v).replace(" ", ""),
)
def test_root_nodes(size: int, want: list[NodeId]) -> None:
    assert root_nodes(size) == want


def test_subtree_range_hash_of_nothing_is_the_empty_root() -> None:
    assert subtree_range_hash([]) == EMPTY_ROOT


def test_subtree_range_hash_folds_right_to_left() -> None:
    a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert subtree_range_hash([a, b, c]) == node_hash(a, node_hash(b, c))


@pytest.mark.parametrize(
    ("index", "size", "want"),
    [
        (0, 1, []),
        (0, 8, [(1, 2), (2, 4), (4, 8)]),
        (5, 8, [(4, 5), (6, 8), (0, 4)]),
        (2, 3, [(0, 2)]),
        (6, 7, [(4, 6), (0, 4)]),
    ],
    ids=lambda v: str(v).replace(" ", ""),
)
def test_inclusion_ranges(index: int, size: int, want: list[tuple[int, int]]) -> None:
    assert inclusion_ranges(index, size) == want


@pytest.mark.parametrize(
    ("size1", "size2", "want"),
    [
        (3, 3, []),
        (1, 8, [(1, 2), (2, 4), (4, 8)]),
        (4, 8, [(4, 8)]),
        (6, 8, [(4, 6), (6, 8), (0, 4)]),
        (2, 5, [(2, 4), (4, 5)]),
        (3, 7, [(2, 3), (3, 4), (0, 2), (4, 7)]),
    ],
    ids=lambda v: str(v).replace(" ", ""),
)
def test_consistency_ranges(size1: int, size2: int, want: list[tuple[int, int]]) -> None:
    assert consistency_ranges(size1, size2) == want


@pytest.mark.parametrize(
    ("index", "size"), [(-1, 4), (4, 4), (0, 0)], ids=["negative", "index-eq-size", "empty-tree"]
)
def test_inclusion_ranges_refuse_leaves_outside_the_tree(index: int, size: int) -> None:
    with pytest.raises(InvalidInputError, match=f"leaf index {index} is outside"):
        inclusion_ranges(index, size)
    with pytest.raises(InvalidInputError):
        inclusion_proof([leaf_hash(b"x")] * size, index)


@pytest.mark.parametrize(
    ("size1", "size2"), [(0, 3), (-1, 3), (4, 3)], ids=["from-empty", "negative", "shrinking"]
)
def test_consistency_ranges_refuse_bad_sizes(size1: int, size2: int) -> None:
    with pytest.raises(InvalidInputError, match="need 1 <= size1 <= size2"):
        consistency_ranges(size1, size2)
    with pytest.raises(InvalidInputError):
        consistency_proof([leaf_hash(b"x")] * size2, size1)


# --- CompactRange ---------------------------------------------------------------------------


def test_compact_range_append_reports_every_completed_node() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(4)]
    edge = CompactRange()
    assert edge.append(leaves[0]) == [(0, 0, leaves[0])]
    assert edge.append(leaves[1]) == [
        (0, 1, leaves[1]),
        (1, 0, node_hash(leaves[0], leaves[1])),
    ]
    assert edge.append(leaves[2]) == [(0, 2, leaves[2])]
    created = edge.append(leaves[3])
    assert [(lvl, idx) for lvl, idx, _ in created] == [(0, 3), (1, 1), (2, 0)]
    assert created[-1][2] == root_hash(leaves)
    assert edge.size == 4
    assert edge.hashes() == [root_hash(leaves)]


def test_compact_range_resumes_from_its_hashes() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(23)]
    first = CompactRange()
    for leaf in leaves[:13]:
        first.append(leaf)
    resumed = CompactRange(first.size, first.hashes())
    for leaf in leaves[13:]:
        resumed.append(leaf)
    assert resumed.root() == root_hash(leaves)
    assert repr(resumed).startswith("CompactRange(size=23, root=")


def test_compact_range_hashes_are_a_copy() -> None:
    edge = CompactRange()
    edge.append(leaf_hash(b"a"))
    edge.hashes().clear()
    assert edge.root() == leaf_hash(b"a")


def test_empty_compact_range_has_the_empty_root() -> None:
    assert CompactRange().root() == EMPTY_ROOT


@pytest.mark.parametrize(
    ("size", "hashes", "message"),
    [
        (-1, [], "compact range size -1 is negative"),
        (5, [b"\x00" * 32], r"size 5 needs 2 hashes .*got 1"),
        (1, [b"\x00" * 31], "compact range hash 0 is 31 bytes, expected 32"),
    ],
    ids=["negative-size", "wrong-count", "short-hash"],
)
def test_compact_range_refuses_bad_state(size: int, hashes: list[bytes], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        CompactRange(size, hashes)


def test_compact_range_refuses_leaf_data_instead_of_hash() -> None:
    with pytest.raises(InvalidInputError, match="leaf hash is 3 bytes, expected 32"):
        CompactRange().append(b"one")


# --- generator and verifier errors ------------------------------------------------------------


def test_root_hash_refuses_leaf_data_instead_of_hashes() -> None:
    leaves = [leaf_hash(b"a"), b"not a hash"]
    with pytest.raises(InvalidInputError, match="leaf hash 1 is 10 bytes, expected 32") as info:
        root_hash(leaves)
    assert "leaf_hash()" in info.value.hint()


def _tree(size: int) -> list[bytes]:
    return [leaf_hash(b"%d" % i) for i in range(size)]


def test_inclusion_error_names_the_expected_length() -> None:
    leaves = _tree(8)
    proof = [*inclusion_proof(leaves, 5), EMPTY_ROOT]
    with pytest.raises(VerificationError) as info:
        verify_inclusion(leaves[5], 5, 8, proof, root_hash(leaves))
    assert (
        info.value.message
        == "inclusion proof for index 5 in tree of size 8 has 4 hashes, expected 3"
    )


def test_inclusion_error_names_both_roots() -> None:
    leaves = _tree(8)
    wrong = root_hash(leaves[:7])
    with pytest.raises(VerificationError) as info:
        verify_inclusion(leaves[5], 5, 8, inclusion_proof(leaves, 5), wrong)
    computed = root_hash(leaves).hex()
    assert info.value.message == (
        f"computed root {computed[:16]}… does not match expected root {wrong.hex()[:16]}…"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((b"\x00" * 31, 0, 1, [], b"\x00" * 32), "leaf hash is 31 bytes, expected a 32-byte hash"),
        ((b"\x00" * 32, 0, 1, [], b""), "root is 0 bytes"),
        ((b"\x00" * 32, 0, 2, [b"\x01" * 33], b"\x00" * 32), "inclusion proof hash 0 is 33 bytes"),
        ((b"\x00" * 32, 3, 3, [], b"\x00" * 32), "leaf index 3 is outside a tree of size 3"),
        ((b"\x00" * 32, -1, 3, [], b"\x00" * 32), "leaf index -1 is outside a tree of size 3"),
    ],
    ids=["short-leaf", "empty-root", "long-proof-hash", "index-eq-size", "negative-index"],
)
def test_inclusion_refuses_malformed_input(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        verify_inclusion(*args)


_H1, _H2 = leaf_hash(b"1"), leaf_hash(b"2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((5, 4, [], _H1, _H2), "size1 5 is larger than size2 4; a log never shrinks"),
        ((0, 4, [], EMPTY_ROOT, _H2), "consistency from tree size 0 proves nothing"),
        ((0, 0, [], EMPTY_ROOT, EMPTY_ROOT), "consistency from tree size 0 proves nothing"),
        ((3, 3, [_H1], _H1, _H1), "between equal sizes 3 must be empty, has 1 hashes"),
        ((3, 3, [], _H1, _H2), f"root of size 3 {_H1.hex()[:16]}… does not match other root"),
        (
            (1, 1, [], b"ab", b"cd"),
            "root of size 1 6162 does not match other root of the same size 6364$",
        ),
        ((2, 5, [], _H1, _H2), "from size 2 to size 5 has 0 hashes, expected 2"),
        ((2, 5, [_H1, _H1, _H1], _H1, _H2), "from size 2 to size 5 has 3 hashes, expected 2"),
        ((2, 5, [_H1, _H2], b"short", _H2), "root1 is 5 bytes"),
        ((2, 5, [_H1, _H2], _H1, b""), "root2 is 0 bytes"),
        ((2, 5, [_H1, b"x"], _H1, _H2), "consistency proof hash 1 is 1 bytes"),
    ],
    ids=[
        "shrinking",
        "from-empty",
        "both-empty",
        "equal-sizes-nonempty-proof",
        "equal-sizes-different-roots",
        "equal-sizes-different-short-roots",
        "empty-proof",
        "long-proof",
        "short-root1",
        "empty-root2",
        "short-proof-hash",
    ],
)
def test_consistency_refuses_bad_proofs(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        verify_consistency(*args)


@pytest.mark.parametrize("which", ["root1", "root2"])
def test_consistency_error_names_the_root_that_differs(which: str) -> None:
    leaves = _tree(7)
    proof = consistency_proof(leaves, 3)
    root1, root2 = root_hash(leaves[:3]), root_hash(leaves)
    if which == "root1":
        root1 = root_hash(leaves[:2])
    else:
        root2 = root_hash(leaves[:6])
    with pytest.raises(VerificationError, match=f"does not match expected {which}"):
        verify_consistency(3, 7, proof, root1, root2)
