"""Fast, exact answers to "does any value repeat?" for big integer and text columns.

A hash table over a million strings costs ~100 ms, mostly in hashing one string at a time and
in random memory access. Here each value is hashed to 64 bits with whole-column numpy
operations (text straight from its Arrow buffers, eight bytes at a time), the hashes are
counted into 2 to 4 buckets per value with ``bincount``, and only the hashes that share a bucket go
through a hash table. Equal values always hash alike, so "no repeated hash" proves "no
repeated value"; when hashes do repeat (a real repeat, or a rare collision) the caller falls
back to comparing the values at those few positions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

__all__ = ["arrow_text_chunks", "int_hashes", "repeated_hashes", "text_hashes"]

U64 = NDArray[np.uint64]

_SMALL = 65_536  # below this many values a plain hash table is as fast
_C1 = np.uint64(0xFF51AFD7ED558CCD)
_C2 = np.uint64(0xC4CEB9FE1A85EC53)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S33 = np.uint64(33)
_S29 = np.uint64(29)
# _TAIL[r]: keeps the first r bytes of a little-endian 8-byte word (r = 0..8).
_TAIL = np.array([(1 << (8 * r)) - 1 for r in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def _mix(values: U64) -> U64:
    """MurmurHash3's 64-bit finaliser, in place (a bijection that spreads every bit)."""
    values ^= values >> _S33
    values *= _C1
    values ^= values >> _S33
    values *= _C2
    values ^= values >> _S33
    return values


def int_hashes(values: NDArray[Any]) -> U64:
    """64-bit hashes of integer (or datetime) values."""
    return _mix(values.astype(np.uint64, copy=True) if values.dtype != np.uint64 else values.copy())


def arrow_text_chunks(series: pd.Series[Any]) -> list[Any] | None:
    """The Arrow chunks of a text column stored in Arrow (pandas' ``str``), else None."""
    if getattr(series.dtype, "storage", None) != "pyarrow":
        return None
    try:
        import pyarrow as pa

        chunked = series.array.__arrow_array__()
    except (AttributeError, TypeError, ImportError):
        return None
    kind = chunked.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return None
    return list(chunked.chunks)


def _chunk_hashes(chunk: Any) -> U64:
    import pyarrow as pa

    count = len(chunk)
    if count == 0:
        return np.empty(0, dtype=np.uint64)
    _, offsets_buffer, data_buffer = chunk.buffers()
    offset_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    width = np.dtype(offset_type).itemsize
    offsets = np.frombuffer(
        offsets_buffer, dtype=offset_type, count=count + 1, offset=chunk.offset * width
    )
    lengths = np.diff(offsets).astype(np.int64, copy=False)
    first, last = int(offsets[0]), int(offsets[-1])
    size = last - first
    longest = int(lengths.max())
    shortest = int(lengths.min())
    # The used bytes, padded so that reading eight bytes at any start stays inside.
    padded = np.zeros((size + longest) // 8 * 8 + 16, dtype=np.uint8)
    if size:
        padded[:size] = np.frombuffer(data_buffer, dtype=np.uint8, count=size, offset=first)
    words = as_strided(padded.view(np.uint64), shape=(size + longest + 1,), strides=(1,))
    starts = offsets[:-1] - first
    hashes = lengths.astype(np.uint64) * _GOLDEN
    for position in range(0, longest, 8):
        word: U64
        if shortest == longest:  # fixed width (codes, ids, UUIDs): a strided view, no gather
            word = np.ndarray(
                (count,), dtype=np.uint64, buffer=padded, offset=position, strides=(longest,)
            )
            if position + 8 > longest:
                word = word & _TAIL[longest - position]
        else:
            word = words[starts + position if position else starts]
            if position + 8 > shortest:  # some values end inside this word: keep their bytes
                word &= _TAIL[np.clip(lengths - position, 0, 8)]
        hashes ^= word  # fold the word in: a multiply and a shift spread it over all bits
        hashes *= _C1
        hashes ^= hashes >> _S29
    return _mix(hashes)


def text_hashes(chunks: list[Any]) -> U64:
    """64-bit hashes of every value of an Arrow text column (nulls hash as empty text)."""
    parts = [_chunk_hashes(chunk) for chunk in chunks]
    if not parts:
        return np.empty(0, dtype=np.uint64)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def repeated_hashes(hashes: U64) -> NDArray[np.intp]:
    """Positions (ascending) of the hashes that occur more than once; empty when none does.

    Every repeated value is among them (equal values hash alike), and little else: only a
    64-bit collision could add a position, so checking the values there settles it exactly.
    """
    count = len(hashes)
    if count < 2:
        return np.empty(0, dtype=np.intp)
    positions: NDArray[np.intp] | None = None
    if count > _SMALL:
        bits = min(26, math.ceil(math.log2(count)) + 1)  # 2 to 4 buckets per value
        buckets = (hashes >> np.uint64(64 - bits)).astype(np.intp)
        shared = np.bincount(buckets, minlength=1 << bits) > 1  # a small table: cheap lookups
        positions = np.flatnonzero(shared[buckets])  # roughly a third of the values
        hashes = hashes[positions]
    repeated = np.asarray(pd.Series(hashes).duplicated(keep=False).to_numpy(), dtype=bool)
    found = np.flatnonzero(repeated)
    return found if positions is None else positions[found]
