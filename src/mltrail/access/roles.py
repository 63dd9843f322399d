"""Roles, permissions and the authorization decision (pure).

A principal holds roles, globally (scope ``*``) or per model (scope = model name). A
command needs one permission on one scope; `decide` says whether the roles the principal
holds on that scope (or on ``*``) grant it, and why not.

>>> decide("register", "churn", {"*": {"contributor"}}, active=True).allowed
True
>>> d = decide("approve", "churn", {"churn": {"viewer"}}, active=True)
>>> (d.allowed, d.reason)
(False, "needs role admin or approver on model 'churn'; holds viewer")
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

__all__ = ["BUILTIN_ROLES", "PERMISSIONS", "Decision", "decide", "roles_for"]

ANY = "*"

# Which built-in roles grant each permission. Roles not listed (ci, risk, …) grant nothing
# by themselves; policies use them to say whose signature or approval counts.
PERMISSIONS: Mapping[str, frozenset[str]] = {
    "read": frozenset({"viewer", "contributor", "approver", "deployer", "admin"}),
    "register": frozenset({"contributor", "admin"}),
    "attest": frozenset({"contributor", "approver", "admin"}),
    "approve": frozenset({"approver", "admin"}),
    "promote": frozenset({"contributor", "deployer", "admin"}),
    "deploy": frozenset({"deployer", "contributor", "admin"}),
    "log_predictions": frozenset({"contributor", "deployer", "admin"}),
    "override": frozenset({"admin"}),
    "administer": frozenset({"admin"}),
}
BUILTIN_ROLES = frozenset({"viewer", "contributor", "approver", "deployer", "admin"})


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of an authorization check."""

    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


def roles_for(scope: str, grants: Mapping[str, Set[str]]) -> frozenset[str]:
    """Roles held on ``scope``: those granted on it plus those granted on every model."""
    return frozenset(grants.get(scope, set())) | frozenset(grants.get(ANY, set()))


def decide(
    permission: str, scope: str, grants: Mapping[str, Set[str]], *, active: bool
) -> Decision:
    """Whether a principal with ``grants`` (scope → roles) may use ``permission`` on ``scope``."""
    if not active:
        return Decision(False, "the principal is unknown or revoked")
    needed = PERMISSIONS[permission]
    held = roles_for(scope, grants)
    if held & needed:
        return Decision(True)
    where = "every model" if scope == ANY else f"model {scope!r}"
    return Decision(
        False,
        f"needs role {' or '.join(sorted(needed))} on {where}; "
        f"holds {', '.join(sorted(held)) or 'no role'}",
    )
