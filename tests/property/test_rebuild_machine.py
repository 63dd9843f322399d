"""A state machine over a SQLite registry (STYLE §8, DESIGN §1): rebuild equals the live tables.

Random sequences of commands register datasets, runs, models and versions, deploy, roll
back, log predictions, set aliases and promote (no policy in force). A small model of the
registry predicts which commands must fail and with which `RegistryError`; a refused
command must leave the log as it was. Every few steps, and at the end, replaying the log
into empty projections must give exactly the live tables, and the log must verify.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mltrail.errors import ConflictError, InvalidInputError, NotFoundError, RegistryError
from mltrail.events import Actor
from mltrail.service import Appended, Registry

DATASETS = ("DS:1", "DS:2", "DS:3")
RUNS = ("R1", "R2", "R3")
MODELS = ("churn", "fraud")
DEPLOYMENTS = ("D1", "D2")
ALIASES = ("champion", "challenger")
# Version references as a user types them: canonical, short, by alias, and malformed.
# Repeats weight the draw towards versions that exist, so deploys and rollbacks happen.
VERSION_REFS = (
    "model:churn:v1",
    "churn:v1",
    "churn:v2",
    "churn:v2",
    "churn:v3",
    "fraud:v1",
    "model:fraud:v1",
    "fraud:v2",
    "churn@champion",
    "fraud@challenger",
    "churn:v0",
    "churn-v1",
    "ranker:v1",
)
CHECK_EVERY = 3


@dataclass
class Deployment:
    current: str
    # What `rollback` may return to, oldest first: each deploy's previous version and each
    # rollback's from_version, as the log records them.
    candidates: list[str | None] = field(default_factory=list)


class Expected:
    """What the registry should hold, kept independently of it."""

    def __init__(self) -> None:
        self.datasets: dict[str, tuple[str, int]] = {}  # id -> (digest, seq)
        self.runs: dict[str, tuple[object, int]] = {}  # id -> (content, seq)
        self.models: dict[str, int] = {}  # name -> seq
        self.versions: dict[
            str, list[tuple[int, str | None, int]]
        ] = {}  # model -> [(files, run, seq)]
        self.aliases: dict[tuple[str, str], str] = {}
        self.deployments: dict[str, Deployment] = {}
        self.predictions: set[str] = set()

    def resolve(self, ref: str) -> tuple[type[RegistryError], None] | tuple[None, str]:
        """The version id ``ref`` names, or the error resolving it must raise."""
        if "@" in ref:
            model, _, alias = ref.partition("@")
            found = self.aliases.get((model, alias))
            return (NotFoundError, None) if found is None else (None, found)
        name, _, number = ref.removeprefix("model:").partition(":v")
        if not number or not number.isdigit() or number.startswith("0"):
            return InvalidInputError, None
        if int(number) > len(self.versions.get(name, [])):
            return NotFoundError, None
        return None, f"model:{name}:v{number}"


class RebuildMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="mltrail-rebuild-"))
        self.reg: Registry = Registry.init(
            self.dir / "registry", origin="test.mltrail/rebuild", actor=Actor("user", "alice")
        )
        self.expected = Expected()
        self.steps = 0
        self.next_prediction = 0

    def teardown(self) -> None:
        try:
            self._check()
        finally:
            self.reg.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------

    def _run(
        self, error: type[RegistryError] | None, command: Callable[[], Appended]
    ) -> Appended | None:
        """Run ``command``; when ``error`` is given it must raise exactly that, writing nothing."""
        size = self.reg.log.size()
        if error is None:
            done = command()
            assert self.reg.log.size() == size + 1
            return done
        with pytest.raises(RegistryError) as caught:
            command()
        assert type(caught.value) is error, caught.value
        assert self.reg.log.size() == size
        return None

    def _same(self, command: Callable[[], Appended], seq: int) -> None:
        """Registering the same content again returns the earlier event and writes nothing."""
        size = self.reg.log.size()
        assert command().event.seq == seq
        assert self.reg.log.size() == size

    def _model_dir(self, files: int) -> Path:
        folder = self.dir / "files" / str(files)
        if not folder.exists():
            folder.mkdir(parents=True)
            (folder / "weights.json").write_text(f'{{"variant": {files}}}')
        return folder

    def _check(self) -> None:
        report = self.reg.rebuild()
        assert report["equal"], report["tables"]
        assert self.reg.verify().ok
        # What the log says each deployment serves now is what the commands did.
        served = [
            (d, v["version"])
            for model in MODELS
            for d, v in self.reg.state_at(model, "2100-01-01T00:00:00Z")["deployments"].items()
        ]
        assert sorted(served) == sorted(
            (d, known.current) for d, known in self.expected.deployments.items()
        )

    # -- rules --------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        """Both models and a dataset exist; D1 served churn:v1 (from run R1 on it), then
        churn:v2 (no run), so it can be rolled back."""
        for model in MODELS:
            self.register_model(model)
        self.register_dataset("DS:1", "a")
        self.register_run("R1", ["DS:1"], "finished", 0.1)
        self.add_version("churn", 0, "R1")
        self.add_version("churn", 1, None)
        self.deploy("D1", "churn:v1")
        self.deploy("D1", "churn:v2")

    @rule(dataset=st.sampled_from(DATASETS), content=st.sampled_from("ab"))
    def register_dataset(self, dataset: str, content: str) -> None:
        digest = content * 64

        def command() -> Appended:
            return self.reg.register_dataset(dataset, name="events", version="1", digest=digest)

        known = self.expected.datasets.get(dataset)
        if known is not None and known[0] == digest:
            self._same(command, known[1])
            return
        done = self._run(ConflictError if known else None, command)
        if done is not None:
            self.expected.datasets[dataset] = (digest, done.event.seq)

    @rule(
        run=st.sampled_from(RUNS),
        datasets=st.lists(st.sampled_from(DATASETS), max_size=2, unique=True),
        status=st.sampled_from(["finished", "failed", "done"]),
        lr=st.sampled_from([0.1, 0.5]),
    )
    def register_run(self, run: str, datasets: list[str], status: str, lr: float) -> None:
        def command() -> Appended:
            return self.reg.register_run(run, params={"lr": lr}, datasets=datasets, status=status)

        content = (sorted(datasets), status, lr)
        known = self.expected.runs.get(run)
        if status == "done":
            error: type[RegistryError] | None = InvalidInputError
        elif any(d not in self.expected.datasets for d in datasets):
            error = NotFoundError
        elif known is not None and known[0] == content:
            self._same(command, known[1])
            return
        else:
            error = ConflictError if known else None
        done = self._run(error, command)
        if done is not None:
            self.expected.runs[run] = (content, done.event.seq)

    @rule(model=st.sampled_from(MODELS))
    def register_model(self, model: str) -> None:
        def command() -> Appended:
            return self.reg.register_model(model)

        if model in self.expected.models:
            self._same(command, self.expected.models[model])
            return
        done = self._run(None, command)
        assert done is not None
        self.expected.models[model] = done.event.seq
        self.expected.versions[model] = []

    @rule(
        model=st.sampled_from((*MODELS, *MODELS, "ranker")),
        files=st.integers(0, 2),
        run=st.sampled_from((None, *RUNS)),
    )
    def add_version(self, model: str, files: int, run: str | None) -> None:
        def command() -> Appended:
            return self.reg.add_version(model, self._model_dir(files), run=run)

        if model not in self.expected.models or (run is not None and run not in self.expected.runs):
            self._run(NotFoundError, command)
            return
        versions = self.expected.versions[model]
        same = [seq for f, r, seq in versions if (f, r) == (files, run)]
        if same:
            self._same(command, same[0])
            return
        done = self._run(None, command)
        assert done is not None
        versions.append((files, run, done.event.seq))
        assert done.event.subject.id == f"model:{model}:v{len(versions)}"

    @rule(version=st.sampled_from(VERSION_REFS), alias=st.sampled_from(ALIASES))
    def set_alias(self, version: str, alias: str) -> None:
        error, vid = self.expected.resolve(version)
        if "@" in version:
            error = InvalidInputError  # an alias names a version, not another alias
        self._run(error, lambda: self.reg.set_alias(version, alias))
        if error is None and vid is not None:
            self.expected.aliases[(vid.split(":")[1], alias)] = vid

    @rule(
        version=st.sampled_from(VERSION_REFS),
        to=st.sampled_from(["staging", "production", "archived"]),
    )
    def promote(self, version: str, to: str) -> None:
        error, _ = self.expected.resolve(version)
        self._run(error, lambda: self.reg.promote(version, to=to))

    @rule(deployment=st.sampled_from(DEPLOYMENTS), version=st.sampled_from(VERSION_REFS))
    def deploy(self, deployment: str, version: str) -> None:
        error, vid = self.expected.resolve(version)
        done = self._run(error, lambda: self.reg.deploy(deployment, version, target="k8s/prod"))
        if done is None or vid is None:
            return
        known = self.expected.deployments.get(deployment)
        if known is None:
            self.expected.deployments[deployment] = Deployment(vid, [None])
        else:
            known.candidates.append(known.current)
            known.current = vid

    @rule(deployment=st.sampled_from((*DEPLOYMENTS, *DEPLOYMENTS, "D9")))
    def rollback(self, deployment: str) -> None:
        known = self.expected.deployments.get(deployment)
        target = None
        if known is not None:
            target = next((c for c in reversed(known.candidates) if c and c != known.current), None)
        done = self._run(
            None if target else NotFoundError,
            lambda: self.reg.rollback(deployment, reason="metrics dropped"),
        )
        if done is not None and known is not None and target is not None:
            assert done.event.metadata["to_version"] == target
            known.candidates.append(known.current)
            known.current = target

    @rule(
        deployment=st.sampled_from((*DEPLOYMENTS, *DEPLOYMENTS, "D9")),
        count=st.integers(1, 4),
        reuse=st.integers(-3, 20),
        unknown=st.sampled_from([False, False, False, True]),
    )
    def log_predictions(self, deployment: str, count: int, reuse: int, unknown: bool) -> None:
        ids = [f"P{self.next_prediction + i}" for i in range(count)]
        logged = sorted(self.expected.predictions)
        if reuse >= 0 and logged:  # replace one new id by one already logged
            ids[-1] = logged[reuse % len(logged)]
        records = [
            {"prediction_id": pid, "deployment": deployment, "input_hmac": "0" * 64, "output": 1}
            for pid in ids
        ]
        if unknown:
            records.insert(
                0, {"prediction_id": "P-bad", "deployment": "D9", "input": 1, "output": 0}
            )
        if unknown or deployment not in self.expected.deployments:
            error: type[RegistryError] | None = NotFoundError
        else:
            error = ConflictError if self.expected.predictions & set(ids) else None
        size = self.reg.log.size()
        if error is not None:
            self._run(error, lambda: self.reg.log_predictions(records)[0])
            return
        done = self.reg.log_predictions(records)
        assert [d.event.metadata["count"] for d in done] == [count]
        assert done[0].event.metadata["version"] == self.expected.deployments[deployment].current
        assert self.reg.log.size() == size + 1
        self.expected.predictions.update(ids)
        self.next_prediction += count

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def projections_rebuild_and_log_verifies(self) -> None:
        self.steps += 1
        if self.steps % CHECK_EVERY == 0:
            self._check()


TestRebuildMachine = RebuildMachine.TestCase
TestRebuildMachine.settings = settings(
    max_examples=10,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
