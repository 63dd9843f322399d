"""Identifiers: the seed's external ids as given, and the registry's model-version form.

>>> parse_version("churn:v2")
('churn', 2)
>>> version_id("churn", 2)
'model:churn:v2'
>>> check_id("DS:2024-05-15", "dataset id")
'DS:2024-05-15'
"""

from __future__ import annotations

import re
from typing import Any

from mltrail.errors import InvalidInputError

__all__ = ["check_id", "check_ids", "check_name", "parse_version", "version_id"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_VERSION = re.compile(
    r"(?:model:)?(?P<model>[A-Za-z0-9][A-Za-z0-9._-]{0,127}):v(?P<number>[1-9][0-9]{0,8})\Z"
)
_MAX_ID_LENGTH = 200
_ID = re.compile(r"[^\s\x00-\x1f\x7f]{1,200}\Z")
_NOT_ID = re.compile(r"[\s\x00-\x1f\x7f]")  # a character `_ID` refuses


def check_name(name: str, what: str = "model name") -> str:
    """A model (or namespace) name: letters, digits, '.', '_' and '-', at most 128.

    Raises:
        InvalidInputError: the name has other characters or is too long.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"{what} {name!r} is not valid: use letters, digits, '.', '_' or '-' "
            "(at most 128, starting with a letter or digit)"
        )
    return name


def check_id(value: str, what: str) -> str:
    """An external identifier (R678, DS:2024-05-15, P123, a commit SHA): 1–200 printable
    characters without whitespace.

    Raises:
        InvalidInputError: empty, too long, or with whitespace or control characters.
    """
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidInputError(
            f"{what} {value!r} is not valid: use 1 to 200 printable characters without spaces"
        )
    return value


def check_ids(values: list[Any], what: str) -> list[str]:
    """`check_id` for many values (a batch of prediction ids) in a few C-level passes.

    Raises:
        InvalidInputError: naming the first value that `check_id` refuses.
    """
    if not (
        values
        and set(map(type, values)) == {str}
        and min(map(len, values)) > 0
        and max(map(len, values)) <= _MAX_ID_LENGTH
        and not _NOT_ID.search("".join(values))
    ):
        for value in values:
            check_id(value, what)
    return values


def parse_version(text: str) -> tuple[str, int]:
    """``model:churn:v2`` or the shorthand ``churn:v2`` → ``("churn", 2)``.

    Raises:
        InvalidInputError: the text is not a model version id.
    """
    match = _VERSION.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInputError(
            f"model version {text!r} is not valid",
            hint="write it as model:NAME:vN (for example model:churn:v2) or NAME:vN",
        )
    return match["model"], int(match["number"])


def version_id(model: str, number: int) -> str:
    """The canonical id of version ``number`` of ``model``."""
    return f"model:{model}:v{number}"


def normalize_version(text: str) -> str:
    """Canonical form of a version id given in either accepted form."""
    return version_id(*parse_version(text))
