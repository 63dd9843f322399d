"""A bundle made by the OpenSSF model_signing tool (P-256) attaches to the version whose
manifest lists exactly its files, and to no other."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mltrail.artifacts.manifest import MODEL_SIGNING_PREDICATE_TYPE
from mltrail.errors import VerificationError
from mltrail.events import Actor
from mltrail.report.bundle import verify_bundle, write_bundle
from mltrail.service import Registry

VECTOR = Path(__file__).resolve().parents[1] / "vectors" / "model_signing"

POLICY = f"""\
apiVersion: mltrail/v1
kind: PromotionPolicy
scope: tiny
stage: production
attestations:
  - predicate_type: {MODEL_SIGNING_PREDICATE_TYPE}
    signer_role: ci
"""


@pytest.fixture
def reg(sqlite_registry: Registry) -> Registry:
    sqlite_registry.add_principal(
        "svc.signer", display_name="Model signing CI", kind="service", roles=["contributor", "ci"]
    )
    sqlite_registry.add_key("svc.signer", (VECTOR / "tiny-model.pub.pem").read_bytes())
    sqlite_registry.register_model("tiny")
    return sqlite_registry


def _bundle() -> dict[str, object]:
    return json.loads((VECTOR / "tiny-model.sig.json").read_text())


def test_bundle_attaches_and_satisfies_the_gate(reg: Registry) -> None:
    version = reg.add_version("tiny", VECTOR / "tiny-model").event.subject.id
    done = reg.attach(version, _bundle())
    assert done.event.metadata["predicate_type"] == MODEL_SIGNING_PREDICATE_TYPE
    assert done.event.metadata["signer"] == "svc.signer"
    reg.set_policy(POLICY)
    gate, _ = reg.check_promotion(version, to="production")
    assert gate.allowed, gate.failed()
    evidence = reg.compliance_evidence(version)
    assert [a["verified"] for a in evidence["attestations"]] == [True]


def test_bundle_evidence_verifies_offline(reg: Registry, tmp_path: Path) -> None:
    version = reg.add_version("tiny", VECTOR / "tiny-model").event.subject.id
    reg.attach(version, _bundle())
    written = write_bundle(reg.compliance_evidence(version), tmp_path / "evidence")
    assert verify_bundle(written, reg.verifier_key).attestations == 1


def test_bundle_for_other_files_is_refused(reg: Registry, tmp_path: Path) -> None:
    changed = tmp_path / "tiny-model"
    shutil.copytree(VECTOR / "tiny-model", changed)
    (changed / "a-b.txt").write_text("not what was signed\n")
    version = reg.add_version("tiny", changed).event.subject.id
    before = reg.log.size()
    with pytest.raises(VerificationError, match="different artifact"):
        reg.attach(version, _bundle())
    assert reg.log.size() == before


def test_bundle_with_a_flipped_signature_is_refused(reg: Registry) -> None:
    version = reg.add_version("tiny", VECTOR / "tiny-model").event.subject.id
    bundle = _bundle()
    envelope = bundle["dsseEnvelope"]
    assert isinstance(envelope, dict)
    sig = envelope["signatures"][0]["sig"]
    envelope["signatures"][0]["sig"] = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    with pytest.raises(VerificationError):
        reg.attach(version, bundle)


def test_training_provenance_names_the_runs_inputs(reg: Registry, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from mltrail.attest import dsse, intoto

    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("a\n1\n")
    ds = reg.register_dataset("DS:t", name="t", version="1", path=data)
    commit = reg.register_code(repository="git@example.com:t.git", commit="c1a2b" + "0" * 35)
    reg.register_run("R-t", params={"lr": 0.1}, datasets=["DS:t"], commit=commit.event.subject.id)
    version = reg.add_version("tiny", VECTOR / "tiny-model", run="R-t").event.subject.id
    key = ed25519.Ed25519PrivateKey.generate()
    reg.add_key("svc.signer", dsse.public_key_pem(key.public_key()))
    signer = Registry.open(reg.root, actor=Actor("service", "svc.signer"))
    done = signer.attest_provenance(version, private_key=key)
    assert done.event.metadata["predicate_type"] == intoto.SLSA_PROVENANCE
    envelope = json.loads(reg.store.read_bytes(done.event.subject.id))
    statement = intoto.open_statement(envelope, [key.public_key()])
    deps = statement.predicate["buildDefinition"]["resolvedDependencies"]  # type: ignore[index]
    assert {"name": "DS:t", "digest": {"sha256": ds.event.subject.digest}} in deps
    assert {
        "name": "source",
        "uri": "git+git@example.com:t.git",
        "digest": {"gitCommit": "c1a2b" + "0" * 35},
    } in deps
