"""A prediction record's piecewise bytes must equal its canonical form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import HEX, json_values

from mltrail.canonical import canonicalize
from mltrail.catalog.ids import check_id, check_ids
from mltrail.catalog.predictions import PredictionRecord
from mltrail.errors import InvalidInputError

TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)
OUTPUT = json_values(TEXT, float_range=1e15, size=4, leaves=12)


@settings(max_examples=300, deadline=None)
@given(TEXT, TEXT, TEXT, TEXT, HEX, OUTPUT)
def test_record_bytes_are_canonical(
    pid: str, dep: str, version: str, ts: str, hmac: str, output: object
) -> None:
    record = PredictionRecord(pid, dep, version, ts, hmac, output)
    assert record.to_bytes() == canonicalize(record.to_dict())
    assert PredictionRecord.from_bytes(record.to_bytes()) == record


def _refusal(check: Callable[[Any, str], object], value: Any) -> str | None:
    try:
        check(value, "prediction id")
    except InvalidInputError as exc:
        return exc.message
    return None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=210), st.integers(), st.none()), max_size=5))
def test_checking_ids_together_refuses_what_checking_each_refuses(values: list[Any]) -> None:
    refusals = [_refusal(check_id, value) for value in values]
    first = next((message for message in refusals if message), None)
    assert _refusal(check_ids, values) == first
