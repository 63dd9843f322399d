"""Evidence bundles: written from real evidence, verified offline, and refused when tampered."""

from __future__ import annotations

import base64
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from report_scenario import Scenario

from mltrail.attest import intoto
from mltrail.canonical import canonicalize, loads
from mltrail.errors import FormatError, InvalidInputError, VerificationError
from mltrail.ledger.checkpoint import Checkpoint, NoteSigner, split_note
from mltrail.report import BundleReport, verify_bundle, write_bundle
from mltrail.report.bundle import SUMS, bundle_files
from mltrail.report.claims import verify_claims

# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def bundle(scenario: Scenario, tmp_path: Path) -> Path:
    return write_bundle(scenario.evidence, tmp_path / "bundle")


def _names(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def _in_group(directory: Path, group: str) -> list[str]:
    """The file ``group`` names, or every file under ``group`` when it ends in a slash."""
    names = _names(directory)
    return [n for n in names if n == group or (group.endswith("/") and n.startswith(group))]


def _flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _resum(directory: Path) -> None:
    """Recompute SHA256SUMS, as an attacker who edits files would."""
    lines = [
        f"{hashlib.sha256((directory / n).read_bytes()).hexdigest()}  {n}\n"
        for n in _names(directory)
        if n != SUMS
    ]
    (directory / SUMS).write_text("".join(lines))


def _rewrite(directory: Path, evidence: dict[str, Any]) -> None:
    """Replace the bundle with one consistently regenerated from tampered evidence."""
    shutil.rmtree(directory)
    write_bundle(evidence, directory)


def _records(evidence: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {e["index"]: loads(base64.b64decode(e["canonical"])) for e in evidence["events"]}


def _index(evidence: dict[str, Any], role: str, nth: int = 0) -> int:
    return int([e["index"] for e in evidence["events"] if e["role"] == role][nth])


def _checkpoint(evidence: dict[str, Any]) -> Checkpoint:
    return Checkpoint.from_text(split_note(evidence["checkpoint"])[0])


# --- the round trip ------------------------------------------------------------------------------


def test_round_trip_verifies(scenario: Scenario, bundle: Path) -> None:
    evidence = scenario.evidence
    report = verify_bundle(bundle, scenario.verifier_key)
    checkpoint = _checkpoint(evidence)
    assert isinstance(report, BundleReport)
    assert (report.version_id, report.manifest_sha256) == (
        "model:fraud:v1",
        evidence["version"]["manifest_sha256"],
    )
    assert (report.checkpoint_size, report.checkpoint_root) == (
        checkpoint.size,
        checkpoint.root_hash.hex(),
    )
    assert (report.events, report.attestations) == (len(evidence["events"]), 1)
    assert (report.approvals, report.signed_approvals) == (2, 2)
    assert report.files == len(_names(bundle))
    assert report.to_dict()["version_id"] == "model:fraud:v1"


def test_bundle_holds_the_canonical_records(scenario: Scenario, bundle: Path) -> None:
    evidence = scenario.evidence
    expected = {"evidence.json", "checkpoint.note", "manifest.json", "report.md", "README.txt"}
    expected.add(SUMS)
    expected |= {f"events/{e['index']}.json" for e in evidence["events"]}
    expected |= {f"attestations/{a['envelope_sha256']}.json" for a in evidence["attestations"]}
    assert set(_names(bundle)) == expected
    assert (bundle / "evidence.json").read_bytes() == canonicalize(evidence)
    for item in evidence["events"]:
        data = (bundle / f"events/{item['index']}.json").read_bytes()
        assert data == base64.b64decode(item["canonical"])
        assert hashlib.sha256(data).hexdigest() == item["event"]["integrity"]["event_sha256"]
    for item in evidence["attestations"]:
        data = (bundle / f"attestations/{item['envelope_sha256']}.json").read_bytes()
        assert hashlib.sha256(data).hexdigest() == item["envelope_sha256"]
    assert "mltrail verify-bundle DIR --key KEY" in (bundle / "README.txt").read_text()
    sums = (bundle / SUMS).read_text().splitlines()
    assert len(sums) == len(expected) - 1  # every file but SHA256SUMS itself
    for line in sums:  # `sha256sum -c` format
        digest, name = line.split("  ")
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == digest


def test_write_refuses_a_non_empty_directory(scenario: Scenario, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not an empty directory"):
        write_bundle(scenario.evidence, tmp_path / "taken")


def test_write_refuses_evidence_that_does_not_prove_itself(
    scenario: Scenario, tmp_path: Path
) -> None:
    evidence = scenario.fresh()
    evidence["events"][0]["proof"][0] = "00" * 32
    with pytest.raises(VerificationError, match="inclusion proof does not verify"):
        write_bundle(evidence, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- any byte of any file ------------------------------------------------------------------------

GROUPS = [
    "evidence.json",
    "checkpoint.note",
    "manifest.json",
    "report.md",
    "README.txt",
    SUMS,
    "events/",
    "attestations/",
]


@pytest.mark.parametrize("group", GROUPS, ids=GROUPS)
def test_flipping_a_byte_of_any_file_fails(
    scenario: Scenario, bundle: Path, tmp_path: Path, group: str
) -> None:
    names = _in_group(bundle, group)
    assert names
    for name in names:
        copy = tmp_path / f"copy-{name.replace('/', '_')}"
        shutil.copytree(bundle, copy)
        _flip_middle(copy / name)
        with pytest.raises(VerificationError) as caught:
            verify_bundle(copy, scenario.verifier_key)
        assert name in caught.value.message, caught.value.message


@pytest.mark.parametrize("group", GROUPS, ids=GROUPS)
def test_flipping_a_byte_fails_even_with_recomputed_sums(
    scenario: Scenario, bundle: Path, tmp_path: Path, group: str
) -> None:
    names = _in_group(bundle, group)
    for name in [n for n in names if n != SUMS]:  # recomputing the sums rewrites SHA256SUMS
        copy = tmp_path / f"copy-{name.replace('/', '_')}"
        shutil.copytree(bundle, copy)
        _flip_middle(copy / name)
        _resum(copy)
        with pytest.raises(VerificationError) as caught:
            verify_bundle(copy, scenario.verifier_key)
        assert name in caught.value.message or "evidence.json" in caught.value.message


def test_a_changed_event_fails_its_inclusion_proof(scenario: Scenario, bundle: Path) -> None:
    index, size = _index(scenario.evidence, "approval"), _checkpoint(scenario.evidence).size
    path = bundle / f"events/{index}.json"
    path.write_bytes(path.read_bytes().replace(b"approval", b"approvaL", 1))
    _resum(bundle)
    with pytest.raises(VerificationError) as caught:
        verify_bundle(bundle, scenario.verifier_key)
    assert caught.value.message.startswith(
        f"events/{index}.json (proof in evidence.json): inclusion proof does not verify "
        f"against checkpoint size {size}"
    )


# --- missing and extra files ---------------------------------------------------------------------


def test_a_removed_file_fails(scenario: Scenario, bundle: Path) -> None:
    (bundle / "manifest.json").unlink()
    with pytest.raises(VerificationError, match=r"manifest\.json: listed in SHA256SUMS but"):
        verify_bundle(bundle, scenario.verifier_key)


def test_a_removed_file_fails_even_when_unlisted(scenario: Scenario, bundle: Path) -> None:
    name = f"attestations/{scenario.evidence['attestations'][0]['envelope_sha256']}.json"
    (bundle / name).unlink()
    _resum(bundle)
    with pytest.raises(VerificationError, match=f"{name}: missing from the bundle"):
        verify_bundle(bundle, scenario.verifier_key)


def test_a_removed_event_fails_even_when_unlisted(scenario: Scenario, bundle: Path) -> None:
    index = _index(scenario.evidence, "registration")
    (bundle / f"events/{index}.json").unlink()
    _resum(bundle)
    with pytest.raises(VerificationError, match=f"events/{index}.json: missing from the bundle"):
        verify_bundle(bundle, scenario.verifier_key)


def test_an_added_file_fails(scenario: Scenario, bundle: Path) -> None:
    (bundle / "events" / "999.json").write_bytes(b"{}")
    with pytest.raises(VerificationError, match=r"events/999\.json: not listed in SHA256SUMS"):
        verify_bundle(bundle, scenario.verifier_key)


def test_an_added_and_listed_file_fails(scenario: Scenario, bundle: Path) -> None:
    (bundle / "notes.txt").write_text("trust me")
    _resum(bundle)
    with pytest.raises(VerificationError, match=r"notes\.txt: not part of the bundle"):
        verify_bundle(bundle, scenario.verifier_key)


def test_a_missing_sums_file_fails(scenario: Scenario, bundle: Path) -> None:
    (bundle / SUMS).unlink()
    with pytest.raises(VerificationError, match="SHA256SUMS is missing"):
        verify_bundle(bundle, scenario.verifier_key)


def test_a_symlink_fails(scenario: Scenario, bundle: Path) -> None:
    (bundle / "link.json").symlink_to(bundle / "evidence.json")
    with pytest.raises(VerificationError, match=r"link\.json: not a regular file"):
        verify_bundle(bundle, scenario.verifier_key)


# --- keys ----------------------------------------------------------------------------------------


def test_a_wrong_registry_key_fails(scenario: Scenario, bundle: Path) -> None:
    other = NoteSigner.generate(_checkpoint(scenario.evidence).origin).verifier_key
    with pytest.raises(VerificationError, match=r"checkpoint\.note: signature does not verify"):
        verify_bundle(bundle, other)


def test_a_key_for_another_log_fails(scenario: Scenario, bundle: Path) -> None:
    other = NoteSigner.generate("another.example/log").verifier_key
    with pytest.raises(VerificationError, match=r"checkpoint\.note"):
        verify_bundle(bundle, other)


def test_a_malformed_key_is_the_callers_error(bundle: Path) -> None:
    with pytest.raises(FormatError, match="verifier key"):
        verify_bundle(bundle, "not-a-key")


# --- consistent forgeries: evidence rewritten with every derived file and sum --------------------

Mutation = Callable[[dict[str, Any]], None]


def _approval_comment(ev: dict[str, Any]) -> None:
    ev["approvals"][0]["comment"] = "rubber-stamped"


def _approver_name(ev: dict[str, Any]) -> None:
    ev["approvals"][1]["approver"]["name"] = "Someone Senior"


def _approval_digest(ev: dict[str, Any]) -> None:
    ev["approvals"][0]["version_sha256"] = "ab" * 32


def _unsigned_claims_verified(ev: dict[str, Any]) -> None:
    ev["approvals"][0]["signed"] = False


def _attestation_result(ev: dict[str, Any]) -> None:
    ev["attestations"][0]["result"] = "FAILED"


def _hidden_override(ev: dict[str, Any]) -> None:
    assert any(d["override"] for d in ev["decisions"]), "the scenario needs an override here"
    for decision in ev["decisions"]:
        decision["override"] = False


def _rule_outcome(ev: dict[str, Any]) -> None:
    decision = next(d for d in ev["decisions"] if d["override"])
    for rule in decision["rules"]:
        rule["ok"] = True
    decision["allowed"] = True


def _rule_cites_missing(ev: dict[str, Any]) -> None:
    ev["decisions"][-1]["rules"][0]["evidence"] = [10_000]


def _policy_digest(ev: dict[str, Any]) -> None:
    ev["policy"]["digest"] = "cd" * 32


def _manifest(ev: dict[str, Any]) -> None:
    ev["manifest"]["files"][0]["size"] += 1


def _registered_by(ev: dict[str, Any]) -> None:
    ev["version"]["registered_by"] = "lead.ds"


def _swapped_key(ev: dict[str, Any]) -> None:
    ev["keys"][0]["public_key"] = ev["keys"][1]["public_key"]


def _forged_attestation(ev: dict[str, Any]) -> None:
    item = ev["attestations"][0]
    statement = intoto.Statement(
        subject=[intoto.ResourceDescriptor(digest={"sha256": ev["version"]["manifest_sha256"]})],
        predicate_type=intoto.TEST_RESULT,
        predicate=intoto.test_result_predicate("PASSED", [{"uri": "https://evil.example"}]),
    )
    item["envelope"] = intoto.sign_statement(statement, Ed25519PrivateKey.generate())
    item["envelope_sha256"] = hashlib.sha256(canonicalize(item["envelope"])).hexdigest()


def _relabelled_role(ev: dict[str, Any]) -> None:
    next(e for e in ev["events"] if e["role"] == "deployment")["role"] = "approval"


FORGERIES: list[tuple[str, Mutation, str]] = [
    ("approval-comment", _approval_comment, "approval comment"),
    ("approver-name", _approver_name, "approval approver"),
    ("approval-digest", _approval_digest, "is of another digest"),
    ("approval-signed-flag", _unsigned_claims_verified, "approval signed"),
    ("attestation-result", _attestation_result, "attestation result"),
    ("hidden-override", _hidden_override, "decision override"),
    ("rule-outcome", _rule_outcome, "decision allowed"),
    ("rule-evidence", _rule_cites_missing, "decision rules in evidence.json"),
    ("policy-digest", _policy_digest, "policy digest"),
    ("manifest", _manifest, "manifest.json: its digest is not the version's manifest_sha256"),
    ("registered-by", _registered_by, "registered_by"),
    ("swapped-key", _swapped_key, "public key"),
    ("forged-attestation", _forged_attestation, "attestation subject"),
    ("relabelled-role", _relabelled_role, "role 'approval' does not fit action 'deploy'"),
]


@pytest.mark.parametrize(
    ("mutate", "message"), [f[1:] for f in FORGERIES], ids=[f[0] for f in FORGERIES]
)
def test_consistent_forgeries_fail(
    scenario: Scenario, bundle: Path, mutate: Mutation, message: str
) -> None:
    needs_override = mutate in (_hidden_override, _rule_outcome)
    evidence = scenario.fresh_override() if needs_override else scenario.fresh()
    mutate(evidence)
    _rewrite(bundle, evidence)
    with pytest.raises(VerificationError) as caught:
        verify_bundle(bundle, scenario.verifier_key)
    assert message in caught.value.message, caught.value.message


def test_a_rewritten_wire_event_fails(scenario: Scenario, bundle: Path) -> None:
    evidence = scenario.fresh()
    index = _index(evidence, "approval")
    item = next(e for e in evidence["events"] if e["index"] == index)
    item["event"]["metadata"]["comment"] = "rubber-stamped"
    (bundle / "evidence.json").write_bytes(canonicalize(evidence))
    _resum(bundle)
    with pytest.raises(VerificationError, match=f"events/{index}.json: the event in evidence"):
        verify_bundle(bundle, scenario.verifier_key)


# --- signatures, checked against proven events ---------------------------------------------------


def test_an_attestation_not_signed_by_its_signer_fails(scenario: Scenario) -> None:
    evidence = scenario.fresh()
    events = _records(evidence)
    _forged_attestation(evidence)
    item = evidence["attestations"][0]
    events[item["event"]]["subject"]["id"] = item["envelope_sha256"]  # as if the log said so
    with pytest.raises(VerificationError) as caught:
        verify_claims(evidence, events)
    assert caught.value.message == (
        f"attestations/{item['envelope_sha256']}.json: signature does not verify with svc.ci's key"
    )


def test_an_approval_not_signed_by_its_approver_fails(scenario: Scenario) -> None:
    evidence = scenario.fresh()
    events = _records(evidence)
    index = evidence["approvals"][0]["event"]
    events[index]["metadata"]["signature"] = events[evidence["approvals"][1]["event"]]["metadata"][
        "signature"
    ]  # risk.officer's signature on lead.ds's approval
    with pytest.raises(VerificationError) as caught:
        verify_claims(evidence, events)
    assert caught.value.message == (
        f"events/{index}.json (approval by lead.ds): signature does not verify with lead.ds's key"
    )


def test_a_signer_without_a_registered_key_fails(scenario: Scenario) -> None:
    evidence = scenario.fresh()
    events = _records(evidence)
    evidence["keys"] = [k for k in evidence["keys"] if k["principal_id"] != "svc.ci"]
    with pytest.raises(VerificationError, match=r"svc\.ci has no key registered by a key event"):
        verify_claims(evidence, events)


def test_claims_need_the_cited_events(scenario: Scenario) -> None:
    evidence = scenario.fresh()
    events = _records(evidence)
    del events[evidence["approvals"][0]["event"]]
    with pytest.raises(VerificationError, match=r"approval by lead\.ds cites events/"):
        verify_claims(evidence, events)


def test_decisions_need_the_events_their_rules_cite(scenario: Scenario) -> None:
    evidence = scenario.fresh()
    events = _records(evidence)
    cited = evidence["approvals"][0]["event"]
    evidence["approvals"] = []  # the approval itself is gone; the decision still cites it
    del events[cited]
    with pytest.raises(VerificationError, match=f"rule 'approvals' cites events/{cited}.json"):
        verify_claims(evidence, events)


def test_bundle_files_are_pure(scenario: Scenario) -> None:
    assert bundle_files(scenario.evidence) == bundle_files(scenario.fresh())
