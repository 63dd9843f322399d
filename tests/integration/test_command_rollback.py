"""A command whose transaction fails after its append returned leaves no trace: not in the
log, and not in the tree the registry keeps in memory to seal its next append.

The log caches the Merkle frontier of its last append. When the command's transaction is
then rolled back (a failure after the append, at commit or in the command's own code), that
cache describes a tree the database no longer has; if another writer then brings the log to
the same size, a stale cache would seal the next append onto the wrong tree, and its signed
checkpoint would not match the log. The registry drops the cache on any such failure.
"""

from __future__ import annotations

import pytest

from mltrail.events import Action, Actor, Ref, SubjectType
from mltrail.service import Registry


class CommitFailed(Exception):
    """Stands in for what can fail after an append: the commit, or the command's own code."""


def test_a_command_failing_after_its_append_leaves_the_log_and_its_tree_as_they_were(
    registry: Registry,
) -> None:
    registry.register_model("churn")
    size = registry.log.size()

    with pytest.raises(CommitFailed), registry._command("register") as _:
        registry._append([registry._draft(Action.REGISTER, Ref(SubjectType.MODEL, "lost"))])
        raise CommitFailed

    assert registry.log.size() == size
    assert not any(e.subject.id == "lost" for e in registry.events())
    # Another writer takes the log to the size the rolled-back append had reached...
    with Registry.open(registry.root, actor=Actor("user", "alice")) as other:
        other.register_model("fraud")
    # ...and this registry's next append must still seal onto the log as stored.
    registry.register_model("credit")

    report = registry.verify()
    assert report.ok, report
    assert registry.log.size() == size + 2
    assert [e.subject.id for e in registry.events()][-2:] == ["fraud", "credit"]
