"""Capture what produced a model: the environment it ran in and the code version.

>>> from mltrail.capture import explicit_commit
>>> explicit_commit("ml/fraud", "9FCEB02").commit
'9fceb02'
"""

from __future__ import annotations

from mltrail.capture.environment import (
    Environment,
    Lockfile,
    ToolRunner,
    capture_environment,
    check_image_digest,
    diff_environments,
    find_lockfiles,
    installed_packages,
    normalize_name,
    run_tool,
)
from mltrail.capture.git import (
    CodeVersion,
    capture_commit,
    diff_digest,
    explicit_commit,
    strip_credentials,
)

__all__ = [
    "CodeVersion",
    "Environment",
    "Lockfile",
    "ToolRunner",
    "capture_commit",
    "capture_environment",
    "check_image_digest",
    "diff_digest",
    "diff_environments",
    "explicit_commit",
    "find_lockfiles",
    "installed_packages",
    "normalize_name",
    "run_tool",
    "strip_credentials",
]
