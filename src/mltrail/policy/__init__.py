"""Promotion policies: the policy document (`document`) and its evaluation (`gate`).

Everything here is pure: no I/O, no database, no clock (the caller passes ``now``).

>>> from mltrail.policy import Policy, evaluate_gate
>>> policy = Policy(scope="*", stage="production", allowed_from=frozenset({"staging"}))
>>> policy.to_dict()["allowed_from"]
['staging']
"""

from __future__ import annotations

from mltrail.policy.document import (
    API_VERSION,
    KIND,
    WILDCARD,
    ApprovalRule,
    AttestationRule,
    Condition,
    Meaning,
    MetricRule,
    MetricSource,
    Outcome,
    Policy,
    Requirement,
    Trigger,
)
from mltrail.policy.gate import (
    CLOCK_SKEW,
    DRIFT_WARNING,
    INTEGRITY_FAILED,
    ApprovalEvidence,
    AttestationEvidence,
    Evidence,
    GateResult,
    RuleResult,
    evaluate_gate,
)

__all__ = [
    "API_VERSION",
    "CLOCK_SKEW",
    "DRIFT_WARNING",
    "INTEGRITY_FAILED",
    "KIND",
    "WILDCARD",
    "ApprovalEvidence",
    "ApprovalRule",
    "AttestationEvidence",
    "AttestationRule",
    "Condition",
    "Evidence",
    "GateResult",
    "Meaning",
    "MetricRule",
    "MetricSource",
    "Outcome",
    "Policy",
    "Requirement",
    "RuleResult",
    "Trigger",
    "evaluate_gate",
]
