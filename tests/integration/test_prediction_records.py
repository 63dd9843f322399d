"""A prediction's record lives only in its batch file, in the artifact store: trace and
prove read it there (one ranged read), on a local store and on S3, and a record altered
in the file is caught by the proof, not served as the truth."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from s3server import S3Server

from mltrail.artifacts.local import LocalArtifactStore
from mltrail.artifacts.s3 import S3ArtifactStore
from mltrail.canonical import canonicalize
from mltrail.catalog.predictions import PredictionRecord
from mltrail.errors import IntegrityError, VerificationError
from mltrail.service import Registry

MakeRegistry = Callable[..., Registry]

# Outputs of several sizes, with non-ASCII text, so records differ in length and offsets
# are not multiples of one size.
OUTPUTS = [{"score": i / 7, "label": "ñ" * (i % 5), "rank": [i] * (i % 3)} for i in range(30)]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def make_store_registry(
    request: pytest.FixtureRequest, make_registry: MakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], Registry]:
    if request.param == "local":
        return make_registry
    server: S3Server = request.getfixturevalue("s3_server")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", server.region_name)
    url = f"s3://{server.bucket}/{server.new_prefix()}"
    return lambda: make_registry(artifacts=url, s3_endpoint_url=server.endpoint_url)


@pytest.fixture
def logged(make_store_registry: Callable[[], Registry], tmp_path: Path) -> Registry:
    """Two deployments; 30 predictions, so two batches whose records interleave."""
    reg = make_store_registry()
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.json").write_text("[1, 2]")
    reg.register_model("churn")
    reg.add_version("churn", model)
    for name in ("D1", "D2"):
        reg.deploy(name, "churn:v1", target=f"k8s/{name}")
    reg.log_predictions(
        {
            "prediction_id": f"P{i}",
            "deployment": f"D{1 + i % 2}",
            "input_hmac": f"hmac-sha256:{i:02x}",
            "output": output,
            "timestamp": f"2024-06-01T09:{i:02d}:00Z",
        }
        for i, output in enumerate(OUTPUTS)
    )
    return reg


def test_each_prediction_traces_and_proves_from_its_batch_file(logged: Registry) -> None:
    for i, output in enumerate(OUTPUTS):
        expected = PredictionRecord(
            f"P{i}",
            f"D{1 + i % 2}",
            "model:churn:v1",
            f"2024-06-01T09:{i:02d}:00.000000Z",
            f"hmac-sha256:{i:02x}",
            output,
        )
        proof = logged.prove_prediction(f"P{i}")
        assert proof["record"] == expected.to_dict()
        assert proof["batch"]["index"] == i // 2  # each deployment's batch keeps its order
        traced = logged.trace_prediction(f"P{i}")["prediction"]
        assert traced["output"] == output
        assert traced["timestamp"] == expected.timestamp
        assert traced["record_sha256"] == proof["record_sha256"]
    assert logged.rebuild()["equal"]
    assert logged.verify().ok


def _batch_file(reg: Registry, prediction_id: str) -> tuple[str, bytes]:
    row = reg.prove_prediction(prediction_id)
    batch = next(e for e in reg.log.events() if e.subject.id == row["batch"]["batch_id"])
    assert batch.artifact_sha256 is not None
    return batch.artifact_sha256, reg.store.read_bytes(batch.artifact_sha256)


def _overwrite(reg: Registry, digest: str, data: bytes) -> None:
    """Replace an artifact's bytes behind the registry's back (a disk error or an intruder)."""
    store = reg.store
    if isinstance(store, LocalArtifactStore):
        path = store.path_of(digest)
        os.chmod(path, 0o644)
        path.write_bytes(data)
    else:
        assert isinstance(store, S3ArtifactStore)
        store._client.put_object(
            Bucket=store._bucket, Key=store.key_of(digest), Body=data, Metadata={"sha256": digest}
        )


def test_a_record_altered_in_its_batch_file_fails_its_proof(logged: Registry) -> None:
    digest, data = _batch_file(logged, "P4")
    record = canonicalize(logged.prove_prediction("P4")["record"])
    forged = record.replace(b'"score":0.5714285714285714', b'"score":0.9999999999999999')
    assert forged != record and len(forged) == len(record)
    _overwrite(logged, digest, data.replace(record, forged))

    with pytest.raises(VerificationError, match="stored record of prediction P4"):
        logged.prove_prediction("P4")
    assert logged.prove_prediction("P2")["record"]["output"] == OUTPUTS[2]  # its neighbour


def test_a_truncated_batch_file_is_an_integrity_error(logged: Registry) -> None:
    digest, data = _batch_file(logged, "P28")
    _overwrite(logged, digest, data[: len(data) // 2])

    with pytest.raises(IntegrityError, match=f"artifact sha256:{digest} ends before"):
        logged.trace_prediction("P28")
