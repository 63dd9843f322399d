"""`Registry`: every use case, and the only writer (DESIGN §1).

CLI, API and importers are thin adapters over it. Use cases are grouped by concept in
this package's modules and combined here.

>>> import tempfile
>>> reg = Registry.init(tempfile.mkdtemp() + "/reg", origin="example.org/registry")
>>> reg.verify().ok
True
"""

from __future__ import annotations

from mltrail.service.base import Appended, Origin
from mltrail.service.catalog import MAX_VERSIONS_PER_CALL, VersionSpec
from mltrail.service.reproduction import OperationsUseCases

__all__ = ["MAX_VERSIONS_PER_CALL", "Appended", "Origin", "Registry", "VersionSpec"]


class Registry(OperationsUseCases):
    """The registry: opening, appending, reading, proving, and every use case."""
