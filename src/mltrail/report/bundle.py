"""Evidence bundles: one directory an auditor checks offline, trusting only the registry's key.

A bundle holds everything the compliance report of a version rests on::

    evidence.json               the evidence dict, RFC 8785 canonical JSON
    checkpoint.note             the signed C2SP checkpoint every event is proven against
    events/<index>.json         each event's canonical bytes, exactly as the log stores them
    attestations/<sha256>.json  each DSSE envelope, canonical; named by its digest
    manifest.json               the version's manifest, canonical
    report.md                   the compliance report rendered from evidence.json
    README.txt                  what is here and how to verify it
    SHA256SUMS                  every other file, in ``sha256sum -c`` format

`verify_bundle` needs no database and no network: it recomputes every leaf from the event
files and checks each inclusion proof against the checkpoint signed by the key the auditor
passes, then checks each signature and digest the report relies on against those proven
events. SHA256SUMS only catches accidents; trust comes from the checkpoint signature.

Example (``evidence`` from ``Registry.compliance_evidence("fraud:v5")``)::

    write_bundle(evidence, Path("fraud-v5"))
    verify_bundle(Path("fraud-v5"), registry.verifier_key)  # raises VerificationError

>>> verify_bundle(Path("no-such-bundle"), "not a key")
Traceback (most recent call last):
...
mltrail.errors.FormatError: verifier key 'not a key' is not name+hexkeyid+base64key
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from mltrail.attest import dsse
from mltrail.canonical import canonicalize, loads
from mltrail.errors import InvalidInputError, VerificationError
from mltrail.ledger.checkpoint import Checkpoint, open_note, parse_verifier_key
from mltrail.report.claims import check_inclusion, naming, verify_claims, wire_body
from mltrail.report.compliance import render_compliance

__all__ = ["SUMS", "BundleReport", "bundle_files", "verify_bundle", "write_bundle"]

SUMS = "SHA256SUMS"
_SUM_LINE = re.compile(r"([0-9a-f]{64}) [ *]([^\n]+)")
# Which actions each event role may record. Other roles (`lineage`, and any a newer
# registry adds) are labels only: the report selects what matters by the proven action.
_ROLE_ACTIONS = {
    "registration": {"register"},
    "key": {"register"},
    "principal": {"register"},
    "attestation": {"attest"},
    "approval": {"approve"},
    "rejection": {"reject"},
    "policy": {"set_policy"},
    "promotion": {"promote"},
    "deployment": {"deploy"},
    "rollback": {"rollback"},
    "grant": {"grant_access", "revoke_access"},
    "access": {"access"},
    "validation": {"validate"},
    "alias": {"set_alias"},
    "retirement": {"retire"},
    "resolution": {"resolve"},
    "reproduction": {"reproduce"},
}


@dataclass(frozen=True, slots=True)
class BundleReport:
    """What `verify_bundle` proved."""

    version_id: str
    manifest_sha256: str
    checkpoint_origin: str
    checkpoint_size: int
    checkpoint_root: str  # hex
    events: int
    attestations: int
    approvals: int
    signed_approvals: int
    decisions: int
    files: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (for ``--json``)."""
        return asdict(self)


def write_bundle(evidence: Mapping[str, Any], directory: Path) -> Path:
    """Write the evidence bundle of one version into ``directory``.

    Args:
        evidence: the evidence dict (`service.Registry.compliance_evidence`).
        directory: where to write; created if missing, and it must be empty.

    Returns:
        ``directory``.

    Raises:
        InvalidInputError: ``directory`` exists and is not empty.
        FormatError, VerificationError: the evidence is malformed or does not prove itself
            (see `render_compliance`); nothing is written then.
    """
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InvalidInputError(
            f"{directory} exists and is not an empty directory",
            hint="choose a new directory for the bundle",
        )
    files = bundle_files(evidence)
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return directory


def bundle_files(evidence: Mapping[str, Any]) -> dict[str, bytes]:
    """The bundle's files by relative path, SHA256SUMS included (pure; no I/O).

    Raises:
        FormatError, VerificationError: as `render_compliance`.
    """
    files = {
        "evidence.json": canonicalize(evidence),
        "checkpoint.note": str(evidence["checkpoint"]).encode("utf-8"),
        "manifest.json": canonicalize(evidence["manifest"]),
        "report.md": render_compliance(evidence, "markdown").encode("utf-8"),
        "README.txt": _readme(evidence).encode("utf-8"),
    }
    for item in evidence["events"]:
        files[f"events/{int(item['index'])}.json"] = base64.b64decode(item["canonical"])
    for item in evidence["attestations"]:
        files[f"attestations/{item['envelope_sha256']}.json"] = canonicalize(item["envelope"])
    sums = "".join(f"{_sha256(data)}  {name}\n" for name, data in sorted(files.items()))
    files[SUMS] = sums.encode("ascii")
    return files


def verify_bundle(directory: Path, registry_key: str) -> BundleReport:
    """Check an evidence bundle offline, trusting only ``registry_key``.

    In order: SHA256SUMS lists every file and matches it; the checkpoint note verifies
    with ``registry_key``; every event file hashes to a leaf whose inclusion proof verifies
    against the checkpoint, and equals the event recorded in evidence.json; the other files
    are exactly those evidence.json implies; each registered key, the registration, the
    manifest, each attestation (DSSE signature by its signer's registered key, subject the
    version's manifest digest), each approval (bound to the manifest digest, signature by
    the approver's registered key), the policy and each decision match the proven events
    they cite.

    Args:
        directory: the bundle.
        registry_key: the registry's C2SP verifier key, obtained from a trusted channel.

    Returns:
        What was proven.

    Raises:
        FormatError: ``registry_key`` is not a verifier key.
        VerificationError: on the first failed check; the message names the file, the event
            index or the signature.
    """
    parse_verifier_key(registry_key)  # the caller's input: a FormatError, not a bad bundle
    files = _read_checked(directory)
    evidence = _load(files, "evidence.json")
    with naming("evidence.json"):
        version = evidence["version"]
        checkpoint = _check_checkpoint(files, evidence, registry_key)
        events = _check_events(files, evidence, checkpoint)
        _check_layout(files, evidence)
        verify_claims(evidence, events)
        approvals = evidence["approvals"]
        return BundleReport(
            version_id=version["version_id"],
            manifest_sha256=version["manifest_sha256"],
            checkpoint_origin=checkpoint.origin,
            checkpoint_size=checkpoint.size,
            checkpoint_root=checkpoint.root_hash.hex(),
            events=len(events),
            attestations=len(evidence["attestations"]),
            approvals=len(approvals),
            signed_approvals=sum(1 for a in approvals if a["signed"]),
            decisions=len(evidence["decisions"]),
            files=len(files),
        )


# --- files ---------------------------------------------------------------------------------------


def _read_checked(directory: Path) -> dict[str, bytes]:
    """Every regular file of the bundle, after checking them against SHA256SUMS."""
    if not directory.is_dir():
        raise VerificationError(f"{directory} is not a directory holding an evidence bundle")
    files: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*")):
        name = path.relative_to(directory).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise VerificationError(f"{name}: not a regular file; a bundle holds only files")
        if path.is_file():
            files[name] = path.read_bytes()
    if SUMS not in files:
        raise VerificationError(f"{SUMS} is missing from the bundle")
    listed = _parse_sums(files[SUMS])
    unlisted = sorted(set(files) - set(listed) - {SUMS})
    if unlisted:
        raise VerificationError(f"{unlisted[0]}: not listed in {SUMS} (a file was added)")
    for name, digest in listed.items():
        if name not in files:
            raise VerificationError(f"{name}: listed in {SUMS} but missing from the bundle")
        if _sha256(files[name]) != digest:
            raise VerificationError(f"{name}: SHA-256 does not match {SUMS}")
    return files


def _parse_sums(data: bytes) -> dict[str, str]:
    listed: dict[str, str] = {}
    text = data.decode("ascii", errors="replace")
    if not text.endswith("\n"):
        raise VerificationError(f"{SUMS}: does not end with a newline")
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        match = _SUM_LINE.fullmatch(line)
        if match is None:
            raise VerificationError(f"{SUMS}: line {number} is not '<sha256>  <path>'")
        if match[2] in listed or match[2] == SUMS:
            raise VerificationError(f"{SUMS}: line {number} lists {match[2]!r} again")
        listed[match[2]] = match[1]
    return listed


def _load(files: Mapping[str, bytes], name: str) -> Any:
    with naming(name):
        return loads(files[name])


def _check_layout(files: Mapping[str, bytes], evidence: Mapping[str, Any]) -> None:
    """The bundle holds exactly the files evidence.json implies, byte for byte."""
    with naming("evidence.json"):
        expected = bundle_files(evidence)
    missing, extra = sorted(set(expected) - set(files)), sorted(set(files) - set(expected))
    if missing:
        raise VerificationError(f"{missing[0]}: missing from the bundle")
    if extra:
        raise VerificationError(f"{extra[0]}: not part of the bundle evidence.json describes")
    for name in sorted(expected, key=lambda n: (n == SUMS, n)):  # the sums only summarise
        if files[name] != expected[name]:
            raise VerificationError(f"{name}: differs from what evidence.json records")


# --- checkpoint and events -------------------------------------------------------------------


def _check_checkpoint(
    files: Mapping[str, bytes], evidence: Mapping[str, Any], registry_key: str
) -> Checkpoint:
    with naming("checkpoint.note"):
        note = files["checkpoint.note"].decode("utf-8")
        checkpoint = Checkpoint.from_text(_open(note, registry_key))
    registry = evidence["registry"]
    if note != evidence["checkpoint"]:
        raise VerificationError("checkpoint.note: differs from the checkpoint in evidence.json")
    if checkpoint.origin != registry["origin"]:
        raise VerificationError(
            f"checkpoint.note: origin {checkpoint.origin!r} is not the "
            f"registry's {registry['origin']!r}"
        )
    if registry["verifier_key"] != registry_key:
        raise VerificationError(
            "evidence.json: names another registry verifier key than the "
            "one the bundle is verified with"
        )
    trusted = parse_verifier_key(registry_key).public_key
    if registry.get("public_key_pem") and _raw(registry["public_key_pem"]) != trusted:
        raise VerificationError("evidence.json: registry public_key_pem is not the trusted key")
    return checkpoint


def _open(note: str, registry_key: str) -> str:
    try:
        return open_note(note, [registry_key])
    except VerificationError as exc:
        raise VerificationError(
            f"checkpoint.note: signature does not verify with the registry key: {exc.message}"
        ) from exc


def _check_events(
    files: Mapping[str, bytes], evidence: Mapping[str, Any], checkpoint: Checkpoint
) -> dict[int, Mapping[str, Any]]:
    """Each event file proven against the checkpoint; the proven records by log index."""
    events: dict[int, Mapping[str, Any]] = {}
    for item in evidence["events"]:
        index, name = int(item["index"]), f"events/{int(item['index'])}.json"
        if index in events:
            raise VerificationError(f"evidence.json: lists event {index} twice")
        if name not in files:
            raise VerificationError(f"{name}: missing from the bundle, yet evidence.json lists it")
        data, digest = files[name], _sha256(files[name])
        with naming("evidence.json"):  # the proofs are listed there, not in the event file
            proof = [bytes.fromhex(h) for h in item["proof"]]
        # The proof comes from evidence.json and the bytes from the event file: name both.
        check_inclusion(digest, index, proof, checkpoint, what=f"{name} (proof in evidence.json)")
        with naming(name):
            record = loads(data)
            _check_event(name, index, data, record, item)
        events[index] = record
    return events


def _check_event(name: str, index: int, data: bytes, record: Any, item: Mapping[str, Any]) -> None:
    if canonicalize(record) != data:
        raise VerificationError(f"{name}: not RFC 8785 canonical JSON")
    if base64.b64decode(item["canonical"], validate=True) != data:
        raise VerificationError(f"{name}: differs from the canonical bytes in evidence.json")
    wire = item["event"]
    if wire_body(wire) != record or wire["integrity"].get("event_sha256") != _sha256(data):
        raise VerificationError(f"{name}: the event in evidence.json is not this record")
    if record["seq"] != index:
        raise VerificationError(f"{name}: seq {record['seq']} is not its log index {index}")
    role, action = item["role"], record["action"]
    if role in _ROLE_ACTIONS and action not in _ROLE_ACTIONS[role]:
        raise VerificationError(f"{name}: role {role!r} does not fit action {action!r}")


# --- helpers -------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _raw(pem: str) -> bytes:
    key = dsse.load_public_key(pem)
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _readme(evidence: Mapping[str, Any]) -> str:
    version, registry = evidence["version"], evidence["registry"]
    return _README.format(
        version=version["version_id"],
        digest=version["manifest_sha256"],
        origin=registry["origin"],
        key=registry["verifier_key"],
        generated=evidence.get("generated_at"),
    )


_README = """\
Evidence bundle for {version} (manifest sha256 {digest})
Registry {origin}, generated {generated}.

HOW TO VERIFY (offline: no database, no network)

    mltrail verify-bundle DIR --key KEY

KEY is the registry's C2SP verifier key. Get it from the registry's operator through a
channel you trust, not from this bundle. The key this bundle names is
    {key}

WHAT IS CHECKED
 1. SHA256SUMS lists every other file and each digest matches (`sha256sum -c SHA256SUMS`).
 2. checkpoint.note is a C2SP signed note verified with KEY (origin, tree size, root).
 3. events/<i>.json holds the canonical bytes of event i. Its leaf hash is
    SHA-256(0x00 || SHA-256(bytes)) and the inclusion proof in evidence.json leads from it
    at index i to the checkpoint's root (RFC 6962 / RFC 9162).
 4. evidence.json, manifest.json, attestations/ and report.md are exactly what the proven
    events and evidence.json imply.
 5. attestations/<sha256>.json: the DSSE signature verifies with the signer's key, which a
    key event in the bundle registers; the in-toto subject is the version's manifest digest.
 6. manifest.json: SHA-256 of its canonical JSON is the digest the registration event binds.
 7. Approvals are bound to that digest; signed approvals verify with the approver's key.
 8. The policy in force and every promotion decision match the events they cite.

NOT PROVEN BY THE LOG
 The lineage section, the version's current stage and flags, and the generation time are
 the registry's projections at export time; the events are the record.
"""
