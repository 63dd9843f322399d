"""Properties of checkpoints and signed notes: round-trips, and any flipped byte is caught."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mltrail.errors import FormatError, VerificationError
from mltrail.ledger.checkpoint import (
    Checkpoint,
    NoteSigner,
    cosign,
    cosigner_verifier_key,
    open_note,
    sign_note,
    verify_cosignature,
)

# Printable-or-not, any code point a note may carry: no C0 controls, no surrogates.
_chars = st.characters(min_codepoint=0x20, codec="utf-8")
_lines = st.text(_chars, min_size=1)
_texts = st.lists(st.text(_chars), min_size=1, max_size=6).map(lambda ls: "\n".join(ls) + "\n")
_names = st.text(st.characters(min_codepoint=0x21, codec="utf-8"), min_size=1, max_size=20).filter(
    lambda s: "+" not in s and not any(c.isspace() for c in s)
)
_seeds = st.binary(min_size=32, max_size=32)
_signers = st.builds(NoteSigner.from_seed, _names, _seeds)

checkpoints = st.builds(
    Checkpoint,
    origin=_lines,
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_lines, max_size=3).map(tuple),
)


@given(checkpoints)
def test_checkpoint_text_round_trips(checkpoint: Checkpoint) -> None:
    assert Checkpoint.from_text(checkpoint.to_text()) == checkpoint


@given(_texts, st.lists(_signers, min_size=1, max_size=3))
def test_sign_open_round_trips(text: str, signers: list[NoteSigner]) -> None:
    note = sign_note(text, *signers)
    assert sign_note(text, *signers) == note  # Ed25519 is deterministic
    for signer in signers:
        assert open_note(note, [signer.verifier_key]) == text
    assert open_note(note, [s.verifier_key for s in signers]) == text


@given(checkpoints, _signers, st.data())
def test_any_flipped_byte_is_refused(
    checkpoint: Checkpoint, signer: NoteSigner, data: st.DataObject
) -> None:
    note = bytearray(sign_note(checkpoint.to_text(), signer).encode("utf-8"))
    index = data.draw(st.integers(0, len(note) - 1), label="index")
    note[index] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises((FormatError, VerificationError)):
        open_note(bytes(note), [signer.verifier_key])


@given(_texts, _signers, _seeds)
def test_note_signed_by_another_key_is_refused(
    text: str, signer: NoteSigner, other_seed: bytes
) -> None:
    other = NoteSigner.from_seed(signer.name, other_seed)
    if other.seed == signer.seed:
        return
    with pytest.raises(VerificationError):
        open_note(sign_note(text, other), [signer.verifier_key])


@given(checkpoints, _signers, _signers, st.integers(0, 2**63 - 1))
def test_cosignature_round_trips(
    checkpoint: Checkpoint, log: NoteSigner, witness: NoteSigner, timestamp: int
) -> None:
    body = checkpoint.to_text()
    note = sign_note(body, log) + cosign(body, witness, timestamp)
    assert verify_cosignature(note, cosigner_verifier_key(witness)) == timestamp
