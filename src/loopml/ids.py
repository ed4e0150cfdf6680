"""Sortable identifiers and their shortest unique prefixes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable

__all__ = ["new_id", "shortest_unique_prefixes"]

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_id() -> str:
    """Return a new UUIDv7 as 32 lowercase hex characters.

    Ids sort by creation time (millisecond precision, then a per-process counter), so listing in
    id order lists in creation order, and an index on them appends instead of splitting pages.
    """
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            _counter += 1
            if _counter >= 0x1000:
                _last_ms += 1
                _counter = 0
            now_ms = _last_ms
        else:
            _last_ms = now_ms
            _counter = 0
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big")
    value = (now_ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= counter << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))  # RFC 4122 variant
    return f"{value:032x}"


def shortest_unique_prefixes(ids: Iterable[str], minimum: int = 8) -> dict[str, str]:
    """Map each id to the shortest prefix (at least ``minimum`` chars) no other id shares."""
    ordered = sorted(set(ids))
    result: dict[str, str] = {}
    for index, ident in enumerate(ordered):
        needed = minimum
        for neighbour_index in (index - 1, index + 1):
            if 0 <= neighbour_index < len(ordered):
                neighbour = ordered[neighbour_index]
                common = 0
                for a, b in zip(ident, neighbour, strict=False):
                    if a != b:
                        break
                    common += 1
                needed = max(needed, common + 1)
        result[ident] = ident[: min(needed, len(ident))]
    return result
