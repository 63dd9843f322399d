"""The derived-column check: exact on every event, and its fast path never disagrees with
parsing the event (`mltrail.ledger.chunk.columns_match`)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import events

from mltrail.events import Event
from mltrail.ledger.chunk import _parsed_match, columns_match

# Text that collides with the body's own punctuation, so that a check by position that
# could be fooled by a value quoting another field would be.
TRICKY = st.sampled_from(['"', "\\", '","type":"', '"},"timestamp":"', ',"seq":1', "{", "\u2028"])
TEXT = (
    st.lists(
        st.text(st.characters(codec="utf-8"), max_size=6) | TRICKY,
        min_size=1,
        max_size=4,
    )
    .map("".join)
    .filter(bool)
)
EVENTS = events(TEXT, st.dictionaries(TEXT, TEXT | st.integers(0, 9), max_size=3), related=2)


def _columns(event: Event) -> tuple[object, ...]:
    subject = event.subject
    return (event.seq, event.action, event.actor.id, event.event_id, subject.type, subject.id,
            event.timestamp)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_an_event_matches_its_own_columns(event: Event) -> None:
    assert columns_match(event.canonical_bytes(), *_columns(event))  # type: ignore[arg-type]


@settings(max_examples=500, deadline=None)
@given(EVENTS, st.integers(0, 6), TEXT | st.integers(0, 2**40))
def test_the_check_agrees_with_parsing_for_any_column(
    event: Event, position: int, value: object
) -> None:
    columns = list(_columns(event))
    columns[position] = value
    body = event.canonical_bytes()

    assert columns_match(body, *columns) == _parsed_match(body, tuple(columns))  # type: ignore[arg-type]
