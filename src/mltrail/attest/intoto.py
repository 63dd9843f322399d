"""in-toto Statement v1: the claim an attestation makes about artifacts, by digest.

A Statement binds a predicate (test results, SLSA provenance) to subjects identified by
their digests (in-toto/attestation ``spec/v1``). Statements are signed as DSSE envelopes
with payloadType ``application/vnd.in-toto+json`` over their RFC 8785 canonical bytes.

>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> key = Ed25519PrivateKey.from_private_bytes(bytes(32))
>>> model = ResourceDescriptor(name="model.onnx", digest={"sha256": "ab" * 32})
>>> config = ResourceDescriptor(uri="https://ci.example.com/eval.yaml")
>>> statement = Statement(
...     subject=[model],
...     predicate_type=TEST_RESULT,
...     predicate=test_result_predicate("PASSED", [config], passed_tests=["auc>=0.9"]),
... )
>>> envelope = sign_statement(statement, key)
>>> opened = open_statement(envelope, [key.public_key()])
>>> opened == statement, matches_subject(opened, "ab" * 32)
(True, True)
>>> opened.predicate["result"]
'PASSED'
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from mltrail.attest.dsse import PrivateKey, PublicKey, sign_envelope, verify_envelope
from mltrail.canonical import canonicalize, loads
from mltrail.errors import FormatError, InvalidInputError

__all__ = [
    "PAYLOAD_TYPE",
    "SLSA_PROVENANCE",
    "STATEMENT_TYPE",
    "TEST_RESULT",
    "Outcome",
    "ResourceDescriptor",
    "Statement",
    "matches_subject",
    "open_statement",
    "sign_statement",
    "test_result_predicate",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"

Outcome = Literal["PASSED", "WARNED", "FAILED"]
_OUTCOMES = ("PASSED", "WARNED", "FAILED")

# spec/v1/digest_set.md: the named standard algorithms use lowercase hex; the fixed-size
# ones are also checked for length. Other algorithm names (gitCommit, dirHash, ...) pass.
_HEX_ALGORITHMS = frozenset(
    {"shake128", "shake256", "blake2b", "blake2s", "ripemd160", "sm3", "gost"}
)
_HEX_LENGTHS = {
    "md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128,
    "sha512_224": 56, "sha512_256": 64, "sha3_224": 56, "sha3_256": 64, "sha3_384": 96,
    "sha3_512": 128,
}  # fmt: skip
_LOWER_HEX = re.compile(r"[0-9a-f]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")

# JSON field name -> attribute name, in the order to_dict writes them.
_RD_FIELDS = {
    "name": "name",
    "uri": "uri",
    "digest": "digest",
    "content": "content",
    "downloadLocation": "download_location",
    "mediaType": "media_type",
    "annotations": "annotations",
}
_STATEMENT_FIELDS = frozenset({"_type", "subject", "predicateType", "predicate"})


@dataclass(frozen=True, slots=True)
class ResourceDescriptor:
    """An artifact or resource (spec/v1/resource_descriptor.md).

    All fields are optional, but one of ``uri``, ``digest`` or ``content`` must be set.
    ``content`` holds the raw bytes (base64 in JSON). ``unrecognized_fields`` keeps JSON
    fields this version does not know, so that ``to_dict`` writes them back.

    Raises:
        InvalidInputError: a field has the wrong type, a digest is not lowercase hex of
            the right length for its algorithm, or none of uri/digest/content is set.
    """

    name: str | None = None
    uri: str | None = None
    digest: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    download_location: str | None = None
    media_type: str | None = None
    annotations: Mapping[str, Any] | None = None
    unrecognized_fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for attr in ("name", "uri", "download_location", "media_type"):
            _check_optional_str(getattr(self, attr), attr)
        if self.content is not None and not isinstance(self.content, bytes):
            raise InvalidInputError("resource descriptor content must be bytes")
        _check_digest_set(self.digest)
        if self.annotations is not None:
            _set(self, "annotations", _json_object(self.annotations, "annotations"))
        _check_unrecognized(self.unrecognized_fields, _RD_FIELDS.keys())
        if self.uri is None and not self.digest and self.content is None:
            raise InvalidInputError(
                "a resource descriptor must set at least one of uri, digest or content"
            )
        _set(self, "digest", dict(self.digest))
        _set(self, "unrecognized_fields", _json_object(self.unrecognized_fields, "fields"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResourceDescriptor:
        """Build from its JSON object; unknown fields are kept.

        Raises:
            FormatError: the object is not a valid ResourceDescriptor.
        """
        _require_object(data, "resource descriptor", FormatError)
        values = {attr: data[key] for key, attr in _RD_FIELDS.items() if key in data}
        for attr, value in values.items():
            if value is None:
                raise FormatError(f"resource descriptor field {attr!r} must not be null")
        if "content" in values:
            values["content"] = _decode_content(values["content"])
        extra = {key: value for key, value in data.items() if key not in _RD_FIELDS}
        with _format_errors():
            return cls(**values, unrecognized_fields=extra)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, unknown fields included; unset fields are left out."""
        result: dict[str, Any] = {}
        for key, attr in _RD_FIELDS.items():
            value = getattr(self, attr)
            if value is None or (attr == "digest" and not value):
                continue
            if attr == "content":
                value = base64.b64encode(value).decode("ascii")
            result[key] = copy.deepcopy(value)
        result.update(copy.deepcopy(dict(self.unrecognized_fields)))
        return result


@dataclass(frozen=True, slots=True)
class Statement:
    """An in-toto Statement v1 (spec/v1/statement.md).

    Args:
        subject: the artifacts the claim is about; at least one, each with a digest.
        predicate_type: URI naming the predicate's schema (e.g. ``TEST_RESULT``).
        predicate: the claim itself, a JSON object; ``None`` leaves it unset, which the
            spec treats like an empty object.
        unrecognized_fields: top-level JSON fields this version does not know.

    Raises:
        InvalidInputError: an invariant does not hold (empty subject, a subject without a
            digest, an empty predicate type, ...).
    """

    subject: Sequence[ResourceDescriptor]
    predicate_type: str
    predicate: Mapping[str, Any] | None = None
    unrecognized_fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.subject, str | bytes) or not isinstance(self.subject, Sequence):
            raise InvalidInputError("statement subject must be a list of ResourceDescriptors")
        _set(self, "subject", tuple(self.subject))
        _check_subject(self.subject)
        if not isinstance(self.predicate_type, str) or not self.predicate_type:
            raise InvalidInputError("statement predicateType must be a non-empty URI string")
        if self.predicate is not None:
            _set(self, "predicate", _json_object(self.predicate, "statement predicate"))
        _check_unrecognized(self.unrecognized_fields, _STATEMENT_FIELDS)
        _set(self, "unrecognized_fields", _json_object(self.unrecognized_fields, "fields"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Statement:
        """Build from the Statement's JSON object; unknown fields are kept.

        Raises:
            FormatError: the object is not a valid in-toto Statement v1.
        """
        _require_object(data, "in-toto statement", FormatError)
        if data.get("_type") != STATEMENT_TYPE:
            raise FormatError(
                f"statement _type is {data.get('_type')!r}, expected {STATEMENT_TYPE!r}"
            )
        subject = data.get("subject")
        if not isinstance(subject, list):
            raise FormatError("statement subject must be a list of resource descriptors")
        predicate_type = data.get("predicateType")
        if not isinstance(predicate_type, str):
            raise FormatError("statement predicateType must be a URI string")
        if "predicate" in data and not isinstance(data["predicate"], Mapping):
            raise FormatError("statement predicate must be a JSON object when present")
        extra = {key: value for key, value in data.items() if key not in _STATEMENT_FIELDS}
        with _format_errors():
            return cls(
                subject=[ResourceDescriptor.from_dict(item) for item in subject],
                predicate_type=predicate_type,
                predicate=data.get("predicate"),
                unrecognized_fields=extra,
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, unknown fields included."""
        result: dict[str, Any] = {
            "_type": STATEMENT_TYPE,
            "subject": [item.to_dict() for item in self.subject],
            "predicateType": self.predicate_type,
        }
        if self.predicate is not None:
            result["predicate"] = copy.deepcopy(dict(self.predicate))
        result.update(copy.deepcopy(dict(self.unrecognized_fields)))
        return result

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Statement:
        """Parse JSON (strictly: no duplicate keys, NaN or unsafe integers).

        Raises:
            FormatError: the bytes are not JSON or not a valid Statement.
        """
        return cls.from_dict(loads(data))

    def to_bytes(self) -> bytes:
        """The RFC 8785 canonical JSON bytes: what is signed and hashed.

        Raises:
            FormatError: the predicate holds a value JSON cannot carry exactly.
        """
        return canonicalize(self.to_dict())


def sign_statement(
    statement: Statement, private_key: PrivateKey, keyid: str | None = None
) -> dict[str, Any]:
    """Sign a Statement's canonical bytes as a DSSE envelope (payloadType ``PAYLOAD_TYPE``).

    Args:
        statement: the statement to sign.
        private_key: an Ed25519 or ECDSA P-256 private key.
        keyid: the envelope's key hint; defaults to ``dsse.key_id`` of the public key.

    Returns:
        The DSSE envelope as a JSON-ready dict.

    Raises:
        FormatError: the statement cannot be canonicalised.
        InvalidInputError: the key is not Ed25519 or P-256.
    """
    return sign_envelope(PAYLOAD_TYPE, statement.to_bytes(), private_key, keyid)


def open_statement(envelope: Mapping[str, Any], public_keys: Iterable[PublicKey]) -> Statement:
    """Verify a DSSE envelope, then parse the in-toto Statement it carries.

    The signature is checked before anything in the payload is parsed.

    Raises:
        VerificationError: no signature verifies with the trusted keys.
        FormatError: the envelope is malformed, its payloadType is not ``PAYLOAD_TYPE``,
            or the payload is not a valid Statement.
    """
    payload = verify_envelope(envelope, public_keys)
    if envelope["payloadType"] != PAYLOAD_TYPE:
        raise FormatError(
            f"envelope payloadType is {envelope['payloadType']!r}, expected {PAYLOAD_TYPE!r}"
        )
    return Statement.from_bytes(payload)


def test_result_predicate(
    result: Outcome,
    configuration: Sequence[ResourceDescriptor | Mapping[str, Any]],
    passed_tests: Sequence[str] = (),
    warned_tests: Sequence[str] = (),
    failed_tests: Sequence[str] = (),
    url: str | None = None,
) -> dict[str, Any]:
    """Build a test-result v0.1 predicate (in-toto ``spec/predicates/test-result.md``).

    Use it with ``predicate_type=TEST_RESULT``. The three test lists are always written,
    empty or not; ``url`` only when given.

    Args:
        result: ``"PASSED"``, ``"WARNED"`` or ``"FAILED"``.
        configuration: the configuration used for the run, as ResourceDescriptors or
            their JSON objects (validated).
        passed_tests: names of tests that passed without warnings.
        warned_tests: names of tests that passed with warnings.
        failed_tests: names of tests that failed.
        url: a link to the test run (logs).

    Returns:
        The predicate as a JSON-ready dict.

    Raises:
        InvalidInputError: an argument is out of range or of the wrong type.
    """
    if result not in _OUTCOMES:
        raise InvalidInputError(f"test result must be one of {_OUTCOMES}, not {result!r}")
    predicate: dict[str, Any] = {
        "result": result,
        "configuration": [_descriptor_dict(item) for item in _as_list(configuration)],
        "passedTests": _test_names(passed_tests, "passed_tests"),
        "warnedTests": _test_names(warned_tests, "warned_tests"),
        "failedTests": _test_names(failed_tests, "failed_tests"),
    }
    if url is not None:
        if not isinstance(url, str) or not url:
            raise InvalidInputError("test result url must be a non-empty string")
        predicate["url"] = url
    return predicate


# The name starts with "test_"; stop pytest collecting it from modules that import it.
test_result_predicate.__test__ = False  # type: ignore[attr-defined]


def matches_subject(statement: Statement, digest_hex: str) -> bool:
    """Whether any subject of ``statement`` has this SHA-256 digest.

    Subjects are matched purely by digest (spec/v1/statement.md).

    Args:
        statement: the statement to search.
        digest_hex: 64 hex digits, optionally prefixed ``sha256:``; case is ignored.

    Raises:
        InvalidInputError: ``digest_hex`` is not a SHA-256 hex digest.
    """
    wanted = digest_hex.removeprefix("sha256:").lower() if isinstance(digest_hex, str) else ""
    if not _SHA256.fullmatch(wanted):
        raise InvalidInputError(f"expected a SHA-256 digest as 64 hex digits, got {digest_hex!r}")
    return any(item.digest.get("sha256") == wanted for item in statement.subject)


@contextmanager
def _format_errors() -> Iterator[None]:
    """Report invariant failures met while parsing as the one FormatError of STYLE §4."""
    try:
        yield
    except FormatError:
        raise
    except InvalidInputError as exc:
        raise FormatError(exc.message, errors=exc.errors) from exc


def _set(instance: object, attr: str, value: object) -> None:
    # Frozen dataclasses normalise their own fields in __post_init__ this way.
    object.__setattr__(instance, attr, value)


def _check_subject(subject: Sequence[ResourceDescriptor]) -> None:
    if not subject:
        raise InvalidInputError("statement subject must list at least one artifact")
    for index, item in enumerate(subject):
        if not isinstance(item, ResourceDescriptor):
            raise InvalidInputError(f"statement subject[{index}] is not a ResourceDescriptor")
        if not item.digest:
            raise InvalidInputError(f"statement subject[{index}] must have a digest")


def _check_digest_set(digest: object) -> None:
    for algorithm, value in _require_object(digest, "digest set").items():
        if not algorithm or not isinstance(value, str) or not value:
            raise InvalidInputError(
                f"digest {algorithm!r} must map a non-empty name to a non-empty string"
            )
        expected = _HEX_LENGTHS.get(algorithm)
        hex_only = expected is not None or algorithm in _HEX_ALGORITHMS
        if hex_only and not _LOWER_HEX.fullmatch(value):
            raise InvalidInputError(f"digest {algorithm} must be lowercase hex, got {value!r}")
        if expected is not None and len(value) != expected:
            raise InvalidInputError(
                f"digest {algorithm} must have {expected} hex digits, got {len(value)}"
            )


def _require_object(
    value: object, what: str, error: type[InvalidInputError] = InvalidInputError
) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise error(f"{what} must be a JSON object with string keys")
    return value


def _json_object(value: object, what: str) -> dict[str, Any]:
    """A deep copy of ``value`` as a dict, so later changes to the input cannot leak in."""
    return copy.deepcopy(dict(_require_object(value, what)))


def _check_optional_str(value: object, attr: str) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(
            f"resource descriptor {attr} must be a string, not {type(value).__name__}"
        )


def _check_unrecognized(fields: object, known: Iterable[str]) -> None:
    clash = sorted(set(_require_object(fields, "unrecognized fields")) & set(known))
    if clash:
        raise InvalidInputError(f"unrecognized_fields must not repeat known fields {clash}")


def _decode_content(value: object) -> bytes:
    # Protobuf's JSON mapping for `bytes` reads standard or URL-safe base64.
    if not isinstance(value, str):
        raise FormatError("resource descriptor content must be a base64 string")
    text = value.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise FormatError(f"resource descriptor content is not valid base64: {exc}") from exc


def _descriptor_dict(item: object) -> dict[str, Any]:
    if isinstance(item, ResourceDescriptor):
        return item.to_dict()
    if isinstance(item, Mapping):
        return ResourceDescriptor.from_dict(item).to_dict()
    raise InvalidInputError("test configuration entries must be ResourceDescriptors")


def _as_list(items: object) -> list[Any]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise InvalidInputError(f"expected a list, not {type(items).__name__}")
    return list(items)


def _test_names(names: Sequence[str], argument: str) -> list[str]:
    result = _as_list(names)
    if not all(isinstance(name, str) and name for name in result):
        raise InvalidInputError(f"{argument} must be a list of non-empty test names")
    return result
