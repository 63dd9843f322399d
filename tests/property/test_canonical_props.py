"""The fast encoders must equal the full RFC 8785 implementation on every value."""

from __future__ import annotations

import math

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.canonical import MAX_SAFE_INTEGER, canonicalize, loads

SAFE_INTS = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
FLOATS = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda x: not MAX_SAFE_INTEGER < abs(x) < 1e21
)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
SCALARS = st.none() | st.booleans() | SAFE_INTS | FLOATS | TEXT
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_canonicalize_equals_rfc8785(value: object) -> None:
    assert canonicalize(value) == rfc8785.dumps(value)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_parse_render_round_trip(value: object) -> None:
    once = canonicalize(value)
    assert canonicalize(loads(once)) == once


@settings(max_examples=300, deadline=None)
@given(FLOATS)
def test_floats_read_back_exactly(value: float) -> None:
    back = loads(canonicalize([value]))[0]
    assert back == value or (math.isclose(back, 0.0) and value == 0.0)
