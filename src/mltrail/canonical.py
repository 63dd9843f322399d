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
import math
from collections.abc import Callable
from typing import Any

import rfc8785

from mltrail.errors import FormatError

try:
    from mltrail._native import canonical as _native_canonical
except ImportError:  # built without the optional C accelerator: Python alone

    def _native_canonical(value: object) -> bytes | None:
        return None


__all__ = [
    "MAX_SAFE_INTEGER",
    "canonicalize",
    "canonicalize_python",
    "dumps_text",
    "encode_string",
    "es6_number",
    "loads",
]

MAX_SAFE_INTEGER = 2**53 - 1
MAX_NODES = 1_000_000  # parts of one value: far beyond any event, short of a hang
_ESCAPE = json.encoder.encode_basestring  # the C escaper json.dumps(ensure_ascii=False) uses
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
)


def _refuse_type(obj: Any) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON")


def _fast_encoder() -> Callable[[Any], str]:
    # `JSONEncoder.encode` builds a new C encoder on every call; this one is built once.
    # Arguments: markers (None: no cycle check, `_plain` bounds the walk), default, string
    # escaper, indent, key and item separators, sort_keys, skipkeys, allow_nan.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the _json accelerator
        return _ENCODER.encode
    encode = make(None, _refuse_type, _ESCAPE, None, ":", ",", True, False, False)
    return lambda obj: "".join(encode(obj, 0))


_FAST = _fast_encoder()


def canonicalize(obj: Any) -> bytes:
    """Encode ``obj`` as RFC 8785 canonical JSON bytes.

    Objects made only of strings, booleans, null, safe integers, floats that are not
    integral with 1e-4 <= |x| < 1e16, lists and string-keyed dicts (keys inside the Basic
    Multilingual Plane, no lone surrogates) go through the C JSON encoder, which yields
    identical bytes for them: sorting by UTF-16 code unit equals sorting by code point
    inside the BMP, both escape the same control characters the same way, and repr prints
    such floats as ECMAScript does. Everything else (other floats, astral keys) takes the
    full RFC 8785 algorithm.

    When the C accelerator `mltrail._native` is built, it encodes that same set of values
    (built-in types, and str subclasses by their text) and hands everything else to the
    code below; a property test holds the two byte-equal.

    Raises:
        FormatError: the value cannot be represented (NaN, Infinity, an integer beyond
            ±(2^53−1), a non-string key, an unsupported type, a lone surrogate).
    """
    fast = _native_canonical(obj)
    return fast if fast is not None else canonicalize_python(obj)


def canonicalize_python(obj: Any) -> bytes:
    """`canonicalize` without the C accelerator (what runs when it is not built)."""
    if _plain(obj):
        text = _FAST(obj)
        # Below U+D800 nothing is astral or a surrogate, so UTF-16 and code-point key order
        # agree; otherwise check the keys and strings one by one.
        if text.isascii() or max(text) < "\ud800" or _fast_path_ok(obj):
            return text.encode("utf-8")
    else:
        try:
            return _encode(obj).encode("utf-8")
        except _Fallback:
            pass
        except UnicodeEncodeError as exc:
            raise FormatError(
                f"value cannot be canonicalized: {exc.reason} (a lone surrogate)"
            ) from exc
    _check_integers(obj)
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise FormatError(f"value cannot be canonicalized as RFC 8785 JSON: {exc}") from exc


# encode_string(text) -> str: the RFC 8785 form of one string (quotes and escapes), for
# building canonical objects piecewise on hot paths; the result must still be UTF-8
# encoded. It is the C escaper itself, not a wrapper: it runs several times per event.
encode_string: Callable[[str], str] = _ESCAPE


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


def es6_number(value: float) -> str:
    """ECMAScript Number.prototype.toString of a finite float (RFC 8785 §3.2.2.3).

    Python's ``repr`` gives the shortest digits that round-trip, as ES6 requires; only the
    layout differs (ES6 writes 1e+21 and 1e-7 where Python writes 1e+21 and 1e-07, and
    plain digits from 1e-6 up to 1e21).

    >>> [es6_number(x) for x in (1.5, 1e-7, 1e21, 123.0, -0.0, 0.000001)]
    ['1.5', '1e-7', '1e+21', '123', '0', '0.000001']
    """
    if value != value or value in (math.inf, -math.inf):
        raise FormatError(f"{value} is not representable in JSON (RFC 8785 §3.2.2.3)")
    if value == 0:
        return "0"
    text = repr(abs(value))
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    shift = int(exponent) if exponent else 0
    digits = (whole + fraction).lstrip("0").rstrip("0")
    if whole.strip("0"):
        point = len(whole.lstrip("0")) + shift  # value = 0.digits × 10^point
    else:
        point = shift - (len(fraction) - len(fraction.lstrip("0")))
    return ("-" if value < 0 else "") + _es6_layout(digits, point)


def _es6_layout(digits: str, point: int) -> str:
    k = len(digits)
    if k <= point <= 21:
        return digits + "0" * (point - k)
    if 0 < point <= 21:
        return digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    e = point - 1
    return (
        digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-") + str(abs(e))
    )


class _Fallback(Exception):
    """The value needs the full RFC 8785 implementation (astral keys, unknown types)."""


def _encode(obj: Any) -> str:
    """RFC 8785 for JSON values with floats: Python recursion, C string escaping."""
    if isinstance(obj, str):
        return _ESCAPE(obj)
    kind = type(obj)
    if kind is float:
        if MAX_SAFE_INTEGER < abs(obj) < 1e21:
            raise FormatError(
                f"number {obj} is outside ±(2^53−1) and cannot be canonicalized; "
                "encode it as a string"
            )
        return es6_number(obj)
    if kind is int:
        if not -MAX_SAFE_INTEGER <= obj <= MAX_SAFE_INTEGER:
            raise FormatError(
                f"number {obj} is outside ±(2^53−1) and cannot be canonicalized; "
                "encode it as a string"
            )
        return str(obj)
    if obj is True or obj is False or obj is None:
        return "true" if obj is True else "false" if obj is False else "null"
    if kind is dict:
        if not all(isinstance(k, str) and (k.isascii() or _bmp_no_surrogates(k)) for k in obj):
            raise _Fallback
        return "{" + ",".join(_ESCAPE(k) + ":" + _encode(obj[k]) for k in sorted(obj)) + "}"
    if kind is list or kind is tuple:
        return "[" + ",".join(_encode(item) for item in obj) + "]"
    raise _Fallback


def _plain(obj: Any) -> bool:
    """Only types the C encoder renders exactly as RFC 8785 does (strings unchecked).

    Iterative, with the common scalar cases tested first: it runs on every event. A value
    of more than `MAX_NODES` parts (or one that contains itself) is refused.
    """
    stack = [obj]
    budget = MAX_NODES
    while stack:
        budget -= 1
        if budget < 0:
            raise FormatError(f"value has more than {MAX_NODES} parts (or contains itself)")
        value = stack.pop()
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if kind is dict:
            for key in value:
                if type(key) is not str and not isinstance(key, str):
                    return False
            stack.extend(value.values())
        elif kind is list or kind is tuple:
            stack.extend(value)
        elif kind is int:
            if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                return False
        elif kind is float:
            # repr (which the C encoder uses) prints these as ECMAScript does (RFC 8785
            # §3.2.2.3): plain notation from 1e-4 to 1e16, and no ".0" as none is integral.
            if not (1e-4 <= value < 1e16 or -1e16 < value <= -1e-4) or value.is_integer():
                return False
        elif not isinstance(value, str):
            return False
    return True


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
        return bool(-MAX_SAFE_INTEGER <= obj <= MAX_SAFE_INTEGER)
    return obj is None or kind is bool or kind is float  # floats `_plain` let through


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
