"""DSSE envelopes against the upstream known answers in tests/vectors/dsse/."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from mltrail.attest.dsse import (
    DETERMINISTIC_ECDSA,
    PublicKey,
    key_id,
    load_public_key,
    pae,
    public_key_pem,
    sign_envelope,
    verify_envelope,
)
from mltrail.errors import FormatError, InvalidInputError, VerificationError

_DSSE = Path(__file__).resolve().parents[2] / "vectors" / "dsse"
PAE_CASES = json.loads((_DSSE / "pae_vectors.json").read_text("utf-8"))["cases"]
CROSS = json.loads((_DSSE / "ed25519_cross_lang.json").read_text("utf-8"))
SPEC = json.loads((_DSSE / "dsse_spec_vector.json").read_text("utf-8"))

ED_KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(CROSS["key"]["test_seed_hex"]))
SPEC_KEY = ec.derive_private_key(int(SPEC["key"]["d"]), ec.SECP256R1())
OTHER_ED = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_P256 = ec.derive_private_key(12345678901234567890, ec.SECP256R1())


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def raw_to_der_b64(sig_b64: str) -> str:
    raw = b64(sig_b64)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    return base64.b64encode(encode_dss_signature(r, s)).decode()


def der_to_raw(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# --- PAE -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", PAE_CASES, ids=[c["name"] for c in PAE_CASES])
def test_pae_matches_vector(case: dict[str, Any]) -> None:
    encoded = pae(case["payload_type"], b64(case["payload_b64"]))
    assert encoded == b64(case["pae_b64"])
    if "pae_utf8" in case:
        assert encoded == case["pae_utf8"].encode("utf-8")


@pytest.mark.parametrize("fixture", CROSS["fixtures"], ids=[f["name"] for f in CROSS["fixtures"]])
def test_pae_matches_cross_language_fixture(fixture: dict[str, Any]) -> None:
    assert pae(fixture["payload_type"], b64(fixture["payload_b64"])) == b64(fixture["pae_b64"])


def test_pae_counts_utf8_bytes_not_characters() -> None:
    wrong = next(n for n in CROSS["negative"] if n["name"] == "unicode_type_char_length_pae")
    assert pae("application/vnd.example.ünïcødé+json", b'{"k":"v"}') != b64(wrong["pae_b64_wrong"])
    assert pae("é", b"").startswith(b"DSSEv1 2 ")


def test_pae_rejects_unencodable_type() -> None:
    with pytest.raises(InvalidInputError):
        pae("\ud800", b"")


# --- DSSE spec vector (ECDSA P-256) -------------------------------------------------------


def test_spec_key_matches_published_numbers_and_pem(vectors: Path) -> None:
    spec = json.loads((vectors / "dsse" / "dsse_spec_vector.json").read_text("utf-8"))
    numbers = load_public_key(spec["key"]["public_key_pem"]).public_numbers()  # type: ignore[union-attr]
    assert (numbers.x, numbers.y) == (int(spec["key"]["x"]), int(spec["key"]["y"]))
    assert public_key_pem(SPEC_KEY) == spec["key"]["public_key_pem"]


def test_spec_der_signature_is_the_raw_signature_reencoded() -> None:
    raw = SPEC["envelope"]["signatures"][0]["sig"]
    assert raw_to_der_b64(raw) == SPEC["signature_der_b64"]


@pytest.mark.parametrize("form", ["raw", "der"])
def test_spec_envelope_verifies(form: str) -> None:
    envelope = json.loads(json.dumps(SPEC["envelope"]))
    if form == "der":
        envelope["signatures"][0]["sig"] = SPEC["signature_der_b64"]
    key = load_public_key(SPEC["key"]["public_key_pem"])
    assert verify_envelope(envelope, [key]) == b"hello world"


def test_spec_envelope_pae_is_the_spec_hello_world() -> None:
    # The vector file's payload_b64/pae_utf8 fields describe {"k":"v"}, but its envelope
    # and signature are the DSSE spec's "hello world" example; the signature decides.
    envelope = SPEC["envelope"]
    message = pae(envelope["payloadType"], b64(envelope["payload"]))
    assert message == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_spec_signature_does_not_cover_another_body() -> None:
    envelope = dict(SPEC["envelope"], payload=SPEC["payload_b64"])
    with pytest.raises(VerificationError):
        verify_envelope(envelope, [SPEC_KEY.public_key()])


@pytest.mark.skipif(not DETERMINISTIC_ECDSA, reason="needs RFC 6979 (cryptography >= 44)")
def test_deterministic_ecdsa_reproduces_spec_signature() -> None:
    envelope = sign_envelope("http://example.com/HelloWorld", b"hello world", SPEC_KEY)
    der = b64(envelope["signatures"][0]["sig"])
    assert der == b64(SPEC["signature_der_b64"])
    assert base64.b64encode(der_to_raw(der)).decode() == SPEC["envelope"]["signatures"][0]["sig"]
    assert envelope["payload"] == SPEC["envelope"]["payload"]
    assert envelope["payloadType"] == SPEC["envelope"]["payloadType"]


def test_cryptography_rfc6979_reproduces_spec_signature_directly() -> None:
    if not DETERMINISTIC_ECDSA:
        pytest.skip("needs RFC 6979 (cryptography >= 44)")
    algorithm = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    der = SPEC_KEY.sign(b"DSSEv1 29 http://example.com/HelloWorld 11 hello world", algorithm)
    assert der == b64(SPEC["signature_der_b64"])


# --- Ed25519 cross-language fixtures ------------------------------------------------------


def test_ed25519_key_and_keyid_match_vector(vectors: Path) -> None:
    data = json.loads((vectors / "dsse" / "ed25519_cross_lang.json").read_text("utf-8"))
    from_pem = load_public_key(data["key"]["public_key_pem"].encode())
    from_raw = load_public_key(bytes.fromhex(data["key"]["public_key_raw_hex"]))
    assert public_key_pem(from_pem) == public_key_pem(from_raw) == public_key_pem(ED_KEY)
    assert key_id(from_pem) == data["key"]["keyid"]


@pytest.mark.parametrize("fixture", CROSS["fixtures"], ids=[f["name"] for f in CROSS["fixtures"]])
def test_ed25519_signing_reproduces_fixture(fixture: dict[str, Any]) -> None:
    envelope = sign_envelope(fixture["payload_type"], b64(fixture["payload_b64"]), ED_KEY)
    assert envelope == fixture["envelope"]
    assert envelope["signatures"][0]["sig"] == fixture["signature_b64"]


@pytest.mark.parametrize("fixture", CROSS["fixtures"], ids=[f["name"] for f in CROSS["fixtures"]])
def test_ed25519_fixture_verifies(fixture: dict[str, Any]) -> None:
    key = load_public_key(CROSS["key"]["public_key_pem"])
    assert verify_envelope(fixture["envelope"], [key]) == b64(fixture["payload_b64"])


TAMPERED = [n for n in CROSS["negative"] if "payload_b64" in n]


@pytest.mark.parametrize("case", TAMPERED, ids=[n["name"] for n in TAMPERED])
def test_ed25519_tampered_envelope_rejected(case: dict[str, Any]) -> None:
    envelope = {
        "payloadType": case["payload_type"],
        "payload": case["payload_b64"],
        "signatures": [{"keyid": CROSS["key"]["keyid"], "sig": case["signature_b64"]}],
    }
    with pytest.raises(VerificationError):
        verify_envelope(envelope, [ED_KEY.public_key()])


def test_signature_over_character_length_pae_does_not_verify() -> None:
    case = next(n for n in CROSS["negative"] if n["name"] == "unicode_type_char_length_pae")
    public = ED_KEY.public_key()
    with pytest.raises(InvalidSignature):
        public.verify(b64(case["signature_b64"]), b64(case["pae_b64_wrong"]))


# --- keys and trust -----------------------------------------------------------------------


WRONG_KEYS = {
    "other_ed25519": [OTHER_ED.public_key()],
    "other_p256": [OTHER_P256.public_key()],
    "both_others": [OTHER_P256.public_key(), OTHER_ED.public_key()],
}


@pytest.mark.parametrize("keys", WRONG_KEYS.values(), ids=WRONG_KEYS.keys())
def test_ed25519_envelope_rejected_by_wrong_keys(keys: list[Any]) -> None:
    with pytest.raises(VerificationError):
        verify_envelope(CROSS["fixtures"][0]["envelope"], keys)


@pytest.mark.parametrize("keys", WRONG_KEYS.values(), ids=WRONG_KEYS.keys())
def test_p256_envelope_rejected_by_wrong_keys(keys: list[Any]) -> None:
    with pytest.raises(VerificationError):
        verify_envelope(SPEC["envelope"], keys)


def test_keyid_hint_is_not_trusted() -> None:
    # A signature verifies whatever its keyid says, and a forged keyid lets nothing in.
    envelope = sign_envelope("t", b"x", ED_KEY, keyid=key_id(OTHER_ED.public_key()))
    assert verify_envelope(envelope, [ED_KEY.public_key()]) == b"x"
    with pytest.raises(VerificationError):
        verify_envelope(envelope, [OTHER_ED.public_key()])


def test_one_good_signature_among_bad_ones_is_enough() -> None:
    good = sign_envelope("t", b"body", OTHER_P256)
    bad = sign_envelope("t", b"other body", ED_KEY)
    envelope = dict(good, signatures=bad["signatures"] + good["signatures"])
    keys: list[PublicKey] = [ED_KEY.public_key(), OTHER_P256.public_key()]
    assert verify_envelope(envelope, iter(keys)) == b"body"


def test_no_keys_or_no_signatures_fail_closed() -> None:
    envelope = sign_envelope("t", b"body", ED_KEY)
    with pytest.raises(VerificationError):
        verify_envelope(envelope, [])
    with pytest.raises(VerificationError):
        verify_envelope(dict(envelope, signatures=[]), [ED_KEY.public_key()])


def test_default_keyid_and_explicit_keyid() -> None:
    assert sign_envelope("t", b"", OTHER_P256)["signatures"][0]["keyid"] == key_id(
        OTHER_P256.public_key()
    )
    assert sign_envelope("t", b"", ED_KEY, keyid="k1")["signatures"][0]["keyid"] == "k1"


def test_p256_key_id_is_sha256_of_spki_der() -> None:
    public = OTHER_P256.public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key_id(public) == hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize("form", ["der", "raw"])
def test_p256_signatures_verify_as_der_or_raw(form: str) -> None:
    envelope = sign_envelope("application/json", b"{}", OTHER_P256)
    der = b64(envelope["signatures"][0]["sig"])
    assert der[0] == 0x30  # sign_envelope writes DER
    sig = der if form == "der" else der_to_raw(der)
    envelope["signatures"][0]["sig"] = base64.b64encode(sig).decode()
    assert verify_envelope(envelope, [OTHER_P256.public_key()]) == b"{}"


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
        "not a key",
    ],
    ids=["p384", "rsa", "str"],
)
def test_unsupported_keys_rejected(key: Any) -> None:
    with pytest.raises(InvalidInputError):
        sign_envelope("t", b"x", key)
    public = key.public_key() if hasattr(key, "public_key") else key
    with pytest.raises(InvalidInputError):
        key_id(public)
    with pytest.raises(InvalidInputError):
        verify_envelope(SPEC["envelope"], [public])


def test_private_key_is_not_a_trusted_key() -> None:
    with pytest.raises(InvalidInputError):
        verify_envelope(CROSS["fixtures"][0]["envelope"], [ED_KEY])  # type: ignore[list-item]


def _spki_der(key: Ed25519PublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


P256_PUBLIC = OTHER_P256.public_key()
KEY_ENCODINGS = {
    "p256_pem_str": public_key_pem(P256_PUBLIC),
    "p256_pem_bytes": public_key_pem(P256_PUBLIC).encode(),
    "p256_der": _spki_der(P256_PUBLIC),
    "p256_uncompressed": P256_PUBLIC.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    ),
    "p256_compressed": P256_PUBLIC.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    ),
}


@pytest.mark.parametrize("encoded", KEY_ENCODINGS.values(), ids=KEY_ENCODINGS.keys())
def test_load_public_key_forms(encoded: bytes | str) -> None:
    assert public_key_pem(load_public_key(encoded)) == public_key_pem(P256_PUBLIC)


BAD_KEYS = {
    "empty": b"",
    "garbage": b"not a key at all",
    "short_raw": bytes(31),
    "bad_pem": b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    "rsa_pem": rsa.generate_private_key(public_exponent=65537, key_size=1024)
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    "p384_der": _spki_der(ec.generate_private_key(ec.SECP384R1()).public_key()),
    "point_off_curve": b"\x04" + bytes(64),
}


@pytest.mark.parametrize("encoded", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_load_public_key_rejects(encoded: bytes) -> None:
    with pytest.raises(FormatError):
        load_public_key(encoded)


# --- envelope format ----------------------------------------------------------------------

GOOD = CROSS["fixtures"][0]["envelope"]


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != key}


def _with_sig(entry: Any) -> dict[str, Any]:
    return dict(GOOD, signatures=[entry])


MALFORMED: dict[str, Any] = {
    "not_an_object": [GOOD],
    "none": None,
    "missing_payloadType": _without("payloadType"),
    "missing_payload": _without("payload"),
    "missing_signatures": _without("signatures"),
    "payloadType_not_string": dict(GOOD, payloadType=7),
    "payloadType_null": dict(GOOD, payloadType=None),
    "payloadType_lone_surrogate": dict(GOOD, payloadType="\ud800"),
    "payload_not_string": dict(GOOD, payload=b"abc"),
    "payload_bad_base64_chars": dict(GOOD, payload="!!!!"),
    "payload_bad_base64_length": dict(GOOD, payload="abcde"),
    "payload_excess_padding": dict(GOOD, payload="aGk=="),
    "payload_mixed_alphabets": dict(GOOD, payload="a+b_"),
    "signatures_not_list": dict(GOOD, signatures={"sig": "AA=="}),
    "signatures_string": dict(GOOD, signatures="AA=="),
    "signature_not_object": _with_sig("AA=="),
    "signature_missing_sig": _with_sig({"keyid": "k"}),
    "signature_sig_not_string": _with_sig({"sig": 5}),
    "signature_sig_bad_base64": _with_sig({"sig": "*"}),
    "signature_keyid_not_string": _with_sig({"keyid": 1, "sig": "AA=="}),
}


@pytest.mark.parametrize("envelope", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_envelope_rejected(envelope: Any) -> None:
    with pytest.raises(FormatError):
        verify_envelope(envelope, [ED_KEY.public_key()])


def test_url_safe_unpadded_base64_accepted() -> None:
    envelope = sign_envelope("t", b"\xfb\xff\xfe?", ED_KEY)
    sig = envelope["signatures"][0]["sig"]
    urlsafe = {
        "payloadType": "t",
        "payload": base64.urlsafe_b64encode(b"\xfb\xff\xfe?").decode().rstrip("="),
        "signatures": [{"sig": sig.replace("+", "-").replace("/", "_").rstrip("=")}],
    }
    assert "-" in urlsafe["payload"] or "_" in urlsafe["payload"]
    assert verify_envelope(urlsafe, [ED_KEY.public_key()]) == b"\xfb\xff\xfe?"


@pytest.mark.parametrize(
    "args",
    [(b"type", b"x"), ("type", "x"), ("type", None)],
    ids=["type_bytes", "payload_str", "payload_none"],
)
def test_sign_envelope_rejects_bad_arguments(args: tuple[Any, Any]) -> None:
    with pytest.raises(InvalidInputError):
        sign_envelope(args[0], args[1], ED_KEY)


def test_sign_envelope_rejects_non_string_keyid() -> None:
    with pytest.raises(InvalidInputError):
        sign_envelope("t", b"x", ED_KEY, keyid=5)  # type: ignore[arg-type]


def test_envelope_is_json_serialisable_and_survives_a_round_trip() -> None:
    envelope = sign_envelope("application/vnd.in-toto+json", b'{"a":1}', OTHER_P256)
    again = json.loads(json.dumps(envelope))
    assert verify_envelope(again, [OTHER_P256.public_key()]) == b'{"a":1}'
