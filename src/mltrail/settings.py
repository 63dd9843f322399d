"""Where a registry lives and how it is configured: the `config.json` of its directory.

A registry is a directory (default `./.mltrail`) holding `config.json`, the registry's
signing key (`keys/registry.key`, mode 0600) and, for the embedded default, the SQLite
file and the artifact directory. `config.json` may instead point at PostgreSQL and an
S3 bucket; it never holds secrets.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp()) / ".mltrail"
>>> s = Settings.default(root, origin="example.org/registry")
>>> s.database.startswith("sqlite:///") and s.artifacts.startswith("file://")
True
"""

from __future__ import annotations

import getpass
import json
import secrets
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mltrail.errors import ConfigError

__all__ = ["CONFIG_NAME", "ActorSettings", "RedactionRule", "Settings", "load_settings"]

CONFIG_NAME = "config.json"
SIX_MONTHS_DAYS = 183


class ActorSettings(BaseModel):
    """Who acts in local mode (a server takes the actor from authentication instead)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["user", "service"] = "user"
    id: str = Field(min_length=1, max_length=200)


class RedactionRule(BaseModel):
    """What to drop or replace by a keyed hash before an event is built: a key name
    (``field``), a key regular expression (``pattern``) or a value regular expression
    (``value_pattern``, matched against whole string values)."""

    model_config = ConfigDict(extra="forbid")
    field: str | None = None
    pattern: str | None = None
    value_pattern: str | None = None
    action: Literal["drop", "hash"] = "hash"


class Settings(BaseModel):
    """The contents of `config.json`."""

    model_config = ConfigDict(extra="forbid")
    database: str
    artifacts: str
    origin: str = Field(min_length=1, max_length=200)
    key_file: str = "keys/registry.key"
    secret_file: str = "keys/hmac.key"
    payloads: str = "payloads"
    s3_endpoint_url: str | None = None
    actor: ActorSettings | None = None
    redaction: list[RedactionRule] = Field(default_factory=list)
    retention_days: dict[str, int] = Field(
        default_factory=lambda: {
            "prediction_input": SIX_MONTHS_DAYS,
            "prediction_log": SIX_MONTHS_DAYS,
            "deployment_log": SIX_MONTHS_DAYS,
        }
    )
    mode: Literal["local", "server"] = "local"

    @field_validator("retention_days")
    @classmethod
    def _legal_minimum(cls, windows: dict[str, int]) -> dict[str, int]:
        # Deployment and prediction records are kept at least six months (DESIGN §7).
        for record_class in ("prediction_input", "prediction_log", "deployment_log"):
            days = windows.get(record_class, SIX_MONTHS_DAYS)
            if days < SIX_MONTHS_DAYS:
                raise ValueError(
                    f"retention for {record_class} is {days} days; at least {SIX_MONTHS_DAYS} "
                    "are required"
                )
        return windows

    @classmethod
    def default(
        cls,
        root: Path,
        *,
        origin: str | None = None,
        database: str | None = None,
        artifacts: str | None = None,
    ) -> Settings:
        """Settings for a new embedded registry in ``root`` (SQLite + local directory)."""
        root = root.resolve()
        return cls(
            database=database or f"sqlite:///{root / 'registry.db'}",
            artifacts=artifacts or (root / "artifacts").as_uri(),
            origin=origin or f"mltrail.local/{_host()}-{secrets.token_hex(4)}",
        )

    def resolve(self, root: Path, relative: str) -> Path:
        """A path from the config, relative to the registry directory."""
        path = Path(relative)
        return path if path.is_absolute() else root / path

    def save(self, root: Path) -> None:
        data = self.model_dump(exclude_none=True)
        (root / CONFIG_NAME).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_settings(root: Path) -> Settings:
    """Read ``root/config.json``.

    Raises:
        ConfigError: there is no registry at ``root`` or its configuration is invalid.
    """
    path = root / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(
            f"no mltrail registry at {root} (missing {CONFIG_NAME})",
            hint="create one with `mltrail init`, pass --registry DIR, or set MLTRAIL_REGISTRY",
        )
    try:
        data: Any = json.loads(path.read_text())
        return Settings.model_validate(data)
    except (ValueError, ValidationError) as exc:
        raise ConfigError(
            f"registry configuration {path} is invalid: {exc}",
            hint="fix the file by hand or restore it from a backup",
        ) from exc


def _host() -> str:
    name = socket.gethostname().split(".")[0].lower() or "host"
    return "".join(ch for ch in name if ch.isalnum() or ch == "-")[:30] or "host"


def default_actor_id() -> str:
    """The OS user name, used as actor when nothing else names one."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        return "unknown"
