# The optional C twin of prediction-record sealing (src/mltrail/catalog/_records.c).

def seal(
    head: bytes,
    tail: bytes,
    pids: list[str],
    stamps: list[str],
    hmacs: list[str],
    outputs: list[str],
) -> tuple[list[bytes], bytes, bytes] | None: ...
