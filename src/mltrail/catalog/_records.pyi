# The optional C twins of prediction ingest's per-record loops (src/mltrail/catalog/_records.c).

from collections.abc import Callable
from typing import Any

def columns(
    items: list[dict[str, Any]], canonical: Callable[[object], bytes | None], clock: Any
) -> tuple[list[str], list[str], list[str], list[bytes]] | None: ...
def seal(
    head: bytes,
    tail: bytes,
    pids: list[str],
    stamps: list[str],
    hmacs: list[str],
    outputs: list[bytes],
) -> tuple[bytes, list[int], bytes, bytes] | None: ...
