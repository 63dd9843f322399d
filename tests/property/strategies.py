"""Hypothesis strategies shared by the property tests of what we hash and sign."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mltrail.canonical import MAX_SAFE_INTEGER
from mltrail.events import Actor, Event, Ref

HEX = st.text("0123456789abcdef", min_size=64, max_size=64)  # a SHA-256 in hex


def json_values(
    text: st.SearchStrategy[str], *, float_range: float, size: int, leaves: int
) -> st.SearchStrategy[Any]:
    """Any JSON value RFC 8785 can encode: safe integers, finite floats within
    ±``float_range``, strings from ``text``, and lists and objects of them."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
        | st.floats(min_value=-float_range, max_value=float_range, allow_nan=False)
        | text,
        lambda c: st.lists(c, max_size=size) | st.dictionaries(text, c, max_size=size),
        max_leaves=leaves,
    )


def events(
    text: st.SearchStrategy[str],
    metadata: st.SearchStrategy[dict[str, Any]],
    *,
    related: int,
) -> st.SearchStrategy[Event]:
    """Sealed events whose every string comes from ``text``."""
    return st.builds(
        Event,
        event_id=text,
        seq=st.integers(0, 2**40),
        action=text,
        actor=st.builds(Actor, st.sampled_from(["user", "service", "registry"]), text),
        timestamp=st.just("2024-05-15T09:00:00.000000Z"),
        subject=st.builds(Ref, text, text, st.none(), st.none() | HEX),
        related=st.lists(
            st.builds(Ref, text, text, st.none() | text, st.none() | HEX), max_size=related
        ).map(tuple),
        metadata=metadata,
        artifact_sha256=st.none() | HEX,
    )
