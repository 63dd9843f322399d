"""Redaction rules: validation, dropping and keyed hashing at any depth, idempotence."""

from __future__ import annotations

import copy
import doctest
import hashlib
import hmac
from typing import Any

import pytest

import mltrail.privacy
from mltrail.errors import ConfigError, FormatError, InvalidInputError
from mltrail.privacy import redaction
from mltrail.privacy.redaction import HASH_PREFIX, Redactor, Rule, keyed_hash

KEY = bytes(range(32))
EMAIL = r"[^@\s]+@[^@\s]+"


def hashed(value_json: bytes, key: bytes = KEY) -> str:
    """The expected replacement, computed from hand-written canonical bytes."""
    return HASH_PREFIX + hmac.new(key, value_json, hashlib.sha256).hexdigest()


# -- rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "exactly one of field, pattern, value_pattern; got none"),
        ({"field": "email", "pattern": "e.*"}, "got field, pattern"),
        ({"pattern": "e.*", "value_pattern": EMAIL}, "got pattern, value_pattern"),
        ({"field": ""}, "non-empty string"),
        ({"field": 3}, "non-empty string"),
        ({"field": "email", "action": "mask"}, "must be 'drop' or 'hash'"),
        ({"pattern": "(unclosed"}, "pattern '\\(unclosed' is not a valid regular expression"),
        ({"value_pattern": "[z-a]"}, "value_pattern .* is not a valid regular expression"),
    ],
    ids=[
        "none",
        "field-and-pattern",
        "pattern-and-value",
        "empty",
        "not-a-string",
        "unknown-action",
        "bad-key-regex",
        "bad-value-regex",
    ],
)
def test_invalid_rules_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Rule(**fields)


@pytest.mark.parametrize(
    "data",
    [
        {"field": "email", "action": "hash"},
        {"pattern": "phone_.*", "action": "drop"},
        {"value_pattern": EMAIL, "action": "hash"},
    ],
    ids=["field", "pattern", "value_pattern"],
)
def test_rules_round_trip_through_dicts(data: dict[str, Any]) -> None:
    rule = Rule.from_dict(data)
    assert rule.to_dict() == data
    assert Rule.from_dict(rule.to_dict()) == rule


def test_from_dict_defaults_to_hash_and_refuses_unknown_keys() -> None:
    assert Rule.from_dict({"field": "email"}).action == "hash"
    with pytest.raises(InvalidInputError, match="unknown keys: feild"):
        Rule.from_dict({"feild": "email"})
    with pytest.raises(InvalidInputError, match="must be an object"):
        Rule.from_dict(["email"])  # type: ignore[arg-type]


# -- keyed hashes -----------------------------------------------------------------------------


def test_keyed_hash_is_hmac_sha256_over_canonical_bytes() -> None:
    assert (
        keyed_hash(KEY, "ana@example.com")
        == hmac.new(KEY, b'"ana@example.com"', hashlib.sha256).hexdigest()
    )
    assert (
        keyed_hash(KEY, {"b": 2, "a": [1, True]})
        == hmac.new(KEY, b'{"a":[1,true],"b":2}', hashlib.sha256).hexdigest()
    )
    assert keyed_hash(KEY, "x") != keyed_hash(bytes(32), "x")


@pytest.mark.parametrize(
    "key", [b"", b"short", "a string key of 32 characters...."], ids=["empty", "short", "str"]
)
def test_short_or_non_bytes_keys_are_refused(key: Any) -> None:
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        keyed_hash(key, "x")
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        Redactor([Rule(field="email")], key)


def test_non_json_values_cannot_be_hashed() -> None:
    with pytest.raises(FormatError):
        keyed_hash(KEY, float("nan"))


# -- redaction --------------------------------------------------------------------------------


METADATA = {
    "outcome": "success",
    "customer": {
        "email": "ana@example.com",
        "tier": "gold",
        "contacts": [{"email": "bo@example.com", "role": "billing"}],
    },
    "email": {"nested": "object values are hashed whole"},
    "phone_home": "555-0100",
    "telephone": "555-0101",
    "notes": ["call ana@example.com", "ana@example.com", 7],
}


def test_a_field_is_hashed_at_every_depth() -> None:
    redacted = Redactor([Rule(field="email")], KEY).redact(METADATA)
    assert redacted["customer"]["email"] == hashed(b'"ana@example.com"')
    assert redacted["customer"]["contacts"][0] == {
        "email": hashed(b'"bo@example.com"'),
        "role": "billing",
    }
    assert redacted["email"] == hashed(b'{"nested":"object values are hashed whole"}')
    assert {k: v for k, v in redacted.items() if k not in ("customer", "email")} == {
        k: v for k, v in METADATA.items() if k not in ("customer", "email")
    }


def test_a_field_is_dropped_at_every_depth() -> None:
    redacted = Redactor([Rule(field="email", action="drop")], KEY).redact(METADATA)
    assert "email" not in redacted and "email" not in redacted["customer"]
    assert redacted["customer"]["contacts"] == [{"role": "billing"}]


def test_key_patterns_match_whole_key_names() -> None:
    redacted = Redactor([Rule(pattern="phone_.*|(?i:e-?mail)", action="drop")], KEY).redact(
        {"phone_home": "1", "telephone": "2", "E-mail": "3", "emails": "4", "my_email": "5"}
    )
    assert redacted == {"telephone": "2", "emails": "4", "my_email": "5"}


def test_value_patterns_hash_or_drop_matching_strings() -> None:
    hashing = Redactor([Rule(value_pattern=EMAIL)], KEY).redact(METADATA)
    assert hashing["notes"] == ["call ana@example.com", hashed(b'"ana@example.com"'), 7]
    assert hashing["customer"]["email"] == hashed(b'"ana@example.com"')
    dropping = Redactor([Rule(value_pattern=EMAIL, action="drop")], KEY).redact(METADATA)
    assert dropping["notes"] == ["call ana@example.com", 7]  # fullmatch: free text stays
    assert dropping["customer"]["contacts"] == [{"role": "billing"}]
    free_text = Redactor([Rule(value_pattern=r"(?s).*" + EMAIL + ".*", action="drop")], KEY)
    assert free_text.redact(METADATA)["notes"] == [7]


def test_drop_wins_over_hash() -> None:
    redactor = Redactor(
        [Rule(field="email"), Rule(pattern="e.*", action="drop"), Rule(field="email")], KEY
    )
    assert redactor.redact({"email": "x", "id": "y"}) == {"id": "y"}
    by_value = Redactor([Rule(field="contact"), Rule(value_pattern=EMAIL, action="drop")], KEY)
    assert by_value.redact({"contact": "ana@example.com"}) == {}


def test_redaction_returns_a_new_value_and_leaves_the_input_alone() -> None:
    before = copy.deepcopy(METADATA)
    Redactor([Rule(field="email", action="drop"), Rule(value_pattern=EMAIL)], KEY).redact(METADATA)
    assert before == METADATA


@pytest.mark.parametrize("action", ["drop", "hash"])
def test_redaction_is_idempotent(action: Any) -> None:
    redactor = Redactor(
        [Rule(field="email", action=action), Rule(value_pattern=EMAIL, action=action)], KEY
    )
    once = redactor.redact(METADATA)
    assert redactor.redact(once) == once


def test_top_level_values_and_scalars() -> None:
    redactor = Redactor([Rule(value_pattern=EMAIL, action="drop")], KEY)
    assert redactor.redact("ana@example.com") is None
    assert redactor.redact(["ana@example.com", None, 1.5]) == [None, 1.5]
    assert Redactor([Rule(value_pattern=EMAIL)], KEY).redact("ana@example.com") == hashed(
        b'"ana@example.com"'
    )
    assert Redactor([], KEY).redact(METADATA) == METADATA


def test_redact_value_is_the_replacement() -> None:
    redactor = Redactor([], KEY)
    assert redactor.redact_value({"id": 7}) == hashed(b'{"id":7}')
    assert redactor.redact_value("x") == HASH_PREFIX + keyed_hash(KEY, "x")


def test_rules_may_be_given_as_dicts_but_not_as_one_dict() -> None:
    redactor = Redactor([{"field": "email", "action": "drop"}], KEY)
    assert redactor.rules == (Rule(field="email", action="drop"),)
    with pytest.raises(InvalidInputError, match="list of rules"):
        Redactor({"field": "email"}, KEY)  # type: ignore[arg-type]


def test_repr_never_shows_the_key() -> None:
    text = repr(Redactor([Rule(field="email")], KEY))
    assert KEY.hex() not in text and repr(KEY) not in text
    assert (
        text == "Redactor(rules=[Rule(field='email', pattern=None, value_pattern=None, "
        "action='hash')], key=<32 bytes>)"
    )


def test_module_docstring_examples_run() -> None:
    for module in (redaction, mltrail.privacy):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0
        assert result.failed == 0
