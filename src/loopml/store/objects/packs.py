"""Pack files: many small objects in one file plus a sorted index.

Ten thousand tiny files would otherwise cost ten thousand writes, renames and fsyncs. A pack is
written to a temporary name, fsynced and renamed, then its index likewise; a pack only counts
once its index exists, so a crash mid-write leaves an ignorable leftover, never a half object.

Index layout: ``MAGIC`` (8 bytes), entry count (u64), entries sorted by digest — raw digest
(32 bytes), offset (u64), length (u64) — then the BLAKE3 of everything before it (32 bytes).
"""

from __future__ import annotations

import io
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from loopml.ids import new_id
from loopml.store.errors import StoreError
from loopml.store.fsutil import fsync_dir
from loopml.store.hashing import hash_bytes

__all__ = ["PACK_MAGIC", "PackIndex", "PackWriter", "read_index"]

PACK_MAGIC = b"LMPACK1\n"
INDEX_MAGIC = b"LMIDX1\n\x00"
_HEADER = struct.Struct(">8sQ")
_ENTRY = struct.Struct(">32sQQ")
_CHECKSUM_BYTES = 32


@dataclass(frozen=True, slots=True)
class PackIndex:
    """The parsed index of one pack: digest → (offset, length)."""

    pack_path: Path
    index_path: Path
    entries: dict[str, tuple[int, int]]

    def read(self, digest: str) -> bytes:
        """The bytes of one packed object."""
        offset, length = self.entries[digest]
        try:
            with open(self.pack_path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(length)
        except FileNotFoundError:
            raise StoreError(f"pack {self.pack_path.name} is missing; run `loopml fsck`") from None
        if len(data) != length:
            raise StoreError(f"pack {self.pack_path.name} is truncated; run `loopml fsck`")
        return data

    def open(self, digest: str) -> BinaryIO:
        """A reader of one packed object."""
        return io.BytesIO(self.read(digest))


def read_index(index_path: Path) -> PackIndex:
    """Parse and checksum-verify a pack index."""
    data = index_path.read_bytes()
    if len(data) < _HEADER.size + _CHECKSUM_BYTES:
        raise StoreError(f"pack index {index_path.name} is truncated")
    body, checksum = data[:-_CHECKSUM_BYTES], data[-_CHECKSUM_BYTES:]
    if bytes.fromhex(hash_bytes(body)) != checksum:
        raise StoreError(f"pack index {index_path.name} fails its checksum")
    magic, count = _HEADER.unpack_from(body, 0)
    if magic != INDEX_MAGIC or len(body) != _HEADER.size + count * _ENTRY.size:
        raise StoreError(f"pack index {index_path.name} is malformed")
    entries: dict[str, tuple[int, int]] = {}
    for raw, offset, length in _ENTRY.iter_unpack(body[_HEADER.size :]):
        entries[raw.hex()] = (offset, length)
    pack_path = index_path.with_suffix(".pack")
    return PackIndex(pack_path, index_path, entries)


def _index_bytes(entries: Iterable[tuple[str, int, int]]) -> bytes:
    ordered = sorted(entries)
    body = bytearray(_HEADER.pack(INDEX_MAGIC, len(ordered)))
    for digest, offset, length in ordered:
        body += _ENTRY.pack(bytes.fromhex(digest), offset, length)
    return bytes(body) + bytes.fromhex(hash_bytes(body))


class PackWriter:
    """Appends objects to one new pack; ``commit`` makes them visible all at once."""

    def __init__(self, packs_dir: Path, on_commit: Callable[[], None] | None = None) -> None:
        self._dir = packs_dir
        self._on_commit = on_commit
        self._dir.mkdir(parents=True, exist_ok=True)
        self._name = f"pack-{new_id()}"
        self._tmp_path = self._dir / f"tmp-{self._name}.pack"
        self._handle: BinaryIO | None = None
        self._entries: dict[str, tuple[int, int]] = {}
        self._offset = 0
        self._lock = threading.Lock()

    def __contains__(self, digest: str) -> bool:
        return digest in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, digest: str, data: bytes) -> None:
        """Append one object (ignored if this pack already has it)."""
        with self._lock:
            if digest in self._entries:
                return
            if self._handle is None:
                self._handle = open(self._tmp_path, "wb")  # noqa: SIM115 - closed in commit/abort
                self._handle.write(PACK_MAGIC)
                self._offset = len(PACK_MAGIC)
            self._handle.write(data)
            self._entries[digest] = (self._offset, len(data))
            self._offset += len(data)

    def read(self, digest: str) -> bytes:
        """Read back an object appended but not yet committed."""
        with self._lock:
            offset, length = self._entries[digest]
            assert self._handle is not None
            self._handle.flush()
        with open(self._tmp_path, "rb") as handle:
            handle.seek(offset)
            return handle.read(length)

    def commit(self) -> Path | None:
        """fsync and publish the pack and its index; returns the index path (None if empty)."""
        with self._lock:
            if self._handle is None:
                return None
            handle, self._handle = self._handle, None
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            pack_path = self._dir / f"{self._name}.pack"
            os.replace(self._tmp_path, pack_path)
            index_path = self._dir / f"{self._name}.idx"
            tmp_index = self._dir / f"tmp-{self._name}.idx"
            with open(tmp_index, "wb") as out:
                out.write(_index_bytes((d, o, n) for d, (o, n) in self._entries.items()))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_index, index_path)
            fsync_dir(self._dir)
        if self._on_commit is not None:
            self._on_commit()
        return index_path

    def abort(self) -> None:
        """Drop everything appended."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
            self._tmp_path.unlink(missing_ok=True)
            self._entries.clear()


def iter_pack_indexes(packs_dir: Path) -> Iterator[Path]:
    """Index files of complete packs."""
    if not packs_dir.is_dir():
        return
    for entry in sorted(packs_dir.iterdir()):
        if entry.suffix == ".idx" and entry.name.startswith("pack-"):
            yield entry
