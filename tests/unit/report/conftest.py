"""The report tests' fixture: one small real registry, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_scenario import Scenario, build_scenario


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """Built once: the registry takes about a second to set up. Tests must not change it;
    `Scenario.fresh` hands out a copy to tamper with."""
    return build_scenario(Path(tmp_path_factory.mktemp("report-registry")))
