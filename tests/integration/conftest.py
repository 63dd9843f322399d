"""Fixtures for tests that work on a copy of the demo registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_registry import ADMIN, copy_registry

from mltrail.demo.story import build_demo
from mltrail.service import Registry


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo registry, built once for the module (about six seconds); tests use copies."""
    return build_demo(tmp_path_factory.mktemp("demo"), predictions=2000).registry


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    return copy_registry(pristine, tmp_path / "registry")


@pytest.fixture
def reg(root: Path) -> Iterator[Registry]:
    with Registry.open(root, actor=ADMIN) as opened:
        yield opened
