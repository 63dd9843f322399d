"""Privacy: keep personal data out of events (``redaction``).

>>> from mltrail.privacy import Redactor, Rule
>>> Redactor([Rule(field="customer_id", action="drop")], key=b"k" * 32).redact(
...     {"customer_id": "C-1042", "segment": "smb"})
{'segment': 'smb'}
"""

from __future__ import annotations

from mltrail.privacy.redaction import (
    HASH_PREFIX,
    MIN_KEY_BYTES,
    Action,
    Redactor,
    Rule,
    keyed_hash,
    keyed_hasher,
)

__all__ = [
    "HASH_PREFIX",
    "MIN_KEY_BYTES",
    "Action",
    "Redactor",
    "Rule",
    "keyed_hash",
    "keyed_hasher",
]
