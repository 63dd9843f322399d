"""The promotion policy document: a versioned YAML file that gates a model's stage changes.

A policy applies to one model (``scope: fraud``) or to every model (``scope: "*"``) and
to one target stage. It lists the source stages a version may come from, the approvals
it needs (N distinct principals holding a role, separation of duties, signatures), the
attestations that must be attached (by predicate type, test name, result, signer role and
age), metric thresholds, and conditions such as "a drift warning requires a manual
approval" (DESIGN.md §7). Evaluating a policy against a version is `mltrail.policy.gate`.

The YAML is checked strictly at this edge: unknown keys, duplicate keys and values of the
wrong type are refused with a `FormatError` that names the field, because a misspelt key
silently ignored would weaken a gate. The document is then converted to frozen
dataclasses. Its identity is `Policy.digest`, the SHA-256 of the RFC 8785 canonical JSON
of `Policy.to_dict`, which writes every default out and every set in a fixed order, so
key order, whitespace and comments do not change it.

>>> policy = Policy.parse('''
... apiVersion: mltrail/v1
... kind: PromotionPolicy
... scope: fraud
... stage: production
... allowed_from: [staging]
... approvals: {count: 2, role: approver}
... attestations:
...   - predicate_type: https://in-toto.io/attestation/test-result/v0.1
...     name: unit-tests
...     result: PASSED
... metrics:
...   - {name: auc, min: 0.9}
... ''')
>>> policy.approvals.count, policy.approvals.separation_of_duties
(2, True)
>>> Policy.from_dict(policy.to_dict()) == policy == Policy.parse(policy.render())
True
>>> policy.applies_to("fraud", "production"), policy.applies_to("churn", "production")
(True, False)
>>> len(policy.digest)
64
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

import yaml  # type: ignore[import-untyped, unused-ignore]
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mltrail.canonical import MAX_SAFE_INTEGER, canonicalize
from mltrail.errors import FormatError, InvalidInputError

__all__ = [
    "API_VERSION",
    "KIND",
    "WILDCARD",
    "ApprovalRule",
    "AttestationRule",
    "Condition",
    "Meaning",
    "MetricRule",
    "MetricSource",
    "Outcome",
    "Policy",
    "Requirement",
    "Trigger",
]

API_VERSION = "mltrail/v1"
KIND = "PromotionPolicy"
WILDCARD = "*"
"""The scope of a policy that applies to every model."""

_MAX_AGE_DAYS = timedelta.max.days
_HINT = "fix the policy file; `mltrail policy check` shows how it evaluates"
_E = TypeVar("_E", bound=StrEnum)


class Meaning(StrEnum):
    """What an approver's signature means (21 CFR 11.50(b) style)."""

    APPROVAL = "approval"
    REVIEW = "review"
    RESPONSIBILITY = "responsibility"


class Outcome(StrEnum):
    """The result of an in-toto test-result attestation."""

    PASSED = "PASSED"
    WARNED = "WARNED"
    FAILED = "FAILED"


class MetricSource(StrEnum):
    """Where a metric's value is read: the training run, or a verified attestation."""

    RUN = "run"
    ATTESTATION = "attestation"


class Trigger(StrEnum):
    """The state of a version that switches a condition on."""

    DRIFT_WARNING = "drift_warning"


class Requirement(StrEnum):
    """What a condition demands once its trigger holds."""

    MANUAL_APPROVAL = "manual_approval"


# --- domain objects -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    """``count`` approvals from distinct principals who hold ``role``.

    Args:
        count: how many distinct approvers are needed, at least 1.
        role: the role each approver must hold when the gate is evaluated.
        meanings: which approval meanings count; by default only ``approval``.
        separation_of_duties: the registrant, the run's author and the promoter cannot
            approve.
        require_signed: approvals must carry a valid signature by the approver's own key.

    Raises:
        InvalidInputError: ``count`` < 1, an empty role, or no meanings.
    """

    count: int
    role: str
    meanings: frozenset[Meaning] = frozenset({Meaning.APPROVAL})
    separation_of_duties: bool = True
    require_signed: bool = False

    def __post_init__(self) -> None:
        _check(1 <= self.count <= MAX_SAFE_INTEGER, f"approvals count {self.count} is not >= 1")
        _check_name(self.role, "approvals role")
        _set(self, "meanings", _members(Meaning, self.meanings, "approvals meanings"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON/YAML object, defaults written out."""
        return {
            "count": self.count,
            "role": self.role,
            "meanings": _ordered(Meaning, self.meanings),
            "separation_of_duties": self.separation_of_duties,
            "require_signed": self.require_signed,
        }


@dataclass(frozen=True, slots=True)
class AttestationRule:
    """An attestation that must be attached: at least one must satisfy every field set.

    Args:
        predicate_type: the in-toto predicate type URI.
        name: the test's name (``unit-tests``, ``fairness``, ``drift``); any if ``None``.
        results: the accepted results; any result (or none) if ``None``.
        signer_role: a role the signing key's owner must hold; anyone if ``None``.
        max_age_days: how old the attestation may be; any age if ``None``.

    Raises:
        InvalidInputError: an empty string, an empty set of results, or an age <= 0.
    """

    predicate_type: str
    name: str | None = None
    results: frozenset[Outcome] | None = None
    signer_role: str | None = None
    max_age_days: int | None = None

    def __post_init__(self) -> None:
        _check_name(self.predicate_type, "attestation predicate_type")
        if self.name is not None:
            _check_name(self.name, "attestation name")
        if self.results is not None:
            _set(self, "results", _members(Outcome, self.results, "attestation result"))
        if self.signer_role is not None:
            _check_name(self.signer_role, "attestation signer_role")
        if self.max_age_days is not None:
            _check(
                0 < self.max_age_days <= _MAX_AGE_DAYS,
                f"attestation max_age_days {self.max_age_days} is not > 0",
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON/YAML object; unset fields are left out, one result is a string."""
        result: dict[str, Any] = {"predicate_type": self.predicate_type}
        if self.name is not None:
            result["name"] = self.name
        if self.results is not None:
            results = _ordered(Outcome, self.results)
            result["result"] = results[0] if len(results) == 1 else results
        if self.signer_role is not None:
            result["signer_role"] = self.signer_role
        if self.max_age_days is not None:
            result["max_age_days"] = self.max_age_days
        return result


@dataclass(frozen=True, slots=True)
class MetricRule:
    """A threshold on a metric: ``minimum <= value <= maximum`` (either bound optional).

    Raises:
        InvalidInputError: an empty name, no bound, a bound that is not finite or is
            beyond ±(2^53−1), or ``minimum > maximum``.
    """

    name: str
    source: MetricSource = MetricSource.RUN
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        _check_name(self.name, "metric name")
        _set(self, "source", _member(MetricSource, self.source, "metric source"))
        _check(
            self.minimum is not None or self.maximum is not None,
            f"metric {self.name!r} sets neither min nor max",
        )
        for bound in ("minimum", "maximum"):
            value = getattr(self, bound)
            if value is not None:
                _check(_finite(value), f"metric {self.name!r} {bound} {value!r} is out of range")
                _set(self, bound, float(value))
        _check(
            self.minimum is None or self.maximum is None or self.minimum <= self.maximum,
            f"metric {self.name!r} min {self.minimum} is greater than max {self.maximum}",
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON/YAML object; an unset bound is left out."""
        result: dict[str, Any] = {"name": self.name, "source": self.source.value}
        if self.minimum is not None:
            result["min"] = self.minimum
        if self.maximum is not None:
            result["max"] = self.maximum
        return result


@dataclass(frozen=True, slots=True)
class Condition:
    """``when`` the version is in some state, ``require`` something more."""

    when: Trigger = Trigger.DRIFT_WARNING
    require: Requirement = Requirement.MANUAL_APPROVAL

    def __post_init__(self) -> None:
        _set(self, "when", _member(Trigger, self.when, "condition when"))
        _set(self, "require", _member(Requirement, self.require, "condition require"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON/YAML object."""
        return {"when": self.when.value, "require": self.require.value}


@dataclass(frozen=True, slots=True)
class Policy:
    """A promotion policy for one model (or every model, ``scope="*"``) and target stage.

    Args:
        scope: the model name, or ``"*"``.
        stage: the target stage the policy gates.
        allowed_from: the stages a version may be promoted from; any if ``None``.
        approvals: the approvals needed, if any.
        attestations: attestations that must be attached.
        metrics: metric thresholds.
        conditions: extra requirements that apply in some states.

    Raises:
        InvalidInputError: an empty scope, stage or source stage, or an empty
            ``allowed_from`` (omit it to allow any source stage).
    """

    scope: str
    stage: str
    allowed_from: frozenset[str] | None = None
    approvals: ApprovalRule | None = None
    attestations: tuple[AttestationRule, ...] = ()
    metrics: tuple[MetricRule, ...] = ()
    conditions: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        _check_name(self.scope, "policy scope")
        _check_name(self.stage, "policy stage")
        if self.allowed_from is not None:
            _set(self, "allowed_from", frozenset(self.allowed_from))
            _check(bool(self.allowed_from), "policy allowed_from lists no stage")
            for stage in self.allowed_from:
                _check_name(stage, "policy allowed_from stage")
        for attr in ("attestations", "metrics", "conditions"):
            _set(self, attr, tuple(getattr(self, attr)))

    @classmethod
    def parse(cls, text: str) -> Policy:
        """Read a policy from its YAML text.

        Raises:
            FormatError: the text is not YAML (or repeats a key), or the document is not
                a valid policy; the message names the field and what was expected, and
                ``errors`` lists every problem.
        """
        try:
            data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no object tags
        except yaml.YAMLError as exc:
            raise FormatError(f"policy is not valid YAML: {exc}", hint=_HINT) from exc
        return cls.from_dict(data)

    def render(self) -> str:
        """The policy as YAML text (`parse` reads it back to an equal policy)."""
        # Non-ASCII is escaped: PyYAML writes U+0085 and friends raw, then reads them as line
        # breaks, so allow_unicode=True would not round-trip.
        return str(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, data: Any) -> Policy:
        """Build from the document's mapping (as YAML or JSON parses it).

        Raises:
            FormatError: as for `parse`.
        """
        if not isinstance(data, Mapping):
            raise FormatError(
                f"policy document must be a mapping with apiVersion, kind, scope and stage; "
                f"got {type(data).__name__}",
                hint=_HINT,
            )
        try:
            model = _PolicyModel.model_validate(dict(data))
        except ValidationError as exc:
            raise _format_error(exc) from exc
        return model.to_domain()

    def to_dict(self) -> dict[str, Any]:
        """The document as a JSON-compatible mapping; `from_dict` reads it back."""
        result: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "scope": self.scope,
            "stage": self.stage,
        }
        if self.allowed_from is not None:
            result["allowed_from"] = sorted(self.allowed_from)
        if self.approvals is not None:
            result["approvals"] = self.approvals.to_dict()
        for key in ("attestations", "metrics", "conditions"):
            rules = getattr(self, key)
            if rules:
                result[key] = [rule.to_dict() for rule in rules]
        return result

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON of `to_dict`: what is recorded and hashed."""
        return canonicalize(self.to_dict())

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of `canonical_bytes`: the policy's identity in the log."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def applies_to(self, model: str, stage: str) -> bool:
        """Whether this policy gates promoting a version of ``model`` to ``stage``."""
        return stage == self.stage and self.scope in (model, WILDCARD)


# --- invariants -----------------------------------------------------------------------------


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidInputError(message, hint=_HINT)


def _check_name(value: object, what: str) -> None:
    _check(_is_name(value), f"{what} {value!r} is not a non-empty string")


def _is_name(value: object) -> bool:
    # Surrounding whitespace is refused: "approver " is a typo, not a different role.
    return isinstance(value, str) and value != "" and value == value.strip()


def _finite(value: float) -> bool:
    # Beyond ±(2^53−1) RFC 8785 cannot write an integral number back exactly.
    return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


def _member(enum: type[_E], value: Any, what: str) -> _E:
    try:
        return enum(value)
    except ValueError as exc:
        raise InvalidInputError(f"{what}: {exc}", hint=_HINT) from exc


def _members(enum: type[_E], values: Iterable[Any], what: str) -> frozenset[_E]:
    members = frozenset(_member(enum, value, what) for value in values)
    _check(bool(members), f"{what} lists nothing")
    return members


def _ordered(enum: type[_E], members: frozenset[_E]) -> list[str]:
    """Set members in the enum's own order, so equal sets write equal bytes."""
    return [member.value for member in enum if member in members]


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


# --- the YAML/JSON edge: pydantic models, converted to the dataclasses at once ------------------


def _name(value: str) -> str:
    if not _is_name(value):
        raise ValueError("expected a non-empty string without surrounding whitespace")
    return value


_Name = Annotated[str, AfterValidator(_name)]
# Strict mode would accept only enum instances; from YAML, the enum's values are the input.
_Meaning = Annotated[Meaning, Strict(False)]
_Outcome = Annotated[Outcome, Strict(False)]
_MetricSource = Annotated[MetricSource, Strict(False)]
_Trigger = Annotated[Trigger, Strict(False)]
_Requirement = Annotated[Requirement, Strict(False)]
_Bound = Annotated[float, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER, allow_inf_nan=False)]


def _unique(values: list[Any] | None) -> list[Any] | None:
    if values is not None:
        for value in values:
            if values.count(value) > 1:
                raise ValueError(f"expected each value once, but {str(value)!r} repeats")
    return values


class _Edge(BaseModel):
    # strict: YAML's "2" is not 2 and "yes" in quotes is not true.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _ApprovalsModel(_Edge):
    count: int = Field(ge=1, le=MAX_SAFE_INTEGER)
    role: _Name
    meanings: list[_Meaning] = Field(default=[Meaning.APPROVAL], min_length=1)
    separation_of_duties: bool = True
    require_signed: bool = False

    _unique_meanings = field_validator("meanings")(_unique)

    def to_domain(self) -> ApprovalRule:
        return ApprovalRule(
            count=self.count,
            role=self.role,
            meanings=frozenset(self.meanings),
            separation_of_duties=self.separation_of_duties,
            require_signed=self.require_signed,
        )


class _AttestationModel(_Edge):
    predicate_type: _Name
    name: _Name | None = None
    result: list[_Outcome] | None = Field(default=None, min_length=1)
    signer_role: _Name | None = None
    max_age_days: int | None = Field(default=None, gt=0, le=_MAX_AGE_DAYS)

    _unique_results = field_validator("result")(_unique)

    @field_validator("result", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def to_domain(self) -> AttestationRule:
        return AttestationRule(
            predicate_type=self.predicate_type,
            name=self.name,
            results=None if self.result is None else frozenset(self.result),
            signer_role=self.signer_role,
            max_age_days=self.max_age_days,
        )


class _MetricModel(_Edge):
    name: _Name
    source: _MetricSource = MetricSource.RUN
    min: _Bound | None = None
    max: _Bound | None = None

    @field_validator("max")
    @classmethod
    def _ordered_bounds(cls, value: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("min")
        if value is not None and low is not None and low > value:
            raise ValueError(f"expected max >= min ({low})")
        return value

    @model_validator(mode="after")
    def _some_bound(self) -> _MetricModel:
        if self.min is None and self.max is None:
            raise ValueError("expected min, max or both")
        return self

    def to_domain(self) -> MetricRule:
        return MetricRule(name=self.name, source=self.source, minimum=self.min, maximum=self.max)


class _ConditionModel(_Edge):
    when: _Trigger
    require: _Requirement

    def to_domain(self) -> Condition:
        return Condition(when=self.when, require=self.require)


class _PolicyModel(_Edge):
    apiVersion: Literal["mltrail/v1"]  # the YAML key
    kind: Literal["PromotionPolicy"]
    scope: _Name
    stage: _Name
    allowed_from: list[_Name] | None = Field(default=None, min_length=1)
    approvals: _ApprovalsModel | None = None
    attestations: list[_AttestationModel] = []
    metrics: list[_MetricModel] = []
    conditions: list[_ConditionModel] = []

    _unique_stages = field_validator("allowed_from")(_unique)

    def to_domain(self) -> Policy:
        return Policy(
            scope=self.scope,
            stage=self.stage,
            allowed_from=None if self.allowed_from is None else frozenset(self.allowed_from),
            approvals=None if self.approvals is None else self.approvals.to_domain(),
            attestations=tuple(rule.to_domain() for rule in self.attestations),
            metrics=tuple(rule.to_domain() for rule in self.metrics),
            conditions=tuple(rule.to_domain() for rule in self.conditions),
        )


def _format_error(exc: ValidationError) -> FormatError:
    problems = [_describe(error) for error in exc.errors()]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return FormatError(f"invalid policy: {problems[0]}{more}", hint=_HINT, errors=problems)


def _describe(error: Mapping[str, Any]) -> str:
    where = _field_path(error["loc"])
    if error["type"] == "missing":
        return f"field {where} is required"
    if error["type"] == "too_short":
        return f"field {where}: expected at least one item; got []"
    if error["type"] == "extra_forbidden":
        return f"field {where} is not a known policy field (check its spelling and indentation)"
    message = str(error["msg"]).removeprefix("Value error, ").replace("Input should be", "expected")
    return f"field {where}: {message}; got {error['input']!r}"


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".") or "(document)"


class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc, unused-ignore]
    """`yaml.safe_load` semantics, but a repeated mapping key is an error, not "last wins"."""


def _construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
    loader.flatten_mapping(node)
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, Hashable):
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r}", key_node.start_mark,
                )  # fmt: skip
            seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
