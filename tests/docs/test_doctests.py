"""The examples in module docstrings run (STYLE §9: docs that run)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import mltrail

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(mltrail.__path__, "mltrail.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} docstring examples failed"
