"""One error tree for everything mltrail raises on purpose.

Every class carries the HTTP status the API answers with and the exit code the CLI ends
with, and every instance carries a message that names the object and the expectation,
plus a hint that says what to do next.

>>> err = NotFoundError("model version 'model:churn:v9' does not exist",
...                     hint="list versions with `mltrail models show churn`")
>>> (err.http_status, err.exit_code, err.hint())
(404, 3, 'list versions with `mltrail models show churn`')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

__all__ = [
    "AccessDeniedError",
    "ConfigError",
    "ConflictError",
    "FormatError",
    "IntegrityError",
    "InvalidInputError",
    "NotFoundError",
    "PolicyError",
    "RegistryError",
    "StorageError",
    "VerificationError",
]


class RegistryError(Exception):
    """Base of every error mltrail raises on purpose.

    Args:
        message: what went wrong, naming the object and what was expected.
        hint: what the user can do about it.
        errors: the individual reasons when there are several (failed policy rules,
            invalid fields).
    """

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    default_hint: ClassVar[str] = "run the command again with --verbose to see the details"

    def __init__(
        self, message: str, *, hint: str | None = None, errors: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self._hint = hint
        self.errors = list(errors)

    def hint(self) -> str:
        """What the user should do next."""
        return self._hint or self.default_hint

    def to_dict(self) -> dict[str, object]:
        """The one JSON error shape of the API and of `--json` output."""
        return {
            "ok": False,
            "error": self.message,
            "errors": self.errors,
            "hint": self.hint(),
            "status": self.http_status,
            "type": type(self).__name__,
        }


class InvalidInputError(RegistryError):
    """The caller handed us something malformed or out of range."""

    http_status = 400
    exit_code = 2
    default_hint = "check the value against `--help` and try again"


class FormatError(InvalidInputError):
    """Bytes that should be one of our formats (JSON, a note, an envelope) are not."""

    default_hint = "the data is not in the expected format; regenerate it or check its source"


class NotFoundError(RegistryError):
    """The named object does not exist."""

    http_status = 404
    exit_code = 3
    default_hint = "check the identifier; `mltrail log` lists what the registry holds"


class ConflictError(RegistryError):
    """The command clashes with what exists: a duplicate id, a concurrent append."""

    http_status = 409
    exit_code = 4
    default_hint = "use a new identifier, or re-read the current state and try again"


class AccessDeniedError(RegistryError):
    """The principal may not do this."""

    http_status = 403
    exit_code = 5
    default_hint = "ask an admin for a grant (`mltrail access grant`)"


class PolicyError(RegistryError):
    """A policy gate refused; `errors` lists each failed rule."""

    http_status = 422
    exit_code = 6
    default_hint = "see which rules failed with `mltrail policy check`"


class VerificationError(RegistryError):
    """A digest, proof, signature or history check failed."""

    http_status = 422
    exit_code = 7
    default_hint = (
        "the data does not match what was recorded; do not trust it, and investigate "
        "with `mltrail verify`"
    )


class IntegrityError(VerificationError):
    """Stored bytes no longer match their recorded digest."""


class StorageError(RegistryError):
    """The database or object store failed underneath us."""

    http_status = 503
    exit_code = 8
    default_hint = "check that the database and artifact store are reachable and writable"


class ConfigError(RegistryError):
    """The registry location, keys or configuration are missing or wrong."""

    http_status = 500
    exit_code = 9
    default_hint = "create a registry with `mltrail init`, or point --registry at one"
