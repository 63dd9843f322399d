"""RFC 8785 encoding and strict parsing, against the cyberphone and ES6 vectors."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import rfc8785

from mltrail.canonical import MAX_SAFE_INTEGER, canonicalize, es6_number, loads
from mltrail.errors import FormatError

JCS = Path(__file__).resolve().parents[1] / "vectors" / "jcs"
CYBERPHONE = sorted(p.name for p in (JCS / "cyberphone" / "input").iterdir())
ES6 = json.loads((JCS / "es6_edge_cases.json").read_text())["cases"]


@pytest.mark.parametrize("name", CYBERPHONE)
def test_cyberphone_vectors(name: str) -> None:
    value = loads((JCS / "cyberphone" / "input" / name).read_bytes())
    expected = (JCS / "cyberphone" / "output" / name).read_bytes()
    assert canonicalize(value) == expected
    hexed = (JCS / "cyberphone" / "outhex" / name.replace(".json", ".txt")).read_text().split()
    assert canonicalize(value).hex() == "".join(hexed).lower()


@pytest.mark.parametrize("case", ES6, ids=[c["ieee754_hex_be"] for c in ES6])
def test_es6_number_vectors(case: dict[str, str]) -> None:
    value = struct.unpack(">d", bytes.fromhex(case["ieee754_hex_be"]))[0]
    if case["expected"] is None:
        with pytest.raises(FormatError):
            es6_number(value)
    else:
        assert es6_number(value) == case["expected"]


@pytest.mark.parametrize(
    "value",
    [2.0**53, -(2.0**53), 1e20, 2**53, -(2**60)],
    ids=["float-2^53", "float--2^53", "float-1e20", "int-2^53", "int--2^60"],
)
def test_numbers_beyond_safe_range_are_refused(value: float) -> None:
    # They would serialize as digits that loads() refuses: what we write must read back.
    with pytest.raises(FormatError, match="outside"):
        canonicalize({"x": value})


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"]
)
def test_non_finite_refused(value: float) -> None:
    with pytest.raises(FormatError):
        canonicalize([value])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"a": NaN}', "NaN"),
        ("[Infinity]", "Infinity"),
        ("[-Infinity]", "Infinity"),
        (f"[{MAX_SAFE_INTEGER + 1}]", "outside"),
        ("[1,", "invalid JSON"),
        (b"\xff\xfe", "UTF-8"),
    ],
    ids=["duplicate", "nan", "inf", "-inf", "big-int", "truncated", "not-utf8"],
)
def test_strict_loads_refuses(text: str | bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        loads(text)


def test_lone_surrogate_refused() -> None:
    with pytest.raises(FormatError):
        canonicalize({"a": "\ud800"})
    with pytest.raises(FormatError):
        canonicalize({"a": 1.5, "b": "\udfff"})


def test_astral_keys_sort_by_utf16_code_units() -> None:
    # U+1F600 (surrogates D83D DE00) sorts before U+FB33 in UTF-16, after it by code point.
    value = {"\U0001f600": 1, "\ufb33": 2}
    assert canonicalize(value) == rfc8785.dumps(value)
    assert canonicalize(value).index("\U0001f600".encode()) < canonicalize(value).index(
        "\ufb33".encode()
    )


def test_str_subclasses_encode_as_their_value() -> None:
    from mltrail.events import Action

    assert canonicalize({"action": Action.PROMOTE}) == b'{"action":"promote"}'


def test_a_value_that_contains_itself_is_refused_not_hung() -> None:
    looped: dict[str, object] = {"a": 1}
    looped["self"] = looped
    with pytest.raises(FormatError, match="contains itself"):
        canonicalize(looped)
