"""Comparing a re-computed output with the recorded one: exact, with tolerance, nested."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from mltrail.errors import FormatError, InvalidInputError
from mltrail.repro import compare
from mltrail.repro.compare import compare_outputs


@pytest.mark.parametrize(
    ("recorded", "current"),
    [
        ({"score": 0.731201, "label": "churn"}, {"label": "churn", "score": 0.731201}),
        ([1.0, 2.5], [1, 2.5]),
        ("é", "é"),
        (None, None),
    ],
    ids=["key-order", "float-equals-int", "unicode", "null"],
)
def test_equal_canonical_json_is_the_same(recorded: Any, current: Any) -> None:
    assert compare_outputs(recorded, current) == (True, None)


@pytest.mark.parametrize(
    ("recorded", "current", "difference"),
    [
        ({"score": 0.731201}, {"score": 0.731305}, "output.score: recorded 0.731201, now 0.731305"),
        (0.5, 0.25, "output: recorded 0.5, now 0.25"),
        (
            {"a": {"items": [{"p": 1}, {"p": 2}]}},
            {"a": {"items": [{"p": 1}, {"p": 3}]}},
            "output.a.items[1].p: recorded 2, now 3",
        ),
        ({"a": 1}, {"a": 1, "b": 2}, "output.b: recorded absent, now 2"),
        ({"a": 1, "b": 2}, {"a": 1}, "output.b: recorded 2, now absent"),
        ([1, 2], [1, 2, 3], "output[2]: recorded absent, now 3"),
        (
            {"class label": "x"},
            {"class label": "y"},
            'output["class label"]: recorded "x", now "y"',
        ),
        ({"n": 1}, {"n": True}, "output.n: recorded 1, now true"),
        ({"n": [1]}, {"n": {"0": 1}}, 'output.n: recorded [1], now {"0":1}'),
        ({"a": 1, "z": 1}, {"a": 2, "z": 2}, "output.a: recorded 1, now 2"),
    ],
    ids=[
        "score",
        "top-level",
        "nested",
        "added-key",
        "removed-key",
        "added-item",
        "quoted-key",
        "bool-is-not-int",
        "type-change",
        "first-in-key-order",
    ],
)
def test_the_first_difference_is_described(recorded: Any, current: Any, difference: str) -> None:
    assert compare_outputs(recorded, current) == (False, difference)


def test_tolerance_applies_to_floats_at_any_depth() -> None:
    recorded = {"scores": [{"p": 0.731201}, {"p": 0.1}], "label": "churn"}
    current = {"scores": [{"p": 0.731305}, {"p": 0.1000004}], "label": "churn"}
    assert compare_outputs(recorded, current, tolerance=1e-3) == (True, None)
    assert compare_outputs(recorded, current, tolerance=1e-5) == (
        False,
        "output.scores[0].p: recorded 0.731201, now 0.731305",
    )
    assert compare_outputs(recorded, current) == (
        False,
        "output.scores[0].p: recorded 0.731201, now 0.731305",
    )


def test_tolerance_leaves_everything_else_exact() -> None:
    assert compare_outputs({"n": 3}, {"n": 4}, tolerance=5) == (
        False,
        "output.n: recorded 3, now 4",
    )  # integers stay exact
    assert compare_outputs({"n": 1.0}, {"n": True}, tolerance=1) == (
        False,
        "output.n: recorded 1, now true",
    )
    assert compare_outputs({"s": "a"}, {"s": "b"}, tolerance=1) == (
        False,
        'output.s: recorded "a", now "b"',
    )
    assert compare_outputs([0.5], [0.5, 0.5], tolerance=1) == (
        False,
        "output[1]: recorded absent, now 0.5",
    )
    assert compare_outputs({"p": 1}, {"p": 1.0000001}, tolerance=1e-6) == (True, None)


def test_long_values_are_shortened() -> None:
    same, difference = compare_outputs({"text": "a" * 200}, {"text": "b"})
    assert not same and difference is not None
    assert difference.startswith('output.text: recorded "aaaa') and "…, now" in difference
    assert len(difference) < 130


@pytest.mark.parametrize(
    "tolerance", [-0.1, float("nan"), float("inf")], ids=["negative", "nan", "infinite"]
)
def test_bad_tolerance_is_refused(tolerance: float) -> None:
    with pytest.raises(InvalidInputError, match="tolerance"):
        compare_outputs(1.0, 1.0, tolerance=tolerance)


def test_non_json_values_are_refused() -> None:
    with pytest.raises(FormatError):
        compare_outputs({"x": float("nan")}, {"x": 1.0})


def test_module_docstring_examples_run() -> None:
    result = doctest.testmod(compare)
    assert result.attempted > 0
    assert result.failed == 0
