"""Events: the immutable records of the log (DESIGN §2, a contract).

An event answers the auditor's six questions: who (`actor`), what (`action`), when
(`timestamp`), on what (`subject`, with a digest where it has content), with what outcome
(`metadata.outcome`) and from where (`metadata.origin`). Callers build a `Draft`; the
ledger turns it into an `Event` by giving it an id, a sequence number and the registry's
timestamp, then stores the canonical bytes of `Event.body()`.

>>> draft = Draft(action="register", actor=Actor("user", "alice"),
...               subject=Ref("model", "churn"), metadata={"outcome": "success"})
>>> event = draft.seal(event_id="0190f000-0000-7000-8000-000000000000", seq=0,
...                    timestamp="2024-05-15T09:00:00.000000Z")
>>> Event.from_bytes(event.canonical_bytes()) == event
True
>>> event.event_sha256 == sha256_hex(event.canonical_bytes())
True
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from mltrail.canonical import canonicalize, encode_string, loads
from mltrail.errors import FormatError, InvalidInputError

__all__ = [
    "CANONICAL_TIMESTAMP",
    "Action",
    "Actor",
    "Draft",
    "Event",
    "Ref",
    "SubjectType",
    "format_timestamp",
    "now_timestamp",
    "parse_timestamp",
    "require_timestamp",
    "sha256_hex",
    "uuid7",
]


class Action(StrEnum):
    """What an event records. DESIGN §2 lists the minimum; the set may grow."""

    REGISTER = "register"
    ATTEST = "attest"
    APPROVE = "approve"
    REJECT = "reject"
    PROMOTE = "promote"
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    RETIRE = "retire"
    GRANT_ACCESS = "grant_access"
    REVOKE_ACCESS = "revoke_access"
    ACCESS = "access"
    LOG_PREDICTIONS = "log_predictions"
    SET_POLICY = "set_policy"
    SET_ALIAS = "set_alias"
    ERASE = "erase"
    RECONCILE = "reconcile"
    RESOLVE = "resolve"
    REPRODUCE = "reproduce"
    HOLD = "hold"
    RELEASE = "release"
    VALIDATE = "validate"
    CORRECT = "correct"
    INIT = "init"
    UPGRADE = "upgrade"
    NOTE = "note"


class SubjectType(StrEnum):
    """The kinds of things events are about."""

    DATASET = "dataset"
    COMMIT = "commit"
    ENVIRONMENT = "environment"
    RUN = "run"
    MODEL = "model"
    MODEL_VERSION = "model_version"
    DEPLOYMENT = "deployment"
    PREDICTION = "prediction"
    PREDICTION_BATCH = "prediction_batch"
    ARTIFACT = "artifact"
    ATTESTATION = "attestation"
    POLICY = "policy"
    PRINCIPAL = "principal"
    REGISTRY = "registry"


ACTOR_TYPES = frozenset({"user", "service", "registry"})
CANONICAL_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
MAX_ID_LENGTH = 512


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, the only timestamp form events carry."""
    if moment.tzinfo is None:
        raise InvalidInputError(f"timestamp {moment.isoformat()} has no timezone; use UTC")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (any offset, optional fraction) into aware UTC.

    Raises:
        InvalidInputError: the text is not RFC 3339 or has no timezone.
    """
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidInputError(
            f"time {text!r} is not RFC 3339", hint="write it like 2024-06-01T09:30:00Z"
        ) from exc
    if moment.tzinfo is None:
        raise InvalidInputError(
            f"time {text!r} has no timezone", hint="add Z for UTC: 2024-06-01T09:30:00Z"
        )
    return moment.astimezone(UTC)


def now_timestamp() -> str:
    """The registry clock, formatted for an event."""
    return format_timestamp(datetime.now(UTC))


def uuid7(unix_ms: int | None = None, random: bytes | None = None) -> str:
    """A UUID version 7 (RFC 9562 §5.7): 48-bit Unix milliseconds then random bits.

    ``random`` (10 bytes, of which the version and variant bits are overwritten) defaults
    to fresh ones from the OS; the ledger draws a batch's at once.
    """
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    tail = bytearray(os.urandom(10) if random is None else random[:10])  # octets 6..15
    tail[0] = 0x70 | tail[0] & 0x0F  # version 7 in the high nibble of octet 6
    tail[2] = 0x80 | tail[2] & 0x3F  # RFC 9562 variant (0b10) in octet 8
    text = ((ms & 0xFFFF_FFFF_FFFF).to_bytes(6, "big") + tail).hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def require_timestamp(value: object) -> str:
    """``value`` if it is an event timestamp (RFC 3339 UTC, microseconds), else FormatError."""
    if not isinstance(value, str) or not CANONICAL_TIMESTAMP.match(value):
        raise FormatError(
            "event field timestamp must be RFC 3339 UTC with microseconds "
            f"(2024-05-15T09:00:00.000000Z), got {value!r}"
        )
    return value


def _require_text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise FormatError(
            f"event field {where} must be a non-empty string of at most {MAX_ID_LENGTH} "
            f"characters, got {value!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a user, a service account, or the registry itself."""

    type: str
    id: str

    def __post_init__(self) -> None:
        if self.type not in ACTOR_TYPES:
            raise FormatError(
                f"event field actor.type must be one of {sorted(ACTOR_TYPES)}, got {self.type!r}"
            )
        _require_text(self.id, "actor.id")

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}

    @classmethod
    def from_dict(cls, data: Any) -> Actor:
        if not isinstance(data, dict):
            raise FormatError(f"event field actor must be an object, got {data!r}")
        return cls(type=data.get("type"), id=data.get("id"))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to a thing: a subject, or a `related` entry with its lineage role."""

    type: str
    id: str
    role: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        _require_text(self.type, "type")
        _require_text(self.id, "id")
        if self.role is not None:
            _require_text(self.role, "role")
        if self.digest is not None and not _SHA256.match(self.digest):
            raise FormatError(
                f"digest of {self.type} {self.id!r} must be 64 lower-case hex characters "
                f"(SHA-256), got {self.digest!r}"
            )

    def to_dict(self) -> dict[str, str]:
        out = {"type": self.type, "id": self.id}
        if self.role is not None:
            out["role"] = self.role
        if self.digest is not None:
            out["digest"] = self.digest
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Ref:
        if not isinstance(data, dict):
            raise FormatError(f"event reference must be an object, got {data!r}")
        unknown = set(data) - {"type", "id", "role", "digest"}
        if unknown:
            raise FormatError(f"event reference has unknown fields {sorted(unknown)}")
        # __post_init__ checks each field's type and says which one is wrong.
        return cls(data.get("type"), data.get("id"), data.get("role"), data.get("digest"))  # type: ignore[arg-type]

    def key(self) -> tuple[str, str]:
        return (self.type, self.id)


def _ref_json(ref: Ref) -> str:
    """RFC 8785 of `Ref.to_dict` (keys digest, id, role, type are already in sorted order)."""
    q = encode_string
    digest = "" if ref.digest is None else '"digest":' + q(ref.digest) + ","
    role = "" if ref.role is None else ',"role":' + q(ref.role)
    return "{" + digest + '"id":' + q(ref.id) + role + ',"type":' + q(ref.type) + "}"


@dataclass(frozen=True, slots=True)
class Draft:
    """An event before the ledger gives it an id, a sequence number and a timestamp."""

    action: str
    actor: Actor
    subject: Ref
    related: Sequence[Ref] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    artifact_sha256: str | None = None

    def __post_init__(self) -> None:
        _require_text(self.action, "action")
        if self.subject.role is not None:
            raise FormatError("event field subject cannot have a role; roles belong in related")
        if not isinstance(self.metadata, Mapping):
            raise FormatError("event field metadata must be an object")
        if self.artifact_sha256 is not None and not _SHA256.match(self.artifact_sha256):
            raise FormatError(
                "event field integrity.artifact_sha256 must be 64 lower-case hex characters, "
                f"got {self.artifact_sha256!r}"
            )

    def seal(self, *, event_id: str, seq: int, timestamp: str) -> Event:
        """Fix the draft into an event at position ``seq``."""
        return Event(
            event_id=event_id,
            seq=seq,
            action=self.action,
            actor=self.actor,
            timestamp=timestamp,
            subject=self.subject,
            related=tuple(self.related),
            metadata=dict(self.metadata),
            artifact_sha256=self.artifact_sha256,
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the log. Its canonical bytes are the record.

    ``event_sha256`` is the SHA-256 of the RFC 8785 bytes of the event without
    ``integrity.event_sha256``, ``integrity.signature`` and ``integrity.key_id``, which
    is exactly what :meth:`body` returns.
    """

    event_id: str
    seq: int
    action: str
    actor: Actor
    timestamp: str
    subject: Ref
    related: tuple[Ref, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    artifact_sha256: str | None = None

    def __post_init__(self) -> None:
        _require_text(self.event_id, "event_id")
        _require_text(self.action, "action")
        if type(self.seq) is not int or self.seq < 0:
            raise FormatError(f"event field seq must be a non-negative integer, got {self.seq!r}")
        require_timestamp(self.timestamp)

    def body(self) -> dict[str, Any]:
        """The hashed form: the wire form without event digest and signature."""
        integrity = (
            {} if self.artifact_sha256 is None else {"artifact_sha256": self.artifact_sha256}
        )
        return {
            "event_id": self.event_id,
            "seq": self.seq,
            "action": self.action,
            "actor": self.actor.to_dict(),
            "timestamp": self.timestamp,
            "subject": self.subject.to_dict(),
            "related": [ref.to_dict() for ref in self.related],
            "metadata": dict(self.metadata),
            "integrity": integrity,
        }

    def canonical_bytes(self) -> bytes:
        """RFC 8785 bytes of :meth:`body`: what is stored, hashed and proven.

        Built piecewise: the body's keys are fixed and RFC 8785 sorts them (action, actor,
        event_id, integrity, metadata, related, seq, subject, timestamp), so only the values
        need encoding. A property test holds this equal to ``canonicalize(self.body())``.

        Raises:
            FormatError: a value cannot be canonicalized (e.g. a lone surrogate).
        """
        q = encode_string
        digest = self.artifact_sha256
        text = "".join((
            '{"action":', q(self.action),
            ',"actor":{"id":', q(self.actor.id), ',"type":', q(self.actor.type),
            '},"event_id":', q(self.event_id),
            ',"integrity":', "{}" if digest is None else '{"artifact_sha256":' + q(digest) + "}",
            ',"metadata":', canonicalize(dict(self.metadata)).decode("utf-8"),
            ',"related":[', ",".join(_ref_json(ref) for ref in self.related),
            '],"seq":', str(self.seq),
            ',"subject":', _ref_json(self.subject),
            ',"timestamp":', q(self.timestamp), "}",
        ))  # fmt: skip
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise FormatError(
                f"event {self.event_id} holds a lone surrogate: {exc.reason}"
            ) from exc

    @property
    def event_sha256(self) -> str:
        return sha256_hex(self.canonical_bytes())

    @property
    def outcome(self) -> str:
        return str(self.metadata.get("outcome", "success"))

    def to_wire(self, *, signature: str | None = None, key_id: str | None = None) -> dict[str, Any]:
        """The wire form of DESIGN §2, with ``integrity.event_sha256`` filled in."""
        wire = self.body()
        wire["integrity"]["event_sha256"] = self.event_sha256
        if signature is not None:
            wire["integrity"]["signature"] = signature
            wire["integrity"]["key_id"] = key_id
        return wire

    @classmethod
    def from_bytes(cls, data: bytes) -> Event:
        """Parse stored canonical bytes back into an event.

        Raises:
            FormatError: the bytes are not an event body (the message names the field).
        """
        return cls.from_dict(loads(data))

    @classmethod
    def from_dict(cls, data: Any) -> Event:
        """Build an event from its body or wire form (integrity digests are ignored)."""
        if not isinstance(data, dict):
            raise FormatError("an event must be a JSON object")
        missing = {"event_id", "seq", "action", "actor", "timestamp", "subject"} - set(data)
        if missing:
            raise FormatError(f"event is missing fields {sorted(missing)}")
        related = data.get("related", [])
        metadata = data.get("metadata", {})
        integrity = data.get("integrity", {})
        if not isinstance(related, list) or not isinstance(metadata, dict):
            raise FormatError("event fields related and metadata must be a list and an object")
        if not isinstance(integrity, dict):
            raise FormatError("event field integrity must be an object")
        return cls(
            event_id=data["event_id"],
            seq=data["seq"],
            action=data["action"],
            actor=Actor.from_dict(data["actor"]),
            timestamp=data["timestamp"],
            subject=Ref.from_dict(data["subject"]),
            related=tuple(Ref.from_dict(item) for item in related),
            metadata=metadata,
            artifact_sha256=integrity.get("artifact_sha256"),
        )
