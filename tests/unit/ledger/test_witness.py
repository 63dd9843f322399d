"""`mltrail.ledger.witness`: accept only consistent growth; refuse rollbacks and forks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mltrail.errors import ConfigError, VerificationError
from mltrail.ledger import merkle
from mltrail.ledger.checkpoint import Checkpoint, NoteSigner, sign_note, verify_cosignature
from mltrail.ledger.witness import Witness

ORIGIN = "test.mltrail/log"
LOG = NoteSigner.from_seed(ORIGIN, bytes(32))
LEAVES = [merkle.leaf_hash(b"event %d" % i) for i in range(20)]
FORKED = [*LEAVES[:6], *(merkle.leaf_hash(b"forked %d" % i) for i in range(6, 20))]


def _note(
    size: int, leaves: list[bytes] = LEAVES, *, signer: NoteSigner = LOG, origin: str = ORIGIN
) -> str:
    return sign_note(Checkpoint(origin, size, merkle.root_hash(leaves[:size])).to_text(), signer)


def _proof(size1: int, size2: int, leaves: list[bytes] = LEAVES) -> list[bytes]:
    return merkle.consistency_proof(leaves[:size2], size1)


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    return Witness.create(
        tmp_path / "witness", name="test.mltrail/witness", log_key=LOG.verifier_key
    )


@pytest.fixture
def at_ten(witness: Witness) -> Witness:
    """A witness that has accepted the checkpoint of size 10."""
    witness.accept(_note(10), [])
    return witness


def test_new_witness_trusts_nothing(witness: Witness) -> None:
    assert witness.trusted() is None
    assert witness.trusted_note() is None


def test_first_checkpoint_is_accepted_and_cosigned(witness: Witness) -> None:
    accepted = witness.accept(_note(4), [], now=1_700_000_000)

    assert accepted == Checkpoint(ORIGIN, 4, merkle.root_hash(LEAVES[:4]))
    assert witness.trusted() == accepted
    note = witness.trusted_note()
    assert note is not None and note.startswith(_note(4).rstrip("\n"))
    assert verify_cosignature(note, witness.cosigner_key) == 1_700_000_000


@pytest.mark.parametrize("size", [11, 13, 16, 20], ids=["by-one", "odd", "power-of-two", "far"])
def test_growth_with_a_valid_consistency_proof_is_accepted(at_ten: Witness, size: int) -> None:
    accepted = at_ten.accept(_note(size), _proof(10, size))

    assert accepted.size == size
    assert at_ten.trusted() == accepted


def test_same_checkpoint_again_is_accepted(at_ten: Witness) -> None:
    assert at_ten.accept(_note(10), []).size == 10


def test_growth_step_by_step_is_accepted(witness: Witness) -> None:
    previous = 0
    for size in (1, 2, 3, 7, 8, 15, 20):
        proof = _proof(previous, size) if previous else []
        assert witness.accept(_note(size), proof).size == size
        previous = size


def _refused(witness: Witness, note: str, proof: list[bytes], match: str) -> None:
    """``note`` is refused with ``match`` and the witness still trusts what it did before."""
    before = witness.trusted_note()
    with pytest.raises(VerificationError, match=match):
        witness.accept(note, proof)
    assert witness.trusted_note() == before


@pytest.mark.parametrize("size", [9, 1], ids=["one-less", "much-smaller"])
def test_smaller_checkpoint_is_refused_as_a_rollback(at_ten: Witness, size: int) -> None:
    _refused(at_ten, _note(size), [], "rollback")


def test_same_size_with_another_root_is_refused_as_a_fork(at_ten: Witness) -> None:
    _refused(at_ten, _note(10, FORKED), [], "forked")


def _flipped(proof: list[bytes]) -> list[bytes]:
    return [bytes([proof[0][0] ^ 0x01]) + proof[0][1:], *proof[1:]]


@pytest.mark.parametrize(
    ("note", "proof"),
    [
        (_note(14), []),
        (_note(14), _proof(10, 14)[:-1]),
        (_note(14), [*_proof(10, 14), bytes(32)]),
        (_note(14), _flipped(_proof(10, 14))),
        (_note(14), _proof(9, 14)),
        (_note(14), _proof(10, 15)),
        (_note(14, FORKED), _proof(10, 14, FORKED)),
    ],
    ids=[
        "no-proof",
        "short-proof",
        "long-proof",
        "flipped-byte",
        "proof-from-other-size",
        "proof-to-other-size",
        "forked-history",
    ],
)
def test_growth_with_an_invalid_proof_is_refused(
    at_ten: Witness, note: str, proof: list[bytes]
) -> None:
    _refused(at_ten, note, proof, "not consistent")


@pytest.mark.parametrize(
    "note",
    [
        _note(12, signer=NoteSigner.from_seed(ORIGIN, bytes(range(32)))),
        _note(12, signer=NoteSigner.from_seed("test.mltrail/other", bytes(32))),
    ],
    ids=["other-key-same-name", "other-name"],
)
def test_checkpoint_not_signed_by_the_log_is_refused(at_ten: Witness, note: str) -> None:
    _refused(at_ten, note, _proof(10, 12), "no signature from a trusted key")


def test_checkpoint_of_another_origin_is_refused(at_ten: Witness) -> None:
    _refused(at_ten, _note(12, origin="test.mltrail/other-log"), _proof(10, 12), "origin")


def test_state_survives_reload(at_ten: Witness) -> None:
    at_ten.accept(_note(13), _proof(10, 13))

    reloaded = Witness.load(at_ten.directory)

    assert reloaded.trusted_note() == at_ten.trusted_note()
    assert reloaded.trusted() == Checkpoint(ORIGIN, 13, merkle.root_hash(LEAVES[:13]))
    assert reloaded.cosigner_key == at_ten.cosigner_key
    assert reloaded.log_key == LOG.verifier_key
    _refused(reloaded, _note(12), [], "rollback")
    _refused(reloaded, _note(13, FORKED), [], "forked")
    assert reloaded.accept(_note(18), _proof(13, 18)).size == 18
    assert Witness.load(at_ten.directory).trusted() == reloaded.trusted()


def test_witness_directory_is_not_created_twice(at_ten: Witness) -> None:
    with pytest.raises(ConfigError, match="already"):
        Witness.create(at_ten.directory, name="test.mltrail/witness", log_key=LOG.verifier_key)
    assert Witness.load(at_ten.directory).trusted() is not None


def test_loading_an_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no witness"):
        Witness.load(tmp_path)
