"""RFC 8785 (JSON Canonicalization Scheme) encoding and strict JSON parsing.

Canonical bytes are the record: what is stored, hashed and signed. Parsing is strict so
that two readers can never disagree about what a document says.

>>> canonicalize({"b": [1, True, None], "a": "é"})
b'{"a":"\\xc3\\xa9","b":[1,true,null]}'
>>> loads('{"a": 1, "a": 2}')
Traceback (most recent call last):
...
mltrail.errors.FormatError: duplicate key 'a' in JSON object
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from mltrail.errors import FormatError

__all__ = ["MAX_SAFE_INTEGER", "canonicalize", "dumps_text", "loads"]

MAX_SAFE_INTEGER = 2**53 - 1
_FAST = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonicalize(obj: Any) -> bytes:
    """Encode ``obj`` as RFC 8785 canonical JSON bytes.

    Objects made only of strings, booleans, null, safe integers, lists and string-keyed
    dicts (keys inside the Basic Multilingual Plane, no lone surrogates) go through the C
    JSON encoder, which yields identical bytes for them: sorting by UTF-16 code unit equals
    sorting by code point inside the BMP, and both escape the same control characters the
    same way. Everything else (floats, astral keys) takes the full RFC 8785 algorithm.

    Raises:
        FormatError: the value cannot be represented (NaN, Infinity, an integer beyond
            ±(2^53−1), a non-string key, an unsupported type, a lone surrogate).
    """
    if _plain(obj):
        text = _FAST(obj)
        # Below U+D800 nothing is astral or a surrogate, so UTF-16 and code-point key order
        # agree; otherwise check the keys and strings one by one.
        if text.isascii() or max(text) < "\ud800" or _fast_path_ok(obj):
            return text.encode("utf-8")
    _check_integers(obj)
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise FormatError(f"value cannot be canonicalized as RFC 8785 JSON: {exc}") from exc


def dumps_text(obj: Any) -> str:
    """The canonical encoding as text (for files meant to be read by people too)."""
    return canonicalize(obj).decode("utf-8")


def loads(data: bytes | str) -> Any:
    """Parse JSON strictly.

    Refuses duplicate object keys, NaN and ±Infinity, and integers beyond ±(2^53−1),
    which RFC 8785 cannot represent and which different parsers read differently.

    Raises:
        FormatError: the text is not strict JSON; the message says where and why.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        return json.loads(
            text,
            object_pairs_hook=_unique_pairs,
            parse_constant=_refuse_constant,
            parse_int=_safe_int,
        )
    except UnicodeDecodeError as exc:
        raise FormatError(f"JSON text is not valid UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise FormatError(f"invalid JSON: {exc}") from exc


def _plain(obj: Any) -> bool:
    """Only types the C encoder renders exactly as RFC 8785 does (strings unchecked)."""
    kind = type(obj)
    if kind is dict:
        for key, value in obj.items():
            if type(key) is not str:
                return False
            vkind = type(value)
            if vkind is not str and not (vkind is bool or value is None) and not _plain(value):
                return False
        return True
    if kind is list or kind is tuple:
        return all(type(item) is str or _plain(item) for item in obj)
    if kind is int:
        return -MAX_SAFE_INTEGER <= obj <= MAX_SAFE_INTEGER
    return kind is str or kind is bool or obj is None


def _fast_path_ok(obj: Any) -> bool:
    kind = type(obj)
    if kind is str:
        return _bmp_clean(obj)
    if kind is dict:
        for key, value in obj.items():
            if type(key) is not str or not _bmp_clean(key) or not _fast_path_ok(value):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_fast_path_ok(item) for item in obj)
    if kind is int:
        return -MAX_SAFE_INTEGER <= obj <= MAX_SAFE_INTEGER
    return obj is None or kind is bool


def _bmp_clean(text: str) -> bool:
    # Every char below U+D800 is BMP and not a surrogate; only then may the fast path sort.
    return text.isascii() or max(text) < "\ud800" or _bmp_no_surrogates(text)


def _bmp_no_surrogates(text: str) -> bool:
    return all(ch < "\ud800" or "\ue000" <= ch <= "\uffff" for ch in text)


def _check_integers(obj: Any) -> None:
    # An integral float at or past 2^53 would serialize as digits that `loads` refuses,
    # so it is refused here too: what we write, we must be able to read back.
    kind = type(obj)
    if (kind is int and not -MAX_SAFE_INTEGER <= obj <= MAX_SAFE_INTEGER) or (
        kind is float and MAX_SAFE_INTEGER < abs(obj) < 1e21
    ):
        raise FormatError(
            f"number {obj} is outside ±(2^53−1) and cannot be canonicalized; encode it as a string"
        )
    if isinstance(obj, dict):
        for value in obj.values():
            _check_integers(value)
    elif isinstance(obj, list | tuple):
        for item in obj:
            _check_integers(item)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise FormatError(f"duplicate key {key!r} in JSON object")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise FormatError(f"{name} is not allowed in JSON (RFC 8259 and RFC 8785 forbid it)")


def _safe_int(text: str) -> int:
    value = int(text)
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise FormatError(
            f"integer {text} is outside ±(2^53−1); such numbers lose precision, "
            "send them as strings"
        )
    return value
