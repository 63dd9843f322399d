"""Shared fixtures: known-answer vectors, real PostgreSQL and S3 servers, registries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pgserver import postgres_url  # a fresh PostgreSQL database per test
from s3server import s3_server  # moto's standalone S3 server, once per session

from mltrail.events import Actor
from mltrail.service import Registry

__all__ = ["postgres_url", "s3_server"]

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The known-answer vectors copied from upstream projects (see vectors/README.md)."""
    return VECTORS


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each backend under test: a SQLite file, a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return str(request.getfixturevalue("postgres_url"))


MakeRegistry = Callable[..., Registry]


@pytest.fixture
def make_registry(tmp_path: Path) -> Iterator[MakeRegistry]:
    """Create registries in tmp_path; closed after the test."""
    opened: list[Registry] = []

    def make(
        database: str | None = None,
        *,
        name: str = "registry",
        actor: str = "alice",
        **kwargs: object,
    ) -> Registry:
        reg = Registry.init(
            tmp_path / name,
            database=database,
            origin=f"test.mltrail/{name}",
            actor=Actor("user", actor),
            **kwargs,
        )
        opened.append(reg)
        return reg  # type: ignore[no-any-return]

    yield make
    for reg in opened:
        reg.close()


@pytest.fixture
def registry(make_registry: MakeRegistry, database_url: str) -> Registry:
    """A fresh registry on each database backend (SQLite and PostgreSQL)."""
    return make_registry(database_url)


@pytest.fixture
def sqlite_registry(make_registry: MakeRegistry) -> Registry:
    """A fresh embedded registry (SQLite + local directory)."""
    return make_registry()
