from collections.abc import Sequence

def encode_rows(
    rows: Sequence[tuple[object, ...]], kinds: Sequence[int], names: Sequence[str]
) -> bytes: ...
