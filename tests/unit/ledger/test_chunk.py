"""`mltrail.ledger.chunk`: the derived-column check without parsing, and chunk planning."""

from __future__ import annotations

import pytest

from mltrail.errors import InvalidInputError
from mltrail.events import Actor, Draft, Event, Ref
from mltrail.ledger import chunk as chunk_module
from mltrail.ledger.chunk import Chunk, columns_match, plan_chunks

TS = "2024-05-15T09:00:00.000000Z"
DIGEST = "ab" * 32


def _event(
    *, actor: str = "alice", subject: Ref | None = None, seq: int = 7, metadata: object = None
) -> Event:
    draft = Draft(
        "promote",
        Actor("user", actor),
        subject or Ref("model_version", "m:1"),
        metadata={"outcome": "success"} if metadata is None else metadata,  # type: ignore[arg-type]
    )
    return draft.seal(event_id="0190f000-0000-7000-8000-000000000000", seq=seq, timestamp=TS)


def _columns(event: Event) -> tuple[object, ...]:
    return (
        event.seq,
        event.action,
        event.actor.id,
        event.event_id,
        event.subject.type,
        event.subject.id,
        event.timestamp,
    )


EVENTS = {
    "plain": _event(),
    "subject-digest": _event(subject=Ref("model_version", "m:1", digest=DIGEST)),
    "quote-and-backslash": _event(actor='a"l\\ice'),
    "lookalike-field-in-id": _event(actor='x","type":"user"},"event_id":"y'),
    "non-ascii": _event(actor="jos\u00e9 \u2028", subject=Ref("model", "\u00fcber")),
    "control-character": _event(actor="tab\there"),
    "seq-text-in-metadata": _event(metadata={"q": ',"seq":7,"subject":{"id":"m:1","type":"x"}'}),
    "seq-object-in-metadata": _event(metadata={"seq": 7, "subject": {"id": "m:1", "type": "x"}}),
    "big-seq": _event(seq=2**40),
}


@pytest.mark.parametrize("event", EVENTS.values(), ids=EVENTS.keys())
def test_the_columns_of_an_event_match_its_bytes(event: Event) -> None:
    assert columns_match(event.canonical_bytes(), *_columns(event))  # type: ignore[arg-type]


@pytest.mark.parametrize("event", EVENTS.values(), ids=EVENTS.keys())
@pytest.mark.parametrize(
    ("position", "value"),
    [
        (0, 8),
        (0, True),
        (0, "7"),
        (1, "register"),
        (2, "mallory"),
        (3, "0190f000-0000-7000-8000-000000000001"),
        (4, "dataset"),
        (5, "m:2"),
        (5, 'm:1","type":"model_version'),
        (6, "2020-01-01T00:00:00.000000Z"),
        (6, None),
        (2, b"alice"),
    ],
    ids=[
        "seq",
        "seq-as-bool",
        "seq-as-text",
        "action",
        "actor",
        "event-id",
        "subject-type",
        "subject-id",
        "subject-id-spanning-fields",
        "timestamp",
        "timestamp-null",
        "actor-as-bytes",
    ],
)
def test_any_changed_column_is_a_mismatch(event: Event, position: int, value: object) -> None:
    columns = list(_columns(event))
    columns[position] = value

    assert not columns_match(event.canonical_bytes(), *columns)  # type: ignore[arg-type]


def test_plain_events_match_without_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(body: bytes, columns: tuple[object, ...]) -> bool:
        raise AssertionError("the fast path should have decided")

    monkeypatch.setattr(chunk_module, "_parsed_match", refuse)
    for name in ("plain", "subject-digest", "quote-and-backslash", "non-ascii", "big-seq"):
        event = EVENTS[name]
        assert columns_match(event.canonical_bytes(), *_columns(event)), name  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b'{"actor": 1, "subject": {}}', b"\xff\xfe"],
    ids=["empty", "not-json", "array", "wrong-shapes", "not-utf8"],
)
def test_a_body_that_is_not_an_event_matches_no_columns(body: bytes) -> None:
    assert not columns_match(body, 7, "promote", "alice", "e", "model", "m", TS)


def test_chunks_are_aligned_and_carry_the_sizes_inside_them() -> None:
    chunks = plan_chunks(10, [0, 3, 4, 5, 10, 11], level=2)

    assert [(c.start, c.end, c.sizes) for c in chunks] == [
        (0, 4, (3, 4)),
        (4, 8, (5,)),
        (8, 10, (10,)),
    ]
    assert plan_chunks(0, [0], level=2) == []


@pytest.mark.parametrize(
    ("start", "end", "sizes"),
    [(2, 4, ()), (0, 5, ()), (4, 4, ()), (0, 4, (5,)), (4, 8, (4,))],
    ids=["unaligned", "too-long", "empty", "size-after", "size-at-start"],
)
def test_a_chunk_that_is_not_aligned_is_refused(
    start: int, end: int, sizes: tuple[int, ...]
) -> None:
    with pytest.raises(InvalidInputError):
        Chunk(start, end, 2, sizes)


def test_a_negative_chunk_level_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="negative"):
        plan_chunks(10, [], level=-1)
