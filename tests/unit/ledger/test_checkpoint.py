"""Checkpoints, signed notes and cosignatures against the C2SP, Go and Tessera vectors."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mltrail.errors import FormatError, InvalidInputError, VerificationError
from mltrail.ledger.checkpoint import (
    Checkpoint,
    NoteSignature,
    NoteSigner,
    Verifier,
    cosign,
    cosignature_message,
    cosigner_verifier_key,
    open_note,
    parse_cosigner_key,
    parse_verifier_key,
    sign_note,
    split_note,
    verify_cosignature,
)
from mltrail.ledger.keys import parse_private_key

ROOT = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def _load(vectors: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((vectors / name).read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def c2sp(vectors: Path) -> dict[str, Any]:
    return _load(vectors, "signed-note/c2sp-spec-examples.json")


@pytest.fixture(scope="module")
def gomod(vectors: Path) -> dict[str, Any]:
    return _load(vectors, "signed-note/golang-mod-sumdb-note.json")


@pytest.fixture(scope="module")
def tessera(vectors: Path) -> dict[str, Any]:
    return _load(vectors, "tlog-tiles/tessera-testdata-log.json")


@pytest.fixture(scope="module")
def peter(gomod: dict[str, Any]) -> NoteSigner:
    return parse_private_key(gomod["signer_key"])


@pytest.fixture(scope="module")
def enoch() -> NoteSigner:
    # The vectors' EnochRoot key came from Go's GenerateKey reading all-zero randomness.
    return NoteSigner.from_seed("EnochRoot", bytes(32))


# --- C2SP spec examples ------------------------------------------------------------------------


def test_c2sp_signed_note_example_verifies(c2sp: dict[str, Any]) -> None:
    example = c2sp["signed_note_example"]
    assert open_note(example["note"], [example["vkey"]]) == "This is an example message.\n"


def test_c2sp_intro_example_splits_but_does_not_open_without_its_key(
    c2sp: dict[str, Any],
) -> None:
    note = c2sp["signed_note_intro_example"]["note"]
    text, signatures = split_note(note)
    assert text.endswith("\n\ned è subito sera.\n")  # the text keeps its own blank line
    assert [s.name for s in signatures] == ["quasimodo.example/salvatore"]
    assert "".join(s.to_line() for s in signatures) == note[len(text) + 1 :]
    with pytest.raises(VerificationError):
        open_note(note, [])


@pytest.mark.parametrize(
    "key", ["checkpoint_example", "cosigned_checkpoint_example"], ids=["signed", "cosigned"]
)
def test_c2sp_checkpoint_examples_parse(c2sp: dict[str, Any], key: str) -> None:
    text, _ = split_note(c2sp[key]["note"])
    checkpoint = Checkpoint.from_text(text)
    assert checkpoint == Checkpoint("example.com/behind-the-sofa", 20852163, ROOT)
    assert checkpoint.to_text() == text == BODY


def test_c2sp_cosignature_example_layout(c2sp: dict[str, Any]) -> None:
    text, signatures = split_note(c2sp["cosigned_checkpoint_example"]["note"])
    witness = signatures[1]
    assert (witness.name, witness.key_id.hex()) == ("witness.example.com/w1", "8d66cf3f")
    assert len(witness.signature) == 8 + 64
    timestamp = int.from_bytes(witness.signature[:8], "big")
    assert timestamp == 1679315147
    expected = c2sp["cosignature_v1_signed_message_example"].encode()
    assert cosignature_message(text, timestamp) == expected


def test_note_from_unknown_key_is_refused(c2sp: dict[str, Any], tessera: dict[str, Any]) -> None:
    with pytest.raises(VerificationError, match="no signature from a trusted key"):
        open_note(c2sp["checkpoint_example"]["note"], [tessera["vkey"]])


# --- Go sumdb/note vectors ---------------------------------------------------------------------


def test_signing_reproduces_go_signature(gomod: dict[str, Any], peter: NoteSigner) -> None:
    assert peter.verifier_key == gomod["verifier_keys"]["PeterNeumann"]
    assert sign_note(gomod["text"], peter) == gomod["signed_by_peter"]


def test_signing_with_two_keys_reproduces_go_note(
    gomod: dict[str, Any], peter: NoteSigner, enoch: NoteSigner
) -> None:
    assert enoch.verifier_key == gomod["verifier_keys"]["EnochRoot"]
    assert sign_note(gomod["text"], peter, enoch) == gomod["signed_by_peter_and_enoch"]


@pytest.mark.parametrize(
    "names",
    [["PeterNeumann"], ["EnochRoot"], ["PeterNeumann", "EnochRoot"]],
    ids=["peter", "enoch", "both"],
)
def test_two_signature_note_opens_with_any_known_key(
    gomod: dict[str, Any], names: list[str]
) -> None:
    keys = [gomod["verifier_keys"][name] for name in names]
    assert open_note(gomod["signed_by_peter_and_enoch"], keys) == gomod["text"]


def test_note_without_known_keys_is_refused(gomod: dict[str, Any]) -> None:
    with pytest.raises(VerificationError):
        open_note(gomod["signed_by_peter_and_enoch"], [])


def test_open_note_accepts_utf8_bytes(gomod: dict[str, Any]) -> None:
    note = gomod["signed_by_peter"].encode("utf-8")
    assert open_note(note, [gomod["verifier_keys"]["PeterNeumann"]]) == gomod["text"]


def _sig_line(gomod: dict[str, Any]) -> str:
    note: str = gomod["signed_by_peter"]
    return note[len(gomod["text"]) + 1 :]


def test_sixteen_signatures_are_accepted(gomod: dict[str, Any]) -> None:
    # signed-note §Format: verifiers MUST accept at least 16 signatures.
    note = gomod["text"] + "\n" + _sig_line(gomod) * 16
    assert open_note(note, [gomod["verifier_keys"]["PeterNeumann"]]) == gomod["text"]


def test_more_than_a_hundred_signatures_are_malformed(gomod: dict[str, Any]) -> None:
    note = gomod["text"] + "\n" + _sig_line(gomod) * 101
    with pytest.raises(FormatError, match="more than 100"):
        open_note(note, [gomod["verifier_keys"]["PeterNeumann"]])


def _malformed_cases() -> list[Any]:
    data = json.loads(
        (Path(__file__).parents[2] / "vectors/signed-note/golang-mod-sumdb-note.json").read_text(
            encoding="utf-8"
        )
    )
    cases = []
    for case in data["malformed_notes"]:
        note: str | bytes = case["note"]
        if "raw_first_byte_hex" in case:
            note = bytes.fromhex(case["raw_first_byte_hex"]) + case["note"][1:].encode()
        cases.append(pytest.param(note, id=case["desc"]))
    return cases


@pytest.mark.parametrize("note", _malformed_cases())
def test_go_malformed_notes_are_rejected(gomod: dict[str, Any], note: str | bytes) -> None:
    with pytest.raises(FormatError):
        open_note(note, [gomod["verifier_keys"]["PeterNeumann"]])


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda n: n.replace("— ", "- "), id="hyphen-not-em-dash"),
        pytest.param(lambda n: n.replace("— ", "—"), id="no-space-after-dash"),
        pytest.param(lambda n: n.replace("PeterNeumann ", "PeterNeumann  "), id="double-space"),
        pytest.param(lambda n: n.replace("AM=\n", "AN=\n"), id="noncanonical-base64"),
        pytest.param(lambda n: n.replace("AM=\n", "AM\n"), id="missing-padding"),
        pytest.param(lambda n: n.replace("\n", "\r\n"), id="crlf"),
        pytest.param(lambda n: n + "\n", id="trailing-blank-line"),
        pytest.param(lambda n: "\udcff" + n, id="lone-surrogate"),
        pytest.param(lambda n: n.replace("PeterNeumann", "Peter+Neumann"), id="plus-in-name"),
        pytest.param(
            lambda n: n.split("— ")[0] + "— PeterNeumann AAAA\n", id="signature-too-short"
        ),
    ],
)
def test_other_malformed_notes_are_rejected(gomod: dict[str, Any], mutate: Any) -> None:
    with pytest.raises(FormatError):
        open_note(mutate(gomod["signed_by_peter"]), [gomod["verifier_keys"]["PeterNeumann"]])


def test_go_invalid_signature_from_known_key_rejects_note(gomod: dict[str, Any]) -> None:
    note = gomod["invalid_signature"]["note"]
    with pytest.raises(VerificationError, match="PeterNeumann\\+c74f20a3 does not verify"):
        open_note(note, [gomod["verifier_keys"]["PeterNeumann"]])


def test_bad_signature_from_known_key_is_not_outvoted(gomod: dict[str, Any]) -> None:
    # Enoch's line is corrupted; Peter's is fine. Known bad signature => whole note refused.
    note: str = gomod["signed_by_peter_and_enoch"]
    corrupted = note.replace("rwz+eBzmZa0SO3Nb", "rwz+eBzmZa0SO3Nc")
    keys = gomod["verifier_keys"]
    assert open_note(corrupted, [keys["PeterNeumann"]]) == gomod["text"]  # Enoch unknown
    with pytest.raises(VerificationError, match="EnochRoot"):
        open_note(corrupted, [keys["PeterNeumann"], keys["EnochRoot"]])


def test_forged_key_id_is_a_verification_failure(gomod: dict[str, Any]) -> None:
    # An attacker with another key copies Peter's name and key ID onto its own signature.
    mallory = NoteSigner.from_seed("PeterNeumann", bytes(range(32)))
    text = gomod["text"]
    forged = NoteSignature("PeterNeumann", bytes.fromhex("c74f20a3"), mallory.sign(text.encode()))
    with pytest.raises(VerificationError):
        open_note(text + "\n" + forged.to_line(), [gomod["verifier_keys"]["PeterNeumann"]])


def test_same_name_other_key_is_ignored(gomod: dict[str, Any]) -> None:
    impostor = NoteSigner.from_seed("PeterNeumann", bytes(range(32)))
    note = sign_note(gomod["text"], impostor)
    with pytest.raises(VerificationError, match="no signature from a trusted key"):
        open_note(note, [gomod["verifier_keys"]["PeterNeumann"]])


# --- verifier keys -----------------------------------------------------------------------------


def test_verifier_key_round_trips(gomod: dict[str, Any], tessera: dict[str, Any]) -> None:
    # The Tessera key's base64 holds a '+': only the first two '+' separate fields.
    keys = [*gomod["verifier_keys"].values(), tessera["vkey"]]
    assert "+" in tessera["vkey"].split("+", 2)[2]
    for vkey in keys:
        assert parse_verifier_key(vkey).verifier_key == vkey


def test_verifier_key_id_derivation(gomod: dict[str, Any]) -> None:
    verifier = parse_verifier_key(gomod["verifier_keys"]["PeterNeumann"])
    material = b"PeterNeumann\n\x01" + verifier.public_key
    assert verifier.key_id == hashlib.sha256(material).digest()[:4] == bytes.fromhex("c74f20a3")


def _bad_vkeys() -> list[Any]:
    peter = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    body = "+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    return [
        pytest.param(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            id="go-wrong-key-length",
        ),
        pytest.param(
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            id="go-unknown-algorithm",
        ),
        pytest.param(peter.replace("c74f20a3", "c74f20a4"), id="key-id-mismatch"),
        pytest.param(peter.replace("c74f20a3", "C74F20A3"), id="uppercase-key-id"),
        pytest.param(peter.replace("c74f20a3", "c74f20a"), id="short-key-id"),
        pytest.param("PeterNeumann+c74f20a3", id="no-key"),
        pytest.param("PeterNeumann", id="name-only"),
        pytest.param("+c74f20a3" + body, id="empty-name"),
        pytest.param("Peter Neumann+c74f20a3" + body, id="space-in-name"),
        pytest.param(peter[:-1] + "X", id="noncanonical-base64"),
        pytest.param(peter + "=", id="bad-padding"),
        pytest.param("PeterNeumann+c74f20a3+", id="empty-key"),
    ]


@pytest.mark.parametrize("vkey", _bad_vkeys())
def test_bad_verifier_keys_are_rejected(vkey: str) -> None:
    with pytest.raises(FormatError):
        parse_verifier_key(vkey)


def test_bad_verifier_key_fails_open_note(gomod: dict[str, Any]) -> None:
    with pytest.raises(FormatError):
        open_note(gomod["signed_by_peter"], [gomod["bad_verifier_keys"][0]["vkey"]])


def test_single_string_of_keys_is_refused(gomod: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="not one string"):
        open_note(gomod["signed_by_peter"], gomod["verifier_keys"]["PeterNeumann"])


def test_cosigner_key_is_not_a_note_key() -> None:
    witness = NoteSigner.from_seed("witness.example/w", bytes(range(32)))
    with pytest.raises(FormatError, match="type 0x01"):
        parse_verifier_key(cosigner_verifier_key(witness))
    with pytest.raises(FormatError, match="type 0x04"):
        parse_cosigner_key(witness.verifier_key)


# --- Tessera test log --------------------------------------------------------------------------


@pytest.mark.parametrize("size", range(16), ids=lambda s: f"size-{s}")
def test_tessera_checkpoints_open_and_parse(tessera: dict[str, Any], size: int) -> None:
    text = open_note(tessera["checkpoints"][str(size)], [tessera["vkey"]])
    checkpoint = Checkpoint.from_text(text)
    assert (checkpoint.origin, checkpoint.size) == (tessera["origin"], size)
    assert checkpoint.extensions == ()
    assert checkpoint.to_text() == text


def test_tessera_small_roots(tessera: dict[str, Any]) -> None:
    def root(size: int) -> bytes:
        text, _ = split_note(tessera["checkpoints"][str(size)])
        return Checkpoint.from_text(text).root_hash

    assert root(0) == hashlib.sha256(b"").digest()  # RFC 6962 §2.1: MTH({}) = SHA-256()
    assert root(1) == hashlib.sha256(b"\x00one").digest()


def test_tessera_checkpoint_refused_with_other_key(
    tessera: dict[str, Any], gomod: dict[str, Any]
) -> None:
    with pytest.raises(VerificationError):
        open_note(tessera["checkpoints"]["15"], [gomod["verifier_keys"]["PeterNeumann"]])


# --- Checkpoint body ---------------------------------------------------------------------------


def test_checkpoint_with_extensions_round_trips() -> None:
    checkpoint = Checkpoint("example.com/log", 0, bytes(32), ("ext one", "ext two"))
    text = checkpoint.to_text()
    zero_root = base64.b64encode(bytes(32)).decode()
    assert text == f"example.com/log\n0\n{zero_root}\next one\next two\n"
    assert Checkpoint.from_text(text) == checkpoint


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(BODY[:-1], id="no-final-newline"),
        pytest.param("\n" + BODY.split("\n", 1)[1], id="empty-origin"),
        pytest.param(BODY.replace("\n20852163\n", "\n020852163\n"), id="leading-zero"),
        pytest.param(BODY.replace("\n20852163\n", "\n00\n"), id="double-zero"),
        pytest.param(BODY.replace("\n20852163\n", "\n+20852163\n"), id="plus-sign"),
        pytest.param(BODY.replace("\n20852163\n", "\n-1\n"), id="negative"),
        pytest.param(BODY.replace("\n20852163\n", "\n 20852163\n"), id="space"),
        pytest.param(BODY.replace("\n20852163\n", "\n2_0852163\n"), id="underscore"),
        pytest.param(BODY.replace("\n20852163\n", "\n\u0662\n"), id="arabic-digit"),
        pytest.param(BODY.replace("\n20852163\n", "\n\n"), id="empty-size"),
        pytest.param(BODY.replace("\n20852163\n", f"\n{2**64}\n"), id="size-over-uint64"),
        pytest.param(BODY.replace("\n20852163\n", f"\n{'9' * 5000}\n"), id="size-huge"),
        pytest.param(BODY.replace("I=\n", "J=\n"), id="noncanonical-root"),
        pytest.param(BODY.replace("I=\n", "I\n"), id="root-no-padding"),
        pytest.param(BODY.replace("I=\n", "I=\t\n"), id="root-trailing-tab"),
        pytest.param(
            BODY.replace("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=", "AAAA"), id="root-short"
        ),
        pytest.param("example.com/log\n0\n", id="two-lines"),
        pytest.param(BODY + "\n", id="empty-extension"),
        pytest.param(BODY.replace("\n", "\r\n"), id="crlf"),
        pytest.param("", id="empty"),
    ],
)
def test_malformed_checkpoints_are_rejected(text: str) -> None:
    with pytest.raises(FormatError):
        Checkpoint.from_text(text)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(("", 1, ROOT, ()), id="empty-origin"),
        pytest.param(("a\nb", 1, ROOT, ()), id="newline-origin"),
        pytest.param(("a", -1, ROOT, ()), id="negative-size"),
        pytest.param(("a", True, ROOT, ()), id="bool-size"),
        pytest.param(("a", 2**64, ROOT, ()), id="size-over-uint64"),
        pytest.param(("a", 1, ROOT[:31], ()), id="short-root"),
        pytest.param(("a", 1, ROOT, ("",)), id="empty-extension"),
        pytest.param(("a", 1, ROOT, ["x"]), id="extensions-list"),
        pytest.param(("a\x00", 1, ROOT, ()), id="control-char"),
    ],
)
def test_invalid_checkpoints_cannot_be_built(fields: tuple[Any, ...]) -> None:
    with pytest.raises(FormatError):
        Checkpoint(*fields)


# --- signers and sign_note ---------------------------------------------------------------------


def test_signer_exposes_seed_but_does_not_print_it() -> None:
    seed = bytes(range(32))
    signer = NoteSigner.from_seed("example.com/log", seed)
    assert signer.seed == seed
    assert seed.hex() not in repr(signer)
    assert signer.verifier_key in repr(signer)
    assert len(signer.key_id) == 4


def test_generated_signers_differ() -> None:
    one, two = NoteSigner.generate("a"), NoteSigner.generate("a")
    assert one.seed != two.seed
    note = sign_note("hello\n", one)
    assert open_note(note, [one.verifier_key]) == "hello\n"
    with pytest.raises(VerificationError):
        open_note(note, [two.verifier_key])


@pytest.mark.parametrize(
    ("name", "seed"),
    [
        pytest.param("ok", bytes(31), id="short-seed"),
        pytest.param("ok", bytes(33), id="long-seed"),
        pytest.param("", bytes(32), id="empty-name"),
        pytest.param("a b", bytes(32), id="space"),
        pytest.param("a\u00a0b", bytes(32), id="nbsp"),
        pytest.param("a+b", bytes(32), id="plus"),
        pytest.param("a\x01", bytes(32), id="control"),
    ],
)
def test_bad_signer_inputs_are_rejected(name: str, seed: bytes) -> None:
    with pytest.raises(FormatError):
        NoteSigner.from_seed(name, seed)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("no newline", id="no-final-newline"),
        pytest.param("", id="empty"),
        pytest.param("tab\there\n", id="control-char"),
        pytest.param("\udc80\n", id="lone-surrogate"),
    ],
)
def test_sign_note_rejects_bad_text(enoch: NoteSigner, text: str) -> None:
    with pytest.raises(FormatError):
        sign_note(text, enoch)


def test_sign_note_needs_a_signer() -> None:
    with pytest.raises(InvalidInputError):
        sign_note("text\n")


def test_text_with_blank_lines_round_trips(enoch: NoteSigner) -> None:
    text = "a\n\nb\n\n"
    assert open_note(sign_note(text, enoch), [enoch.verifier_key]) == text


@pytest.mark.parametrize(
    ("public_key", "sig_type"),
    [
        pytest.param(bytes(32), 0x02, id="ecdsa-type"),
        pytest.param(bytes(31), 0x01, id="short-key"),
    ],
)
def test_verifier_rejects_bad_fields(public_key: bytes, sig_type: int) -> None:
    with pytest.raises(FormatError):
        Verifier("a", public_key, sig_type)


@pytest.mark.parametrize(
    ("key_id", "signature"),
    [pytest.param(b"abc", b"s", id="short-key-id"), pytest.param(bytes(4), b"", id="no-sig")],
)
def test_note_signature_rejects_bad_fields(key_id: bytes, signature: bytes) -> None:
    with pytest.raises(FormatError):
        NoteSignature("a", key_id, signature)


def test_colliding_verifier_keys_are_ambiguous(enoch: NoteSigner) -> None:
    # Two keys named "a" whose key IDs collide (88889a2b), found by a birthday search.
    one, two = (
        NoteSigner.from_seed("a", hashlib.sha256(i.to_bytes(8, "big")).digest())
        for i in (12512, 122988)
    )
    assert one.key_id == two.key_id and one.seed != two.seed
    with pytest.raises(FormatError, match="share name and key ID"):
        open_note(sign_note("x\n", one), [one.verifier_key, two.verifier_key])
    # The same key listed twice is not a collision.
    assert open_note(sign_note("x\n", one), [one.verifier_key, one.verifier_key]) == "x\n"


# --- cosignatures ------------------------------------------------------------------------------


@pytest.fixture
def witness() -> NoteSigner:
    return NoteSigner.from_seed("witness.example.com/w1", bytes(range(1, 33)))


def test_cosignature_round_trip(enoch: NoteSigner, witness: NoteSigner) -> None:
    note = sign_note(BODY, enoch) + cosign(BODY, witness, 1679315147)
    assert verify_cosignature(note, cosigner_verifier_key(witness)) == 1679315147
    # The log's signature still opens; the cosignature line is from an unknown key there.
    assert open_note(note, [enoch.verifier_key, witness.verifier_key]) == BODY


def test_cosignature_line_layout(witness: NoteSigner) -> None:
    line = cosign(BODY, witness, 1679315147)
    signature = NoteSignature.from_line(line)
    material = b"witness.example.com/w1\n\x04" + witness.public_key
    assert signature.key_id == hashlib.sha256(material).digest()[:4]
    assert signature.key_id == parse_cosigner_key(cosigner_verifier_key(witness)).key_id
    assert signature.signature[:8] == (1679315147).to_bytes(8, "big")
    message = cosignature_message(BODY, 1679315147)
    assert message.startswith(b"cosignature/v1\ntime 1679315147\n")
    witness.verifier.verify(message, signature.signature[8:])


def test_latest_cosignature_timestamp_is_returned(enoch: NoteSigner, witness: NoteSigner) -> None:
    note = sign_note(BODY, enoch) + cosign(BODY, witness, 5) + cosign(BODY, witness, 9)
    assert verify_cosignature(note, cosigner_verifier_key(witness)) == 9


def _retimestamp(line: str, timestamp: int) -> str:
    signature = NoteSignature.from_line(line)
    payload = timestamp.to_bytes(8, "big") + signature.signature[8:]
    return NoteSignature(signature.name, signature.key_id, payload).to_line()


@pytest.mark.parametrize(
    "make_line",
    [
        pytest.param(lambda w: _retimestamp(cosign(BODY, w, 100), 101), id="changed-timestamp"),
        pytest.param(lambda w: _retimestamp(cosign(BODY, w, 100), 2**63), id="timestamp-2^63"),
        pytest.param(
            lambda w: cosign(BODY.replace("20852163", "20852164"), w, 100), id="other-checkpoint"
        ),
        pytest.param(
            lambda w: NoteSignature(
                w.name, parse_cosigner_key(cosigner_verifier_key(w)).key_id, bytes(64)
            ).to_line(),
            id="no-timestamp",
        ),
    ],
)
def test_bad_cosignatures_are_refused(
    enoch: NoteSigner, witness: NoteSigner, make_line: Any
) -> None:
    note = sign_note(BODY, enoch) + make_line(witness)
    with pytest.raises(VerificationError):
        verify_cosignature(note, cosigner_verifier_key(witness))


def test_missing_cosignature_is_refused(enoch: NoteSigner, witness: NoteSigner) -> None:
    # A plain 0x01 signature by the witness key is not a cosignature (different key ID).
    note = sign_note(BODY, enoch, witness)
    with pytest.raises(VerificationError, match="no cosignature"):
        verify_cosignature(note, cosigner_verifier_key(witness))


@pytest.mark.parametrize(
    ("text", "timestamp", "error"),
    [
        pytest.param("not a checkpoint\n", 1, FormatError, id="not-a-checkpoint"),
        pytest.param(BODY, -1, InvalidInputError, id="negative-timestamp"),
        pytest.param(BODY, 2**63, InvalidInputError, id="timestamp-2^63"),
    ],
)
def test_cosign_rejects_bad_input(
    witness: NoteSigner, text: str, timestamp: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        cosign(text, witness, timestamp)
