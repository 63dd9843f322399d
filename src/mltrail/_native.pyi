# The optional C accelerator (src/mltrail/_native.c); see that file for the contracts.
from typing import Any

def canonical(value: object) -> bytes | None: ...
def seal_batch(
    drafts: list[Any],
    seq: int,
    timestamp: str,
    unix_ms: int,
    random: bytes,
    frontier: list[bytes],
) -> (
    tuple[list[tuple[Any, ...]], list[bytes], list[tuple[int, int, bytes]], list[bytes]] | None
): ...
def check_rows(
    rows: list[tuple[Any, ...]],
) -> tuple[list[bytes], list[int], list[int]] | None: ...
def subtree_levels(leaves: list[bytes]) -> list[list[bytes]] | None: ...
