"""Reproduce a prediction: re-run a model's scoring on its recorded input and compare.

``runner`` loads an entry point (``file.py:function``, ``module:function``, MLflow
pyfunc) and scores in this process or in an isolated virtualenv rebuilt from the recorded
lockfile (offline from a wheel directory if asked); ``compare`` checks the new output
against the recorded one; ``lockfile`` reads requirements files and PEP 751 locks.

>>> from mltrail.repro import compare_outputs
>>> compare_outputs({"label": "churn", "score": 0.9}, {"label": "stay", "score": 0.9})
(False, 'output.label: recorded "churn", now "stay"')
"""

from __future__ import annotations

from mltrail.repro.compare import compare_outputs
from mltrail.repro.lockfile import (
    LockfileFormat,
    check_offline,
    lockfile_format,
    pylock_requirements,
)
from mltrail.repro.runner import (
    BUILD_TIMEOUT,
    ScoringError,
    build_isolated_env,
    load_entrypoint,
    score_in_process,
    score_isolated,
)

__all__ = [
    "BUILD_TIMEOUT",
    "LockfileFormat",
    "ScoringError",
    "build_isolated_env",
    "check_offline",
    "compare_outputs",
    "load_entrypoint",
    "lockfile_format",
    "pylock_requirements",
    "score_in_process",
    "score_isolated",
]
