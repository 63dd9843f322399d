"""in-toto Statement v1 and ResourceDescriptor validation, round-trips and signing."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mltrail.attest import intoto
from mltrail.attest.dsse import sign_envelope
from mltrail.attest.intoto import (
    PAYLOAD_TYPE,
    SLSA_PROVENANCE,
    STATEMENT_TYPE,
    TEST_RESULT,
    ResourceDescriptor,
    Statement,
    matches_subject,
    open_statement,
    sign_statement,
)
from mltrail.canonical import canonicalize
from mltrail.errors import FormatError, InvalidInputError, VerificationError

_DSSE = Path(__file__).resolve().parents[2] / "vectors" / "dsse"
VALIDATION = json.loads((_DSSE / "intoto_statement_validation.json").read_text("utf-8"))
CROSS = json.loads((_DSSE / "ed25519_cross_lang.json").read_text("utf-8"))
STATEMENT_FIXTURES = [f for f in CROSS["fixtures"] if f["payload_type"] == PAYLOAD_TYPE]

ED_KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(CROSS["key"]["test_seed_hex"]))
P256_KEY = ec.derive_private_key(987654321987654321, ec.SECP256R1())
SHA_A = "a" * 64
SHA_B = "0123456789abcdef" * 4


_DROP = object()


def _parse(case: dict[str, Any]) -> Statement | ResourceDescriptor:
    parser = Statement if case["kind"] == "statement" else ResourceDescriptor
    return parser.from_dict(case["json"])


def _statement(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "model.onnx", "digest": {"sha256": SHA_A}}],
        "predicateType": TEST_RESULT,
        "predicate": {"result": "PASSED"},
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not _DROP}


# --- upstream validation vectors ---------------------------------------------------------

CASES = VALIDATION["cases"]
VALID = [c for c in CASES if c["expect_spec"] == "valid"]
INVALID = [c for c in CASES if c["expect_spec"] == "invalid"]


@pytest.mark.parametrize("case", VALID, ids=[f"{c['kind']}-{c['name']}" for c in VALID])
def test_spec_valid_case_parses_and_round_trips(case: dict[str, Any]) -> None:
    parsed = _parse(case)
    assert parsed.to_dict() == case["json"]
    if isinstance(parsed, Statement):
        assert Statement.from_bytes(case["json_text"]) == parsed
        assert parsed.to_bytes() == canonicalize(case["json"])


@pytest.mark.parametrize("case", INVALID, ids=[f"{c['kind']}-{c['name']}" for c in INVALID])
def test_spec_invalid_case_rejected(case: dict[str, Any]) -> None:
    with pytest.raises(FormatError):
        _parse(case)
    if case["kind"] == "statement":
        with pytest.raises(FormatError):
            Statement.from_bytes(case["json_text"].encode())


def test_spec_wins_where_python_binding_differs() -> None:
    differing = {
        c["name"]: c["expect_spec"]
        for c in CASES
        if c["expect_spec"] != c.get("expect_python_binding")
    }
    assert differing == {"missing_predicate": "valid", "name_and_empty_digest": "invalid"}


# --- more malformed statements -----------------------------------------------------------

BAD_STATEMENTS: dict[str, Any] = {
    "not_an_object": [],
    "missing_type": _statement(_type=_DROP),
    "type_v01": _statement(_type="https://in-toto.io/Statement/v0.1"),
    "missing_subject": _statement(subject=_DROP),
    "subject_object": _statement(subject={"digest": {"sha256": SHA_A}}),
    "subject_entry_string": _statement(subject=[SHA_A]),
    "subject_uri_only": _statement(subject=[{"uri": "https://example.com/m"}]),
    "missing_predicate_type": _statement(predicateType=_DROP),
    "predicate_type_number": _statement(predicateType=1),
    "predicate_null": _statement(predicate=None),
    "predicate_list": _statement(predicate=[1]),
    "sha256_uppercase": _statement(subject=[{"digest": {"sha256": SHA_A.upper()}}]),
    "sha256_short": _statement(subject=[{"digest": {"sha256": "abc123"}}]),
    "sha1_not_hex": _statement(subject=[{"digest": {"sha1": "z" * 40}}]),
    "digest_value_number": _statement(subject=[{"digest": {"sha256": 1}}]),
    "digest_value_empty": _statement(subject=[{"digest": {"gitCommit": ""}}]),
    "digest_not_object": _statement(subject=[{"digest": SHA_A}]),
    "name_number": _statement(subject=[{"name": 3, "digest": {"sha256": SHA_A}}]),
    "name_null": _statement(subject=[{"name": None, "digest": {"sha256": SHA_A}}]),
    "content_not_base64": _statement(subject=[{"digest": {"sha256": SHA_A}, "content": "***"}]),
    "content_number": _statement(subject=[{"digest": {"sha256": SHA_A}, "content": 7}]),
    "annotations_list": _statement(subject=[{"digest": {"sha256": SHA_A}, "annotations": [1]}]),
}


@pytest.mark.parametrize("data", BAD_STATEMENTS.values(), ids=BAD_STATEMENTS.keys())
def test_malformed_statement_rejected(data: Any) -> None:
    with pytest.raises(FormatError):
        Statement.from_dict(data)
    with pytest.raises(FormatError):
        Statement.from_bytes(json.dumps(data))


@pytest.mark.parametrize(
    "text",
    ['{"_type": "x", "_type": "y"}', "{", "NaN", '"statement"', b"\xff"],
    ids=["duplicate_key", "truncated", "nan", "string", "not_utf8"],
)
def test_from_bytes_rejects_non_json(text: str | bytes) -> None:
    with pytest.raises(FormatError):
        Statement.from_bytes(text)


def test_custom_digest_algorithms_are_free_form() -> None:
    statement = Statement.from_dict(_statement(subject=[{"digest": {"gitCommit": "HEAD~1"}}]))
    assert statement.subject[0].digest == {"gitCommit": "HEAD~1"}


# --- round trips and unknown fields -------------------------------------------------------


def test_unknown_fields_round_trip() -> None:
    data = _statement(
        subject=[{"digest": {"sha256": SHA_A}, "x-extra": {"deep": [1, None]}}],
        futureField=True,
    )
    statement = Statement.from_dict(data)
    assert statement.unrecognized_fields == {"futureField": True}
    assert statement.subject[0].unrecognized_fields == {"x-extra": {"deep": [1, None]}}
    assert statement.to_dict() == data
    assert statement.to_bytes() == canonicalize(data)


def test_to_bytes_is_canonical_and_from_bytes_inverts_it() -> None:
    statement = Statement.from_dict(_statement(predicate={"z": 1, "a": ["é", 2.5]}))
    encoded = statement.to_bytes()
    assert encoded == canonicalize(statement.to_dict())
    assert encoded.index(b'"_type"') < encoded.index(b'"predicate"')
    assert Statement.from_bytes(encoded) == statement


def test_missing_predicate_stays_missing() -> None:
    statement = Statement.from_dict(_statement(predicate=_DROP))
    assert statement.predicate is None
    assert "predicate" not in statement.to_dict()


def test_parsed_statement_does_not_alias_its_input() -> None:
    data = _statement(predicate={"metrics": {"auc": 0.9}})
    statement = Statement.from_dict(data)
    data["predicate"]["metrics"]["auc"] = 0.1
    data["subject"][0]["digest"]["sha256"] = SHA_B
    assert statement.predicate == {"metrics": {"auc": 0.9}}
    assert statement.subject[0].digest == {"sha256": SHA_A}
    statement.to_dict()["predicate"]["metrics"]["auc"] = 0.2
    assert statement.predicate == {"metrics": {"auc": 0.9}}


def test_resource_descriptor_content_is_bytes() -> None:
    descriptor = ResourceDescriptor.from_dict({"content": "aGk"})  # unpadded base64
    assert descriptor.content == b"hi"
    assert descriptor.to_dict() == {"content": base64.b64encode(b"hi").decode()}


@pytest.mark.parametrize("fixture", STATEMENT_FIXTURES, ids=[f["name"] for f in STATEMENT_FIXTURES])
def test_cross_language_statements_open_and_re_encode_byte_for_byte(
    fixture: dict[str, Any],
) -> None:
    statement = open_statement(fixture["envelope"], [ED_KEY.public_key()])
    assert statement.to_bytes() == base64.b64decode(fixture["payload_b64"])
    assert sign_statement(statement, ED_KEY) == fixture["envelope"]


# --- constructors --------------------------------------------------------------------------

BAD_CONSTRUCTIONS = {
    "empty_subject": lambda: Statement(subject=[], predicate_type=TEST_RESULT),
    "subject_without_digest": lambda: Statement(
        subject=[ResourceDescriptor(uri="https://example.com")], predicate_type=TEST_RESULT
    ),
    "subject_not_descriptor": lambda: Statement(
        subject=[{"digest": {"sha256": SHA_A}}],  # type: ignore[list-item]
        predicate_type=TEST_RESULT,
    ),
    "subject_string": lambda: Statement(subject="abc", predicate_type=TEST_RESULT),  # type: ignore[arg-type]
    "empty_predicate_type": lambda: Statement(
        subject=[ResourceDescriptor(digest={"sha256": SHA_A})], predicate_type=""
    ),
    "unrecognized_shadows_known": lambda: Statement(
        subject=[ResourceDescriptor(digest={"sha256": SHA_A})],
        predicate_type=TEST_RESULT,
        unrecognized_fields={"predicate": {}},
    ),
    "descriptor_empty": lambda: ResourceDescriptor(name="only a name"),
    "descriptor_empty_digest": lambda: ResourceDescriptor(name="n", digest={}),
    "descriptor_content_str": lambda: ResourceDescriptor(content="aGk="),  # type: ignore[arg-type]
    "descriptor_shadowing_extra": lambda: ResourceDescriptor(
        uri="u", unrecognized_fields={"mediaType": "x"}
    ),
}


@pytest.mark.parametrize("build", BAD_CONSTRUCTIONS.values(), ids=BAD_CONSTRUCTIONS.keys())
def test_constructors_check_invariants(build: Any) -> None:
    with pytest.raises(InvalidInputError):
        build()


# --- signing -------------------------------------------------------------------------------

STATEMENT = Statement(
    subject=[ResourceDescriptor(name="model.onnx", digest={"sha256": SHA_A})],
    predicate_type=SLSA_PROVENANCE,
    predicate={"buildDefinition": {"buildType": "https://example.com/train/v1"}},
)


@pytest.mark.parametrize("key", [ED_KEY, P256_KEY], ids=["ed25519", "p256"])
def test_sign_then_open_round_trip(key: Any) -> None:
    envelope = sign_statement(STATEMENT, key, keyid="registry")
    assert envelope["payloadType"] == PAYLOAD_TYPE
    assert envelope["signatures"][0]["keyid"] == "registry"
    assert open_statement(envelope, [key.public_key()]) == STATEMENT


def test_open_statement_rejects_wrong_key() -> None:
    envelope = sign_statement(STATEMENT, ED_KEY)
    with pytest.raises(VerificationError):
        open_statement(envelope, [P256_KEY.public_key()])


def test_open_statement_rejects_other_payload_type() -> None:
    envelope = sign_envelope("application/json", STATEMENT.to_bytes(), ED_KEY)
    with pytest.raises(FormatError, match="payloadType"):
        open_statement(envelope, [ED_KEY.public_key()])


def test_open_statement_rejects_signed_non_statement() -> None:
    envelope = sign_envelope(PAYLOAD_TYPE, b'{"_type": "something else"}', ED_KEY)
    with pytest.raises(FormatError):
        open_statement(envelope, [ED_KEY.public_key()])


def test_open_statement_verifies_before_parsing() -> None:
    envelope = sign_envelope(PAYLOAD_TYPE, b"not json", ED_KEY)
    with pytest.raises(VerificationError):
        open_statement(envelope, [P256_KEY.public_key()])


# --- test-result predicate -----------------------------------------------------------------

CI_CONFIG = ResourceDescriptor(
    name=".github/workflows/ci.yml",
    digest={"gitBlob": "ebe4add40f63c3c98bc9b32ff1e736f04120b023"},
)


def test_test_result_predicate_follows_spec_example() -> None:
    predicate = intoto.test_result_predicate(
        "PASSED",
        [CI_CONFIG],
        passed_tests=["build (3.7, ubuntu-latest, py)"],
        url="https://github.com/in-toto/in-toto/actions/runs/4425592351",
    )
    assert predicate == {
        "result": "PASSED",
        "configuration": [
            {
                "name": ".github/workflows/ci.yml",
                "digest": {"gitBlob": "ebe4add40f63c3c98bc9b32ff1e736f04120b023"},
            }
        ],
        "url": "https://github.com/in-toto/in-toto/actions/runs/4425592351",
        "passedTests": ["build (3.7, ubuntu-latest, py)"],
        "warnedTests": [],
        "failedTests": [],
    }


def test_test_result_predicate_accepts_configuration_objects_and_omits_url() -> None:
    predicate = intoto.test_result_predicate(
        "FAILED", [{"uri": "https://example.com/eval.yaml"}], (), ["drift"], ["bias"]
    )
    assert predicate["configuration"] == [{"uri": "https://example.com/eval.yaml"}]
    assert (predicate["warnedTests"], predicate["failedTests"]) == (["drift"], ["bias"])
    assert "url" not in predicate
    statement = Statement(
        subject=[ResourceDescriptor(digest={"sha256": SHA_A})],
        predicate_type=TEST_RESULT,
        predicate=predicate,
    )
    assert Statement.from_bytes(statement.to_bytes()) == statement


BAD_PREDICATE_ARGS: dict[str, dict[str, Any]] = {
    "lowercase_result": {"result": "passed"},
    "unknown_result": {"result": "SKIPPED"},
    "configuration_string": {"configuration": "ci.yml"},
    "configuration_entry_invalid": {"configuration": [{"name": "no digest"}]},
    "configuration_entry_number": {"configuration": [3]},
    "tests_string": {"passed_tests": "test_a"},
    "test_name_number": {"failed_tests": [1]},
    "test_name_empty": {"warned_tests": [""]},
    "url_empty": {"url": ""},
}


@pytest.mark.parametrize("changes", BAD_PREDICATE_ARGS.values(), ids=BAD_PREDICATE_ARGS.keys())
def test_test_result_predicate_rejects(changes: dict[str, Any]) -> None:
    args: dict[str, Any] = {"result": "PASSED", "configuration": [CI_CONFIG], **changes}
    with pytest.raises(InvalidInputError):
        intoto.test_result_predicate(**args)


# --- matches_subject -----------------------------------------------------------------------

TWO_SUBJECTS = Statement(
    subject=[
        ResourceDescriptor(name="a", digest={"sha256": SHA_A}),
        ResourceDescriptor(name="b", digest={"sha512": "b" * 128, "sha256": SHA_B}),
        ResourceDescriptor(name="c", digest={"sha512": "c" * 128}),
    ],
    predicate_type=TEST_RESULT,
)


@pytest.mark.parametrize(
    ("digest", "expected"),
    [
        (SHA_A, True),
        (SHA_B, True),
        ("sha256:" + SHA_B, True),
        (SHA_B.upper(), True),
        ("c" * 64, False),
        ("f" * 64, False),
    ],
    ids=["first", "second", "prefixed", "uppercase", "only_sha512_differs", "absent"],
)
def test_matches_subject(digest: str, expected: bool) -> None:
    assert matches_subject(TWO_SUBJECTS, digest) is expected


@pytest.mark.parametrize(
    "digest",
    ["", "abc", "g" * 64, "sha512:" + "a" * 64, "a" * 65],
    ids=["empty", "short", "not_hex", "other_algorithm", "long"],
)
def test_matches_subject_rejects_non_sha256(digest: str) -> None:
    with pytest.raises(InvalidInputError):
        matches_subject(TWO_SUBJECTS, digest)
