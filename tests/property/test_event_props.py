"""Events: the piecewise canonical bytes equal the canonical form of the body, and the
stored bytes parse back to the same event."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import events, json_values

from mltrail.canonical import canonicalize
from mltrail.events import Event, sha256_hex, uuid7

TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=16)
META = st.dictionaries(TEXT, json_values(TEXT, float_range=1e12, size=3, leaves=10), max_size=5)
EVENTS = events(TEXT, META, related=4)


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_canonical_bytes_equal_canonical_body(event: Event) -> None:
    assert event.canonical_bytes() == canonicalize(event.body())
    assert event.event_sha256 == sha256_hex(canonicalize(event.body()))


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_stored_bytes_parse_back(event: Event) -> None:
    again = Event.from_bytes(event.canonical_bytes())
    assert again.canonical_bytes() == event.canonical_bytes()
    assert again.to_wire() == event.to_wire()


@given(st.integers(0, 2**48 - 1))
def test_uuid7_carries_its_millisecond_version_and_variant(unix_ms: int) -> None:
    text = uuid7(unix_ms)
    parsed = uuid.UUID(text)
    assert str(parsed) == text  # lower-case, hyphenated, 36 characters
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == unix_ms


@given(st.integers(0, 2**48 - 1), st.binary(min_size=10, max_size=10))
def test_uuid7_keeps_the_random_bits_it_is_given(unix_ms: int, random: bytes) -> None:
    raw = unix_ms.to_bytes(6, "big") + random
    raw = raw[:6] + bytes([0x70 | raw[6] & 0x0F, raw[7], 0x80 | raw[8] & 0x3F]) + raw[9:]
    assert uuid7(unix_ms, random) == str(uuid.UUID(bytes=raw))


def test_uuid7_random_bits_differ_within_one_millisecond() -> None:
    ids = {uuid7(1_700_000_000_000) for _ in range(1000)}
    assert len(ids) == 1000
