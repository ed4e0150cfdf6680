"""BLAKE3 hashing of bytes and files, including hashing while copying.

Large inputs are hashed with BLAKE3's own thread pool (``max_threads=AUTO``), which is where the
speed of a single big file comes from; many small files are hashed in parallel by the caller.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from blake3 import blake3

__all__ = [
    "CHUNK_BYTES",
    "DIGEST_HEX_LEN",
    "copy_and_hash",
    "hash_bytes",
    "hash_file",
    "new_hasher",
]

CHUNK_BYTES = 8 * 1024 * 1024
DIGEST_HEX_LEN = 64
_MULTITHREAD_FROM = 4 * 1024 * 1024
_MMAP_FROM = 1024 * 1024


def new_hasher(expected_size: int = 0) -> blake3:
    """A BLAKE3 hasher, multi-threaded when the input is large enough to benefit."""
    if expected_size >= _MULTITHREAD_FROM:
        return blake3(max_threads=blake3.AUTO)
    return blake3()


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """Hex BLAKE3 digest of ``data``."""
    return new_hasher(len(data)).update(data).hexdigest()


def hash_file(path: Path | str) -> str:
    """Hex BLAKE3 digest of the file at ``path``, streamed (never read whole into memory)."""
    size = os.stat(path).st_size
    hasher = new_hasher(size)
    if size >= _MMAP_FROM:
        hasher.update_mmap(path)
        return hasher.hexdigest()
    with open(path, "rb") as handle:
        hasher.update(handle.read())
    return hasher.hexdigest()


def copy_and_hash(source: BinaryIO, destination: BinaryIO, size_hint: int = 0) -> tuple[str, int]:
    """Copy ``source`` to ``destination`` and return ``(digest, size)`` of the bytes copied.

    Hashing the bytes that were actually written, in the same pass, means a file that changes
    while it is added can never be stored under a hash of different content.
    """
    hasher = new_hasher(size_hint)
    buffer = bytearray(min(CHUNK_BYTES, max(size_hint, 64 * 1024)))
    view = memoryview(buffer)
    total = 0
    while True:
        count = source.readinto(view)  # type: ignore[attr-defined]
        if not count:
            break
        chunk = view[:count]
        hasher.update(chunk)
        destination.write(chunk)
        total += count
    return hasher.hexdigest(), total
