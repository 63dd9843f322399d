"""What an evidence dict claims, checked: its events against the checkpoint, and every
other statement against the proven events it cites.

The service builds evidence from projections; an auditor must not take its word.

- `prove_evidence` / `check_inclusion`: each event's canonical bytes hash to a leaf whose
  inclusion proof verifies against the signed checkpoint (leaf data is the event's 32-byte
  SHA-256), and the event's wire form is those bytes plus their digest.
- `verify_claims`: every statement the compliance report prints is what the proven events
  record: registered keys, the registration and manifest digest, attestations (DSSE
  signatures by the signer's registered key, subject the manifest digest), approvals
  (bound to the digest, signatures by the approver's key), the policy in force and each
  promotion decision.

Pure: no I/O, no database. `verify_claims` messages name the bundle file that failed
(``events/<i>.json``, ``attestations/<sha256>.json``, ``manifest.json``).

>>> verify_claims({"version": {}}, {})
Traceback (most recent call last):
...
mltrail.errors.VerificationError: evidence.json: missing field 'manifest'
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

from mltrail.artifacts.manifest import Manifest
from mltrail.attest import dsse, intoto
from mltrail.attest.coverage import covers_version
from mltrail.attest.dsse import PublicKey
from mltrail.canonical import canonicalize, loads
from mltrail.errors import InvalidInputError, RegistryError, VerificationError
from mltrail.ledger import merkle
from mltrail.ledger.checkpoint import Checkpoint, open_note

__all__ = [
    "Events",
    "Keys",
    "ProvenEvent",
    "ProvenEvidence",
    "check_inclusion",
    "naming",
    "prove_evidence",
    "verify_claims",
    "wire_body",
]

Events: TypeAlias = Mapping[int, Mapping[str, Any]]
"""Proven event records (parsed canonical bytes) by log index."""
Keys: TypeAlias = Mapping[str, list[tuple[str, PublicKey]]]
"""Registered signing keys by principal id: ``(key_id, key)`` pairs."""


@dataclass(frozen=True, slots=True)
class ProvenEvent:
    """An event of the evidence whose inclusion proof verified against the checkpoint.

    ``event`` is the record parsed from the canonical bytes, not the unproven wire form.
    """

    index: int
    sha256: str
    role: str
    event: Mapping[str, Any]
    checkpoint: Checkpoint

    @property
    def subject_id(self) -> str:
        """The id of what the event is about."""
        return str(self.event["subject"]["id"])


@dataclass(frozen=True, slots=True)
class ProvenEvidence:
    """The signed checkpoint of an evidence dict and its events, each proven against it."""

    checkpoint: Checkpoint
    events: Mapping[int, ProvenEvent]

    def cite(self, index: Any, what: str) -> ProvenEvent:
        """The proven event at log ``index``, which ``what`` cites.

        Raises:
            VerificationError: the evidence does not include that event.
        """
        found = self.events.get(int(index))
        if found is None:
            raise VerificationError(
                f"{what} cites log index {index}, which the evidence does not include"
            )
        return found

    def with_role(self, *roles: str) -> list[ProvenEvent]:
        """The events of these roles (all events without roles), in log order."""
        ordered = sorted(self.events.values(), key=lambda p: p.index)
        return [p for p in ordered if not roles or p.role in roles]

    def with_action(self, *actions: str, subject_type: str | None = None) -> list[ProvenEvent]:
        """The events that record one of ``actions`` (on ``subject_type``), in log order.

        Sections that matter select by the proven action, never by the role label.
        """
        return [
            p
            for p in self.with_role()
            if p.event["action"] in actions and subject_type in (None, p.event["subject"]["type"])
        ]


def prove_evidence(evidence: Mapping[str, Any]) -> ProvenEvidence:
    """Check the checkpoint signature (with the evidence's own verifier key) and, for each
    event, that its wire form matches its canonical bytes and its inclusion proof verifies.

    This is the renderer's consistency check; `mltrail.report.bundle.verify_bundle` is the
    auditor's, with a key the auditor trusts.

    Raises:
        VerificationError: the checkpoint signature fails, or naming the event index whose
            digest, wire form or inclusion proof does not hold.
    """
    note = open_note(evidence["checkpoint"], [evidence["registry"]["verifier_key"]])
    checkpoint = Checkpoint.from_text(note)
    events: dict[int, ProvenEvent] = {}
    for item in evidence["events"]:
        index = int(item["index"])
        if index in events:
            raise VerificationError(f"event {index} is listed twice")
        data = base64.b64decode(item["canonical"], validate=True)
        digest = hashlib.sha256(data).hexdigest()
        record = loads(data)
        if wire_body(item["event"]) != record:
            raise VerificationError(f"event {index}: wire form differs from its canonical bytes")
        if item["event"]["integrity"].get("event_sha256") != digest:
            raise VerificationError(
                f"event {index}: integrity.event_sha256 is not the SHA-256 of its canonical bytes"
            )
        proof = [bytes.fromhex(h) for h in item["proof"]]
        check_inclusion(digest, index, proof, checkpoint, what=f"event {index}")
        events[index] = ProvenEvent(index, digest, str(item["role"]), record, checkpoint)
    return ProvenEvidence(checkpoint, events)


def check_inclusion(
    digest: str, index: int, proof: Sequence[bytes], checkpoint: Checkpoint, *, what: str
) -> None:
    """Verify that the event with SHA-256 ``digest`` sits at ``index`` under ``checkpoint``.

    The leaf data is the event's 32-byte digest: leaf = ``leaf_hash(sha256(bytes))``.

    Raises:
        VerificationError: ``what: inclusion proof does not verify against checkpoint size N``.
    """
    leaf = merkle.leaf_hash(bytes.fromhex(digest))
    try:
        merkle.verify_inclusion(leaf, index, checkpoint.size, proof, checkpoint.root_hash)
    except (VerificationError, InvalidInputError) as exc:
        raise VerificationError(
            f"{what}: inclusion proof does not verify against checkpoint size "
            f"{checkpoint.size} ({exc.message})"
        ) from exc


def wire_body(wire: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed body of a wire-form event: without ``integrity.event_sha256``,
    ``integrity.signature`` and ``integrity.key_id`` (DESIGN §2)."""
    body = dict(wire)
    integrity = dict(body.get("integrity") or {})
    for key in ("event_sha256", "signature", "key_id"):
        integrity.pop(key, None)
    body["integrity"] = integrity
    return body


def verify_claims(evidence: Mapping[str, Any], events: Events) -> None:
    """Check the evidence's keys, version, manifest, attestations, approvals, policy and
    decisions against the proven ``events``.

    Args:
        evidence: the evidence dict.
        events: its events, already proven against a trusted checkpoint.

    Raises:
        VerificationError: on the first claim the events do not bear out.
    """
    with naming("evidence.json"):
        version = evidence["version"]
        _check_version(version, evidence["manifest"], events)
        keys = _check_keys(evidence, events)
        _check_attestations(
            evidence["attestations"],
            version,
            events,
            keys,
            Manifest.from_dict(evidence["manifest"]),
        )
        _check_approvals(evidence["approvals"], version, events, keys)
        _check_decisions(evidence.get("policy"), evidence["decisions"], events)


@contextmanager
def naming(name: str) -> Iterator[None]:
    """Turn a parse failure inside file ``name`` into a VerificationError naming it.

    VerificationErrors pass through: every one raised here already names what failed.
    """
    try:
        yield
    except VerificationError:
        raise
    except RegistryError as exc:
        raise VerificationError(f"{name}: {exc.message}") from exc
    except KeyError as exc:
        raise VerificationError(f"{name}: missing field {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise VerificationError(f"{name}: malformed: {exc}") from exc


def _cited(events: Events, index: Any, what: str, action: str) -> tuple[str, Mapping[str, Any]]:
    """The proven event ``what`` cites, which must record ``action``."""
    name = f"events/{index}.json"
    event = events.get(int(index))
    if event is None:
        raise VerificationError(f"{what} cites {name}, which is not in the bundle")
    if event["action"] != action:
        raise VerificationError(
            f"{name}: {what} cites a {event['action']!r} event, expected {action!r}"
        )
    return name, event


def _same(name: str, what: str, claimed: Any, recorded: Any) -> None:
    if claimed != recorded:
        raise VerificationError(
            f"{name}: {what} in evidence.json ({_brief(claimed)}) is not "
            f"what the event records ({_brief(recorded)})"
        )


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


# --- keys, version, attestations, approvals, decisions --------------------------------------------


def _check_keys(evidence: Mapping[str, Any], events: Events) -> Keys:
    """Registered signing keys by principal, each proven by its `register` event."""
    keys: dict[str, list[tuple[str, PublicKey]]] = {}  # principal -> (key id, key)
    for item in evidence.get("keys") or []:
        name, event = _cited(events, item["event"], f"key {item['key_id']}", "register")
        meta = event["metadata"]
        _same(name, "key principal", item["principal_id"], event["subject"]["id"])
        _same(name, "key id", item["key_id"], meta.get("key_id"))
        _same(name, "public key", item["public_key"], meta.get("public_key"))
        with naming(name):
            key = dsse.load_public_key(item["public_key"])
        if dsse.key_id(key) != item["key_id"]:
            raise VerificationError(f"{name}: key id {item['key_id']} is not the key's digest")
        keys.setdefault(item["principal_id"], []).append((item["key_id"], key))
    return keys


def _check_version(
    version: Mapping[str, Any], manifest_dict: Mapping[str, Any], events: Events
) -> None:
    digest = version["manifest_sha256"]
    with naming("manifest.json"):
        manifest = Manifest.from_dict(manifest_dict)
    if manifest.digest != digest:
        raise VerificationError("manifest.json: its digest is not the version's manifest_sha256")
    registrations = [
        (index, event)
        for index, event in sorted(events.items())
        if event["action"] == "register"
        and event["subject"]["type"] == "model_version"
        and event["subject"]["id"] == version["version_id"]
    ]
    if not registrations:
        raise VerificationError(f"no event in the bundle registers {version['version_id']}")
    index, event = registrations[0]
    name = f"events/{index}.json"
    _same(name, "manifest_sha256", digest, event["subject"].get("digest"))
    _same(name, "registered_by", version.get("registered_by"), event["actor"]["id"])
    _same(name, "model", version["model"], event["metadata"].get("model"))
    _same(name, "version number", version["number"], event["metadata"].get("number"))


def _check_attestations(
    items: Sequence[Mapping[str, Any]],
    version: Mapping[str, Any],
    events: Events,
    keys: Keys,
    manifest: Manifest,
) -> None:
    for item in items:
        file = f"attestations/{item['envelope_sha256']}.json"
        name, event = _cited(events, item["event"], file, "attest")
        meta = event["metadata"]
        _same(name, "attestation subject", item["envelope_sha256"], event["subject"]["id"])
        with naming(file):
            envelope_sha256 = hashlib.sha256(canonicalize(item["envelope"])).hexdigest()
        if envelope_sha256 != item["envelope_sha256"]:
            raise VerificationError(
                f"{file}: the envelope's SHA-256 is not the digest its attest event {name} records"
            )
        for field in ("signer", "key_id", "predicate_type", "name", "result"):
            _same(name, f"attestation {field}", item.get(field), meta.get(field))
        if item["verified"] is not True:
            raise VerificationError(f"{file}: evidence.json marks it unverified")
        statement = _open_signed(item["envelope"], item["signer"], item["key_id"], keys, file)
        _same(file, "predicate type", item["predicate_type"], statement.predicate_type)
        if not covers_version(statement, version["manifest_sha256"], manifest):
            raise VerificationError(f"{file}: statement subject is not the version's manifest")


def _open_signed(
    envelope: Mapping[str, Any], signer: str, key_id: str | None, keys: Keys, what: str
) -> intoto.Statement:
    """Open an in-toto envelope with the signer's registered key (that key id's, if known)."""
    registered = keys.get(signer, [])
    chosen = [key for kid, key in registered if kid == key_id] or [key for _, key in registered]
    if not chosen:
        raise VerificationError(
            f"{what}: {signer} has no key registered by a key event in the bundle"
        )
    try:
        return intoto.open_statement(envelope, chosen)
    except VerificationError as exc:
        raise VerificationError(f"{what}: signature does not verify with {signer}'s key") from exc
    except InvalidInputError as exc:
        raise VerificationError(f"{what}: signed statement is malformed: {exc.message}") from exc


def _check_approvals(
    items: Sequence[Mapping[str, Any]], version: Mapping[str, Any], events: Events, keys: Keys
) -> None:
    digest = version["manifest_sha256"]
    for item in items:
        approver = item["approver"]["id"]
        name, event = _cited(events, item["event"], f"approval by {approver}", "approve")
        meta = event["metadata"]
        if item["version_sha256"] != digest:
            raise VerificationError(f"{name}: approval by {approver} is of another digest")
        _same(name, "approved version", version["version_id"], event["subject"]["id"])
        _same(name, "approval time", item["at"], event["timestamp"])
        for field in ("approver", "meaning", "stage", "version_sha256", "comment", "kind"):
            _same(name, f"approval {field}", item.get(field), meta.get(field))
        signed = isinstance(meta.get("signature"), Mapping)
        _same(name, "approval signed", item["signed"], signed)
        _same(name, "approval signature_verified", item["signature_verified"], signed)
        if signed:
            what = f"{name} (approval by {approver})"
            statement = _open_signed(meta["signature"], approver, None, keys, what)
            if not intoto.matches_subject(statement, digest):
                raise VerificationError(f"{what} is about another digest than the version's")
            signed_fields = statement.predicate or {}
            for field in ("stage", "meaning", "approver", "comment"):
                if field in signed_fields:
                    _same(name, f"signed {field}", signed_fields[field], meta.get(field))


_POLICY_FIELDS = (
    ("scope", "scope"),
    ("stage", "stage"),
    ("version", "version"),
    ("digest", "document_sha256"),
    ("document", "document"),
)


def _check_decisions(
    policy: Mapping[str, Any] | None, decisions: Sequence[Mapping[str, Any]], events: Events
) -> None:
    if policy is not None:
        name, cited = _cited(events, policy["event"], "the policy in force", "set_policy")
        for field, key in _POLICY_FIELDS:
            _same(name, f"policy {field}", policy.get(field), cited["metadata"].get(key))
    for decision in decisions:
        _check_decision(decision, events)


def _check_decision(decision: Mapping[str, Any], events: Events) -> None:
    index = decision["event"]
    event = events.get(int(index))
    if event is None or event["action"] not in ("promote", "reject"):
        raise VerificationError(
            f"decision cites events/{index}.json, which is not a promotion or refusal in the bundle"
        )
    name, meta = f"events/{index}.json", event["metadata"]
    recorded = meta.get("decision") or {}
    _same(name, "decision to_stage", decision["to_stage"], meta.get("to_stage"))
    _same(name, "decision override", decision["override"], bool(meta.get("override")))
    _same(
        name,
        "decision verification_attestation",
        decision.get("verification_attestation"),
        meta.get("verification_attestation"),
    )
    for field in ("allowed", "rules", "policy"):
        _same(name, f"decision {field}", decision.get(field), recorded.get(field))
    for rule in decision["rules"]:
        for cited in rule.get("evidence") or []:
            if int(cited) not in events:
                raise VerificationError(
                    f"{name}: rule {rule['rule']!r} cites "
                    f"events/{cited}.json, which is not in the bundle"
                )
