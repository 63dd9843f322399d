"""SLSA Provenance v1 for a training run: how a model version was built (pure).

The "build" is the training run: its parameters are the external parameters, and the
datasets (by manifest digest), the code commit and the environment fingerprint are the
resolved dependencies. The statement's subject is the model version's manifest digest.

>>> trace = {"run": {"run_id": "R678", "params": {"lr": 0.01}, "started_at": None,
...                  "ended_at": None, "environment_id": None},
...          "datasets": [{"dataset_id": "DS:2024-05-15", "uri": None, "digest": "ab" * 32}],
...          "commit": None, "environment": None}
>>> p = training_provenance(trace, builder_id="https://mltrail.example/registry")
>>> p["buildDefinition"]["externalParameters"]
{'run': 'R678', 'parameters': {'lr': 0.01}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mltrail.errors import InvalidInputError

__all__ = ["BUILD_TYPE", "training_provenance"]

BUILD_TYPE = "https://mltrail.dev/training/v1"


def training_provenance(trace: Mapping[str, Any], *, builder_id: str) -> dict[str, Any]:
    """The SLSA Provenance v1 predicate of a version, from `Registry.trace_version`.

    Raises:
        InvalidInputError: the version was registered without the run that produced it.
    """
    run = trace.get("run")
    if not run:
        raise InvalidInputError(
            "the version names no training run; provenance needs one",
            hint="register versions with --run",
        )
    deps = [_dataset(d) for d in trace.get("datasets", [])]
    if trace.get("commit"):
        commit = trace["commit"]
        deps.append(
            {
                "name": "source",
                "uri": f"git+{commit['repository']}",
                "digest": {"gitCommit": commit["commit_id"]},
            }
        )
    if trace.get("environment"):
        env = trace["environment"]
        deps.append(
            {
                "name": "environment",
                "uri": f"mltrail:environment/{env['environment_id']}",
                "digest": {"sha256": env["document_sha256"]},
            }
        )
    metadata = {"invocationId": run["run_id"]}
    metadata.update(
        {
            k: v
            for k, v in (("startedOn", run.get("started_at")), ("finishedOn", run.get("ended_at")))
            if v
        }
    )
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"run": run["run_id"], "parameters": run.get("params", {})},
            "resolvedDependencies": deps,
        },
        "runDetails": {"builder": {"id": builder_id}, "metadata": metadata},
    }


def _dataset(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": row["dataset_id"]}
    if row.get("uri"):
        out["uri"] = row["uri"]
    if row.get("digest"):
        out["digest"] = {"sha256": row["digest"]}
    return out
