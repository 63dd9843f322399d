"""mltrail: a model registry that is a tamper-evident system of record."""

from __future__ import annotations

__version__ = "0.1.0"
