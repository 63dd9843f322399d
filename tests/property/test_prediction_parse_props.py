"""Checking a batch of prediction records: the C twin against the Python path.

`parse_records` hands the batch to the C twin (`mltrail.catalog._records.columns`) where
it is built, which takes the plain, all-valid case and gives back None for anything else;
the Python path then runs. Either way the outcome must be what `parse_records_python`
gives: the same columns, or the same error with the same message. The batches below are
plain but for a field or two of a record or two, made unusual or wrong.
"""

from __future__ import annotations

import os
import types
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import HEX, json_values

from mltrail.catalog import predictions
from mltrail.catalog.predictions import parse_records, parse_records_python
from mltrail.errors import RegistryError

SERVED = {"D1": "model:churn:v2", "D2": "model:fraud:v7"}
SECRET = b"k" * 32
NOW = "2024-06-01T09:30:00.000000Z"

# Anything an id could be: printable, spaces, controls, Unicode whitespace, surrogates.
ID_TEXT = st.text(
    st.sampled_from("Pp0-:_.") | st.characters(), min_size=0, max_size=8
) | st.sampled_from(["", " ", "P\u00a0", "P\u2028", "P\x85", "P\x7f", "P\ud800", "x" * 201])
OUTPUT = json_values(st.text(max_size=6), float_range=1e17, size=3, leaves=6)
# What the C encoder of canonical JSON takes (`canonicalize`'s fast set): BMP keys, floats
# printed in plain digits.
PLAIN_OUTPUT = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(1e-4, 1e15).filter(lambda x: not x.is_integer())
    | st.text(max_size=6),
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(st.text(st.characters(max_codepoint=0xFFFF), max_size=4), c, max_size=3)
    ),
    max_leaves=6,
)
ODD_OUTPUT = st.sampled_from(
    [float("nan"), 2**60, (1, 2), {1: "a"}, {"\U0001f600": 1}, object(), 1e300, -0.0]
)


@st.composite
def stamps(draw: st.DrawFn) -> Any:
    """The registry's form with digits in and out of range, other forms, other types."""
    year, month, day = (
        draw(st.integers(0, 9999)),
        draw(st.integers(0, 13)),
        draw(st.integers(0, 32)),
    )
    hour, minute, second = (
        draw(st.integers(0, 25)),
        draw(st.integers(0, 61)),
        draw(st.integers(0, 61)),
    )
    form = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.123456Z"
    return draw(
        st.sampled_from([form, form, form[:-1], form.replace("T", " "), form + "\n"])
        | st.sampled_from(
            [
                None,
                "",
                0,
                12,
                "2024-06-01T09:30:00Z",
                "2024-06-01T11:30:00.5+02:00",
                "2024-02-29T00:00:00.000000Z",
                "2023-02-29T00:00:00.000000Z",
                "2024-06-01T09:30:00.000000z",
                "\u0662024-06-01T09:30:00.000000Z",
                "not a time",
            ]
        )
    )


FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "prediction_id": ID_TEXT | st.integers() | st.none(),
    "deployment": st.sampled_from(["D1", "D2"]),
    "output": OUTPUT | ODD_OUTPUT,
    "input_hmac": HEX | st.integers() | st.none() | st.text(max_size=3),
    "input": OUTPUT | ODD_OUTPUT,
    "subject": st.none() | st.text(max_size=3) | st.integers(),
    "version": st.sampled_from([None, "", 0, "churn:v2", "model:fraud:v7", "bad version"]),
    "timestamp": stamps(),
}


@st.composite
def batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(1, 12))
    items: list[dict[str, Any]] = []
    for position in range(size):
        item: dict[str, Any] = {
            "prediction_id": f"P{position}",
            "deployment": draw(st.sampled_from(["D1", "D1", "D2"])),
            "input_hmac": draw(HEX),
            "output": draw(PLAIN_OUTPUT),
        }
        if draw(st.booleans()):
            item["timestamp"] = draw(st.sampled_from([NOW, "2024-06-01T09:30:00.000001Z", None]))
        items.append(item)
    for _ in range(draw(st.integers(0, 2))):  # a field made unusual, wrong, added or removed
        item = items[draw(st.integers(0, size - 1))]
        name = draw(st.sampled_from(sorted(FIELDS)))
        if name in item and draw(st.integers(0, 4)) == 0:
            del item[name]
        else:
            item[name] = draw(FIELDS[name])
    if size > 1 and draw(st.integers(0, 9)) == 0:
        items[-1]["prediction_id"] = items[0].get("prediction_id")  # a repeated id
    return items


def _outcome(parse: Any, items: list[dict[str, Any]]) -> object:
    deployments = [str(item.get("deployment", "D1")) for item in items]
    try:
        return parse(items, deployments, SERVED, SECRET, lambda: NOW)
    except RegistryError as exc:
        return type(exc), exc.message


@pytest.mark.skipif(not os.environ.get("MLTRAIL_REQUIRE_NATIVE"), reason="the C twins are optional")
def test_the_c_twins_are_built_where_required() -> None:
    """Without them `parse_records` and `seal_records` take the Python path, the agreement
    tests here and in test_prediction_seal_props compare it with itself, and the
    `importorskip` tests skip: a broken build would pass unnoticed."""
    for twin in (
        predictions._canonical_native,
        predictions._columns_native,
        predictions._seal_native,
    ):
        assert isinstance(twin, types.BuiltinFunctionType), twin


@settings(max_examples=1500, deadline=None)
@given(batches())
def test_parse_records_agrees_with_the_python_path(items: list[dict[str, Any]]) -> None:
    assert _outcome(parse_records, items) == _outcome(parse_records_python, items)


@settings(max_examples=500, deadline=None)
@given(stamps())
def test_c_twin_keeps_a_timestamp_only_in_the_registry_form(stamp: Any) -> None:
    """What it keeps as given is what the Python path keeps as given (in ASCII digits);
    the rest the Python path normalizes or refuses."""
    native = pytest.importorskip("mltrail.catalog._records")
    from mltrail._native import canonical

    item = {"prediction_id": "P1", "input_hmac": "h", "output": 1, "timestamp": stamp}
    taken = native.columns([item], canonical, lambda: NOW) is not None
    given = isinstance(stamp, str) and stamp != ""
    assert (taken and given) == (
        given
        and stamp.isascii()
        and predictions.CANONICAL_TIMESTAMP.match(stamp) is not None
        and predictions._real_time(stamp)
    )


def test_c_twin_takes_plain_batches_and_leaves_the_rest() -> None:
    native = pytest.importorskip("mltrail.catalog._records")
    from mltrail._native import canonical

    plain = {"prediction_id": "P1", "deployment": "D1", "input_hmac": "h", "output": {"s": 0.5}}
    assert native.columns([plain], canonical, lambda: NOW) == (["P1"], [NOW], ["h"], [b'{"s":0.5}'])
    for change in (
        {"input": 1},
        {"version": "churn:v2"},
        {"timestamp": "2024-06-01T09:30:00Z"},
        {"input_hmac": 1},
        {"prediction_id": "P 1"},
        {"output": float("nan")},
    ):
        assert native.columns([{**plain, **change}], canonical, lambda: NOW) is None
    assert native.columns([plain, dict(plain)], canonical, lambda: NOW) is None  # P1 twice
    assert native.columns([], canonical, lambda: NOW) is None


def test_the_clock_is_read_once_and_only_when_a_timestamp_is_missing() -> None:
    native = pytest.importorskip("mltrail.catalog._records")
    from mltrail._native import canonical

    readings: list[str] = []

    def clock() -> str:
        readings.append(NOW)
        return NOW

    given = {"input_hmac": "h", "output": 1, "timestamp": "2024-06-01T09:30:00.000001Z"}
    assert native.columns([{**given, "prediction_id": "P1"}], canonical, clock) is not None
    assert readings == []
    items = [{"prediction_id": f"P{i}", "input_hmac": "h", "output": 1} for i in range(3)]
    assert native.columns(items, canonical, clock) == (
        ["P0", "P1", "P2"],
        [NOW] * 3,
        ["h"] * 3,
        [b"1"] * 3,
    )
    assert readings == [NOW]
