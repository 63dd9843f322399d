"""Compare a re-computed output with the recorded one, exactly or within a float tolerance.

>>> compare_outputs({"score": 0.731201, "label": "churn"}, {"label": "churn", "score": 0.731305})
(False, 'output.score: recorded 0.731201, now 0.731305')
>>> compare_outputs({"score": 0.731201}, {"score": 0.731305}, tolerance=1e-3)
(True, None)
>>> compare_outputs([{"p": 1.0}], [{"p": 1}])  # same RFC 8785 bytes
(True, None)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from mltrail.canonical import canonicalize
from mltrail.errors import InvalidInputError

__all__ = ["compare_outputs"]

_ABSENT = object()  # a key or item that one side lacks
_SHOW_CHARS = 80


def compare_outputs(
    recorded: Any, current: Any, tolerance: float | None = None
) -> tuple[bool, str | None]:
    """Whether ``current`` reproduces ``recorded``, and the first difference if not.

    Without ``tolerance`` the RFC 8785 bytes must be equal (so ``1.0`` equals ``1``). With
    it, two numbers of which at least one is a float may differ by at most ``tolerance``
    (absolute), wherever they sit in the structure; everything else stays exact. Objects
    are walked in sorted key order, arrays by index.

    Returns:
        ``(same, difference)``, e.g. ``(False, "output.score: recorded 0.731201, now
        0.731305")`` or ``(False, "output.items[2]: recorded absent, now 0.5")``;
        ``difference`` is None when ``same``.

    Raises:
        InvalidInputError: ``tolerance`` is negative or not finite.
        FormatError: either value is not JSON.
    """
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise InvalidInputError(f"tolerance {tolerance!r} must be a finite number >= 0")
    if canonicalize(recorded) == canonicalize(current):
        return True, None
    difference = _difference(recorded, current, "output", tolerance)
    if difference is None and tolerance is None:  # pragma: no cover - the bytes differ
        difference = _changed("output", recorded, current)
    return difference is None, difference


def _difference(recorded: Any, current: Any, path: str, tolerance: float | None) -> str | None:
    if isinstance(recorded, dict) and isinstance(current, dict):
        pairs = [
            (_key_path(path, key), recorded.get(key, _ABSENT), current.get(key, _ABSENT))
            for key in sorted(recorded.keys() | current.keys())
        ]
    elif isinstance(recorded, list | tuple) and isinstance(current, list | tuple):
        pairs = [
            (f"{path}[{i}]", _item(recorded, i), _item(current, i))
            for i in range(max(len(recorded), len(current)))
        ]
    elif tolerance is not None and _float_pair(recorded, current):
        close = abs(recorded - current) <= tolerance
        return None if close else _changed(path, recorded, current)
    else:
        same = canonicalize(recorded) == canonicalize(current)
        return None if same else _changed(path, recorded, current)
    for sub, old, new in pairs:
        if old is _ABSENT or new is _ABSENT:
            return _changed(sub, old, new)
        found = _difference(old, new, sub, tolerance)
        if found is not None:
            return found
    return None


def _item(items: Sequence[Any], index: int) -> Any:
    return items[index] if index < len(items) else _ABSENT


def _float_pair(a: Any, b: Any) -> bool:
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
    return numbers and (isinstance(a, float) or isinstance(b, float))


def _key_path(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _changed(path: str, recorded: Any, current: Any) -> str:
    return f"{path}: recorded {_show(recorded)}, now {_show(current)}"


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "absent"
    text = canonicalize(value).decode("utf-8")
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 1] + "…"
