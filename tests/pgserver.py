"""A fresh PostgreSQL database per test, on the server named by MLTRAIL_TEST_POSTGRES_URL.

The default URL is the local server (`postgresql://postgres@127.0.0.1:5432/postgres`).
When it cannot be reached the PostgreSQL tests skip, unless MLTRAIL_REQUIRE_SERVICES is
set (as `.ci/run` does), in which case they fail: CI must run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get("MLTRAIL_TEST_POSTGRES_URL", DEFAULT_URL)


def _reachable(url: str) -> str | None:
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    url = admin_url()
    problem = _reachable(url)
    if problem is not None:
        if os.environ.get("MLTRAIL_REQUIRE_SERVICES"):
            pytest.fail(f"PostgreSQL at {url} is required but unreachable: {problem}")
        pytest.skip(f"PostgreSQL at {url} unreachable: {problem}")
    name = f"mltrail_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
