"""A bundle made by the OpenSSF model_signing tool (P-256) attaches to the version whose
manifest lists exactly its files, and to no other."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mltrail.artifacts.manifest import MODEL_SIGNING_PREDICATE_TYPE
from mltrail.errors import VerificationError
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
