"""Properties of DSSE envelopes and in-toto Statements (hypothesis)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from mltrail.attest.dsse import PrivateKey, pae, sign_envelope, verify_envelope
from mltrail.attest.intoto import ResourceDescriptor, Statement
from mltrail.canonical import MAX_SAFE_INTEGER
from mltrail.errors import VerificationError

KEYS: dict[str, PrivateKey] = {
    "ed25519": Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))),
    "p256": ec.derive_private_key(2**200 + 12345, ec.SECP256R1()),
}
key_names = st.sampled_from(sorted(KEYS))


def _flip(data: bytes, index: int, mask: int) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@given(payload_type=st.text(), payload=st.binary(), name=key_names)
def test_sign_then_verify_returns_the_payload(payload_type: str, payload: bytes, name: str) -> None:
    key = KEYS[name]
    envelope = sign_envelope(payload_type, payload, key)
    assert verify_envelope(envelope, [key.public_key()]) == payload


@given(payload_type=st.text(), payload=st.binary(), name=key_names)
def test_pae_frames_type_and_body(payload_type: str, payload: bytes, name: str) -> None:
    encoded = pae(payload_type, payload)
    type_bytes = payload_type.encode("utf-8")
    header = b"DSSEv1 %d " % len(type_bytes)
    assert encoded.startswith(header + type_bytes + b" %d " % len(payload))
    assert encoded.endswith(payload)


@given(payload=st.binary(min_size=1), name=key_names, data=st.data())
def test_flipping_a_payload_byte_fails(payload: bytes, name: str, data: st.DataObject) -> None:
    key = KEYS[name]
    envelope = sign_envelope("application/octet-stream", payload, key)
    index = data.draw(st.integers(0, len(payload) - 1), label="index")
    mask = data.draw(st.integers(1, 255), label="mask")
    envelope["payload"] = _b64(_flip(payload, index, mask))
    with pytest.raises(VerificationError):
        verify_envelope(envelope, [key.public_key()])


@given(payload=st.binary(), name=key_names, data=st.data())
def test_flipping_a_signature_byte_fails(payload: bytes, name: str, data: st.DataObject) -> None:
    key = KEYS[name]
    envelope = sign_envelope("application/octet-stream", payload, key)
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    index = data.draw(st.integers(0, len(signature) - 1), label="index")
    mask = data.draw(st.integers(1, 255), label="mask")
    envelope["signatures"][0]["sig"] = _b64(_flip(signature, index, mask))
    with pytest.raises(VerificationError):
        verify_envelope(envelope, [key.public_key()])


@given(payload_type=st.text(min_size=1), other=st.text(), name=key_names)
def test_changing_the_payload_type_fails(payload_type: str, other: str, name: str) -> None:
    key = KEYS[name]
    envelope = sign_envelope(payload_type, b"body", key)
    envelope["payloadType"] = other if other != payload_type else payload_type + "x"
    with pytest.raises(VerificationError):
        verify_envelope(envelope, [key.public_key()])


# --- in-toto Statement ---------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    # canonical.loads refuses integral numbers beyond 2^53 - 1, and RFC 8785 writes such
    # floats (2^53 up to 1e21) as plain digits, so they could not come back.
    | st.floats(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER, allow_nan=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=4)
sha256_hex = st.binary(min_size=32, max_size=32).map(bytes.hex)


def _extras(known: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.text().filter(lambda key: key not in known), json_values, max_size=2)


subjects = st.builds(
    ResourceDescriptor,
    name=st.none() | st.text(),
    uri=st.none() | st.text(),
    digest=st.dictionaries(st.just("sha256"), sha256_hex, min_size=1)
    | st.fixed_dictionaries({"sha256": sha256_hex, "gitCommit": st.text(min_size=1)}),
    content=st.none() | st.binary(max_size=16),
    media_type=st.none() | st.text(),
    annotations=st.none() | json_objects,
    unrecognized_fields=_extras(
        {"name", "uri", "digest", "content", "downloadLocation", "mediaType", "annotations"}
    ),
)
statements = st.builds(
    Statement,
    subject=st.lists(subjects, min_size=1, max_size=3),
    predicate_type=st.text(min_size=1),
    predicate=st.none() | json_objects,
    unrecognized_fields=_extras({"_type", "subject", "predicateType", "predicate"}),
)


@given(statement=statements)
def test_statement_round_trips(statement: Statement) -> None:
    encoded = statement.to_bytes()
    parsed = Statement.from_bytes(encoded)
    assert parsed == statement
    assert parsed.to_bytes() == encoded
    assert Statement.from_dict(statement.to_dict()) == statement
