"""Properties of redaction (hypothesis): a planted sensitive value never survives, whatever
the surrounding data and however deep it sits; everything else is left exactly as it was.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from mltrail.canonical import MAX_SAFE_INTEGER, canonicalize
from mltrail.privacy import HASH_PREFIX, Action, Redactor, Rule, keyed_hash, keyed_hasher

KEY = b"property-test-key-of-32-bytes..."
KEY_PATTERN = r"(?i)ssn_.*|e-?mail"
EMAIL = r"[^@\s]+@[^@\s]+"
Path = list[tuple[str, bool]]  # (key, whether the value at that key is a list to append to)


def sensitive_key(name: str) -> bool:
    return name == "customer_email" or re.fullmatch(KEY_PATTERN, name) is not None


keys = st.text(max_size=6).filter(lambda name: not sensitive_key(name))
planted_keys = st.sampled_from(["customer_email", "E-Mail", "ssn_last4", "SSN_full"])
plain_text = st.text(max_size=8).filter(lambda text: "@" not in text)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(-1e15, 1e15)
    | plain_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(keys, json_values, max_size=5)
paths = st.lists(st.tuples(keys, st.booleans()), max_size=4)
secrets = st.text(min_size=1, max_size=16)
emails = st.from_regex(r"[a-z0-9._%+-]{1,12}@[a-z0-9.-]{1,12}", fullmatch=True)
actions: st.SearchStrategy[Action] = st.sampled_from(["drop", "hash"])
redactors = actions.map(
    lambda action: Redactor(
        [Rule(field="customer_email", action=action), Rule(pattern=KEY_PATTERN, action=action)], KEY
    )
)


def plant(container: dict[str, Any], path: Path, member: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``container`` with ``member`` merged into the object at the end of ``path``,
    going through (and keeping the contents of) whatever objects and lists lie on the way."""
    out = dict(container)
    if not path:
        out.update(member)
        return out
    (key, in_list), rest = path[0], path[1:]
    existing = out.get(key)
    if in_list:
        items = list(existing) if isinstance(existing, list) else []
        out[key] = [*items, plant({}, rest, member)]
    else:
        out[key] = plant(existing if isinstance(existing, dict) else {}, rest, member)
    return out


def needle(value: str) -> bytes:
    """How the value appears inside canonical JSON (escaped, without its quotes)."""
    return canonicalize(value)[1:-1]


@given(objects, paths, planted_keys, secrets, redactors)
def test_a_planted_sensitive_value_never_survives(
    base: dict[str, Any], path: Path, name: str, secret: str, redactor: Redactor
) -> None:
    action = redactor.rules[0].action
    replacement = {} if action == "drop" else {name: HASH_PREFIX + keyed_hash(KEY, secret)}
    expected = plant(base, path, replacement)
    assume(needle(secret) not in canonicalize(expected))  # not elsewhere by coincidence

    redacted = redactor.redact(plant(base, path, {name: secret}))

    assert needle(secret) not in canonicalize(redacted)
    assert redacted == expected  # and nothing else changed


@given(objects, paths, emails, actions)
def test_a_planted_email_value_never_survives(
    base: dict[str, Any], path: Path, email: str, action: Action
) -> None:
    redactor = Redactor([Rule(value_pattern=EMAIL, action=action)], KEY)
    kept = HASH_PREFIX + keyed_hash(KEY, email)
    expected = plant(base, path, {} if action == "drop" else {"contact": kept})
    assume(needle(email) not in canonicalize(expected))

    redacted = redactor.redact(plant(base, path, {"contact": email}))

    assert needle(email) not in canonicalize(redacted)
    assert redacted == expected


@given(objects, redactors)
def test_data_without_sensitive_keys_is_unchanged(base: dict[str, Any], redactor: Redactor) -> None:
    assert redactor.redact(base) == base


@given(objects, paths, planted_keys, secrets, redactors)
def test_redaction_is_idempotent(
    base: dict[str, Any], path: Path, name: str, secret: str, redactor: Redactor
) -> None:
    once = redactor.redact(plant(base, path, {name: secret}))
    assert redactor.redact(once) == once


@given(st.binary(min_size=16, max_size=200), json_values)
def test_the_batch_hasher_equals_keyed_hash(key: bytes, value: Any) -> None:
    assert keyed_hasher(key)(canonicalize(value)) == keyed_hash(key, value)
