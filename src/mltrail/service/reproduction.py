"""Reproducing a prediction (seed Example 1, practical project 3) and reconciling storage
against the log (seed step 7). Both append their outcome as evidence.
"""

from __future__ import annotations

import json
import random
import shlex
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mltrail.artifacts.manifest import Manifest
from mltrail.canonical import loads
from mltrail.capture.environment import Environment, capture_environment, diff_environments
from mltrail.errors import (
    ConfigError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    StorageError,
)
from mltrail.events import Action, Event, Ref, SubjectType
from mltrail.ledger.log import EventFilter
from mltrail.privacy.redaction import keyed_hash
from mltrail.repro.lockfile import lockfile_format
from mltrail.repro.runner import (
    ScoringError,
    build_isolated_env,
    compare_outputs,
    score_in_process,
    score_isolated,
)
from mltrail.service.base import Appended
from mltrail.service.privacy import PrivacyUseCases
from mltrail.storage import schema as t

__all__ = ["OperationsUseCases"]


class _NotReproducible(Exception):
    """Why a reproduction cannot even be attempted (input erased, artifact missing, …)."""


class OperationsUseCases(PrivacyUseCases):
    """Re-running predictions and checking storage against the log."""

    # -- reproduction -------------------------------------------------------------------------

    def reproduce(
        self,
        prediction_id: str,
        *,
        isolated: bool = False,
        wheel_dir: Path | None = None,
        tolerance: float | None = None,
        workdir: Path | None = None,
    ) -> dict[str, Any]:
        """Trace ``prediction_id``, fetch its model by digest, re-score its recorded input and
        compare. The outcome (reproduced, different, not reproducible) is appended as a
        `reproduce` event, so a reproduction is itself evidence."""
        self._require("read")
        trace = self.trace_prediction(prediction_id)
        result: dict[str, Any] = {
            "prediction_id": prediction_id,
            "chain": trace["chain"],
            "isolated": isolated,
        }
        with tempfile.TemporaryDirectory(dir=workdir) as scratch:
            try:
                result.update(self._rerun(trace, Path(scratch), isolated, wheel_dir, tolerance))
            except _NotReproducible as exc:
                result.update(outcome="not reproducible", reason=str(exc))
            except (ScoringError, ConfigError) as exc:
                result.update(outcome="not reproducible", reason=f"scoring failed: {exc.message}")
        done = self._append(
            [
                self._draft(
                    Action.REPRODUCE,
                    Ref(SubjectType.PREDICTION, prediction_id),
                    related=[
                        Ref(
                            SubjectType.MODEL_VERSION,
                            trace["model_version"]["version_id"],
                            role="reproduced_with",
                            digest=trace["model_version"]["manifest_sha256"],
                        )
                    ],
                    # `result` names what happened; `outcome` stays success or failure
                    # (DESIGN §2), which the `outcome=` below sets.
                    metadata={"result": result["outcome"]}
                    | {
                        k: v
                        for k, v in result.items()
                        if k in ("reason", "difference", "isolated", "environment_differences")
                    },
                    outcome="success" if result["outcome"] == "reproduced" else "failure",
                )
            ]
        )[0]
        result["event"] = done.event.seq
        return result

    def _rerun(
        self,
        trace: dict[str, Any],
        scratch: Path,
        isolated: bool,
        wheel_dir: Path | None,
        tolerance: float | None,
    ) -> dict[str, Any]:
        version = trace["model_version"]
        if not version.get("entrypoint"):
            raise _NotReproducible(
                f"{version['version_id']} was registered without a scoring entry point"
            )
        model_dir = self._fetch_model(version["manifest_sha256"], scratch / "model")
        raw_input = self._recorded_input(trace["prediction"])
        recorded_env = self._recorded_environment(trace)
        out: dict[str, Any] = {"environment_differences": self._env_differences(recorded_env)}
        if isolated:
            python = self._isolated_python(recorded_env, scratch / "venv", wheel_dir)
            current = score_isolated(python, model_dir, version["entrypoint"], raw_input)
        else:
            current = score_in_process(model_dir, version["entrypoint"], raw_input)
        same, difference = compare_outputs(trace["prediction"]["output"], current, tolerance)
        out.update(
            outcome="reproduced" if same else "different",
            recorded_output=trace["prediction"]["output"],
            output=current,
            difference=difference,
        )
        return out

    def _fetch_model(self, manifest_digest: str, dest: Path) -> Path:
        try:
            manifest = Manifest.from_dict(loads(self.store.read_bytes(manifest_digest)))
            for item in manifest.files:
                target = dest / item.path
                target.parent.mkdir(parents=True, exist_ok=True)
                self.store.get(item.digest, target)
        except IntegrityError as exc:
            raise _NotReproducible(f"model artifact digest mismatch: {exc.message}") from exc
        except NotFoundError as exc:
            raise _NotReproducible(f"model artifact missing: {exc.message}") from exc
        return dest

    def _recorded_input(self, prediction: dict[str, Any]) -> Any:
        pid = prediction["prediction_id"]
        data = self.payload(f"prediction:{pid}:input")
        if data is None:
            raise _NotReproducible(self._why_no_input(pid, prediction["timestamp"]))
        value = loads(data)
        if keyed_hash(self.secret, value) != prediction["input_hmac"]:
            raise _NotReproducible("kept input does not match the logged input digest")
        return value

    def _why_no_input(self, pid: str, logged_at: str) -> str:
        if any(
            e.action == "erase" and e.outcome == "success"
            for e in self._mentions("prediction", pid)
        ):
            return "input erased"
        purges = self.events(EventFilter(action="erase", since=logged_at))
        if any(e.metadata.get("status") == "purged" for e in purges):
            return "input purged by retention (or never kept)"
        return "input was not kept for reproduction"

    def _mentions(self, ref_type: str, ref_id: str) -> Iterator[Event]:
        with self.db.read() as conn:
            seqs = [
                int(s)
                for (s,) in conn.execute(
                    sa.select(t.event_refs.c.seq).where(
                        t.event_refs.c.ref_type == ref_type, t.event_refs.c.ref_id == ref_id
                    )
                )
            ]
        return (self.log.event(s) for s in seqs)

    def _recorded_environment(self, trace: dict[str, Any]) -> Environment | None:
        env = trace.get("environment")
        if not env:
            return None
        try:
            return Environment.from_dict(loads(self.store.read_bytes(env["document_sha256"])))
        except (IntegrityError, NotFoundError) as exc:
            raise _NotReproducible(f"environment record unusable: {exc.message}") from exc

    def _env_differences(self, recorded: Environment | None) -> list[str]:
        if recorded is None:
            return ["no environment was recorded for the run"]
        current = capture_environment(None)
        return diff_environments(
            {**recorded.to_dict(), "lockfiles": []}, {**current.to_dict(), "lockfiles": []}
        )

    def _isolated_python(
        self, recorded: Environment | None, dest: Path, wheel_dir: Path | None
    ) -> Path:
        """A fresh virtualenv from the first recorded lockfile pip can install from."""
        for lock in recorded.lockfiles if recorded is not None else ():
            path = dest.parent / Path(lock.name).name
            try:
                self.store.get(lock.sha256, path)
                lockfile_format(path)
            except (NotFoundError, IntegrityError) as exc:
                raise _NotReproducible(
                    f"recorded lockfile {lock.name} unavailable: {exc.message}"
                ) from exc
            except InvalidInputError:
                continue  # uv.lock, poetry.lock: recorded, but pip cannot install from them
            return build_isolated_env(path, [], dest, wheel_dir=wheel_dir)
        return build_isolated_env(None, [], dest, wheel_dir=wheel_dir)

    # -- reconciliation ------------------------------------------------------------------------

    def reconcile(
        self,
        *,
        sample: int | None = None,
        alert_command: str | None = None,
        webhook: str | None = None,
    ) -> dict[str, Any]:
        """Compare every artifact the log references with storage: present, right size,
        re-hashed (all, or a random ``sample``); list orphans. Appends a `reconcile` event;
        versions whose files are missing or changed are flagged `integrity_failed`, which
        blocks their promotion and deployment until resolved."""
        self._require("administer")
        referenced = self._referenced()
        problems = self._check_artifacts(referenced, sample)
        orphans = sorted(set(self.store.iter_digests()) - set(referenced))
        failing = sorted({v for d in problems for v in referenced.get(d, {}).get("versions", [])})
        report = {
            "checked": len(referenced) if sample is None else min(sample, len(referenced)),
            "referenced": len(referenced),
            "problems": problems,
            "orphans": orphans,
            "failing_versions": failing,
            "ok": not problems,
        }
        draft = self._draft(
            Action.RECONCILE,
            Ref(SubjectType.REGISTRY, self.settings.origin),
            metadata={
                **{k: report[k] for k in ("checked", "referenced", "problems", "failing_versions")},
                "orphans": len(orphans),
                "sample": sample,
            },
            outcome="success",
        )
        report["event"] = self._append([draft])[0].event.seq
        if problems:
            _alert(report, alert_command, webhook)
        return report

    def _referenced(self) -> dict[str, dict[str, Any]]:
        """digest → {size (when known), versions whose integrity depends on it}."""
        refs: dict[str, dict[str, Any]] = {}
        with self.db.read() as conn:
            versions = conn.execute(
                sa.select(t.versions.c.version_id, t.versions.c.manifest_sha256)
            ).all()
            datasets = [
                d
                for (d,) in conn.execute(
                    sa.select(t.datasets.c.digest).where(t.datasets.c.digest.is_not(None))
                )
            ]
            others = [d for (d,) in conn.execute(sa.select(t.environments.c.document_sha256))]
            others += [d for (d,) in conn.execute(sa.select(t.attestations.c.envelope_sha256))]
        for event in self.events():
            if event.artifact_sha256 and event.action in (
                "log_predictions",
                "set_policy",
                "deploy",
            ):
                refs.setdefault(event.artifact_sha256, {"versions": []})
            for digest in _named_digests(event.metadata):
                refs.setdefault(digest, {"versions": []})
        for version_id, manifest in versions:
            for digest, size in self._manifest_entries(manifest):
                refs.setdefault(digest, {"versions": []})["versions"].append(version_id)
                refs[digest]["size"] = size
        for manifest in datasets:
            for digest, size in self._manifest_entries(manifest):
                refs.setdefault(digest, {"versions": []})["size"] = size
        for digest in others:
            refs.setdefault(digest, {"versions": []})
        return refs

    def _manifest_entries(self, manifest_digest: str) -> list[tuple[str, int | None]]:
        entries: list[tuple[str, int | None]] = [(manifest_digest, None)]
        try:
            manifest = Manifest.from_dict(loads(self.store.read_bytes(manifest_digest)))
        except (IntegrityError, NotFoundError):
            return entries
        return entries + [(f.digest, f.size) for f in manifest.files]

    def _check_artifacts(
        self, refs: dict[str, dict[str, Any]], sample: int | None
    ) -> dict[str, str]:
        digests = sorted(refs)
        chosen = (
            set(random.sample(digests, min(sample, len(digests))))
            if sample is not None
            else set(digests)
        )
        problems: dict[str, str] = {}
        for digest in digests:
            size = self.store.stat(digest)
            if size is None:
                problems[digest] = "missing from storage"
            elif refs[digest].get("size") is not None and size != refs[digest]["size"]:
                problems[digest] = f"size {size} differs from recorded {refs[digest]['size']}"
            elif digest in chosen:
                try:
                    self.store.verify(digest)
                except IntegrityError as exc:
                    problems[digest] = exc.message
        return problems

    def resolve_integrity(self, version: str, *, reason: str) -> Appended:
        """Clear a version's integrity flag after its artifacts verify again (operator action)."""
        self._require("administer")
        row = self.get_version(self.resolve_version(version))
        bad = self._check_artifacts(
            {d: {"versions": []} for d, _ in self._manifest_entries(row["manifest_sha256"])}, None
        )
        if bad:
            raise IntegrityError(
                f"{row['version_id']} still has {len(bad)} missing or changed artifacts",
                errors=[f"{d}: {p}" for d, p in bad.items()],
                hint="restore the files from a trusted copy, then resolve again",
            )
        draft = self._draft(
            Action.RESOLVE,
            Ref(SubjectType.MODEL_VERSION, row["version_id"], digest=row["manifest_sha256"]),
            metadata={"flag": "integrity_failed", "reason": reason},
        )
        return self._append([draft])[0]


def _named_digests(metadata: Mapping[str, Any]) -> list[str]:
    """Artifacts an event names in its metadata: a deployment's config, a promotion's
    verification summary, an environment's lockfiles."""
    named = [metadata.get("config_sha256"), metadata.get("verification_attestation")]
    lockfiles = metadata.get("lockfiles")
    if isinstance(lockfiles, dict):
        named += lockfiles.values()
    return [d for d in named if isinstance(d, str)]


def _alert(report: dict[str, Any], command: str | None, webhook: str | None) -> None:
    payload = json.dumps(report, sort_keys=True).encode()
    if command:
        try:
            subprocess.run(shlex.split(command), input=payload, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StorageError(f"alert command {command!r} could not run: {exc}") from exc
    if webhook:
        if not webhook.startswith(("http://", "https://")):
            raise InvalidInputError(f"webhook {webhook!r} must be an http(s) URL")
        request = urllib.request.Request(
            webhook, data=payload, headers={"Content-Type": "application/json"}
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except OSError as exc:
            raise StorageError(f"webhook {webhook} failed: {exc}") from exc
