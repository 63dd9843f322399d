"""Two writers changing one deployment at the same moment leave a log that agrees with itself.

A deploy names the version it replaces, a rollback the version it rolls back from: what it
read of the deployment. Were that read in a transaction of its own, another writer could
change the deployment between the read and the append, and the second event would name a
version the deployment no longer served. Each command reads and appends in one write
transaction, so the second writer waits for the first and reads what it left.

To make the race happen every time, each registry stops where it has read the deployment
and built its event, until the other registry gets there too, or a few seconds pass (under
one write transaction the other cannot get there: it waits for the lock).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mltrail.catalog import queries
from mltrail.events import Action, Actor, Event
from mltrail.ledger.log import EventFilter
from mltrail.service import Registry

ACTOR = Actor("user", "alice")
RENDEZVOUS = 2.0  # seconds one writer waits, having built its event, for the other

Command = Callable[[Registry, int], Any]

COMMANDS: dict[str, Command] = {
    # Both deploy (v1, v2) over churn:v3: the later must replace what the earlier deployed.
    "deploy": lambda reg, n: reg.deploy("D45", f"churn:v{n}", target="k8s/prod"),
    # Both roll back from churn:v3: the later must roll back from where the earlier went.
    "rollback": lambda reg, n: reg.rollback("D45", reason=f"writer {n}"),
}


def _deployed(registry: Registry, tmp_path: Path) -> None:
    """churn v1, v2 and v3, deployed on D45 in that order (D45 serves v3)."""
    registry.register_model("churn")
    for n in (1, 2, 3):
        folder = tmp_path / f"model-v{n}"
        folder.mkdir()
        (folder / "weights.json").write_text(f'{{"v": {n}}}')
        registry.add_version("churn", folder)
        registry.deploy("D45", f"churn:v{n}", target="k8s/prod")


def _meeting_before_append(reg: Registry, barrier: threading.Barrier) -> None:
    """Make ``reg`` wait at ``barrier`` whenever it builds a deploy or rollback event."""
    draft = reg._draft

    def waiting(action: str, *args: Any, **kwargs: Any) -> Any:
        if action in (Action.DEPLOY, Action.ROLLBACK):
            # Broken when the other writer holds the lock (or is done): go on alone.
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=RENDEZVOUS)
        return draft(action, *args, **kwargs)

    reg._draft = waiting  # type: ignore[method-assign]


def _run_together(root: Path, command: Command) -> list[Event]:
    """Run ``command`` from two registries on two threads at once; the events appended."""
    barrier = threading.Barrier(2)
    done: list[Event] = []
    failed: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with Registry.open(root, actor=ACTOR) as reg:
                _meeting_before_append(reg, barrier)
                done.append(command(reg, n).event)
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert not failed, failed
    return done


def _transitions(reg: Registry) -> list[tuple[str | None, str]]:
    """Each event on D45, in log order, as (the version it replaced, the version it serves)."""
    transitions = []
    for event in reg.events(EventFilter(subject_type="deployment", subject_id="D45")):
        meta = event.metadata
        if event.action == Action.DEPLOY:
            transitions.append((meta["previous_version"], meta["version"]))
        else:
            transitions.append((meta["from_version"], meta["to_version"]))
    return transitions


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_two_writers_on_one_deployment_each_replace_what_the_other_left(
    make_registry: Callable[..., Registry], database_url: str, tmp_path: Path, command: Command
) -> None:
    registry = make_registry(database_url)
    _deployed(registry, tmp_path)

    done = _run_together(registry.root, command)

    transitions = _transitions(registry)
    assert len(transitions) == 3 + 2 and len(done) == 2
    for (_, served), (replaced, _) in itertools.pairwise(transitions):
        assert replaced == served, f"an event replaced {replaced} while {served} was served"
    with registry.db.read() as conn:
        assert queries.get(conn, "deployment", "D45")["version_id"] == transitions[-1][1]
    report = registry.verify()
    assert report.ok, [str(p) for p in report.problems]
