"""``ObjectStore``: content addressing on top of any ``ObjectBackend``.

It hashes what goes in, verifies what comes out, stores the same content once, and packs small
objects when the backend can. Like Metaflow's content-addressed store, it wraps whatever backend
it is given and adds nothing backend-specific.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from loopml.store.errors import CorruptObjectError, ObjectNotFoundError
from loopml.store.hashing import CHUNK_BYTES, hash_bytes, hash_file, new_hasher
from loopml.store.objects.local import LocalObjectBackend
from loopml.store.objects.packs import PackWriter
from loopml.store.objects.protocol import ObjectBackend
from loopml.store.tree import Tree

__all__ = ["ObjectStore", "StoredFile", "WriteBatch"]


@dataclass(frozen=True, slots=True)
class StoredFile:
    """The result of adding one file."""

    digest: str
    size: int


class _VerifyingReader(io.RawIOBase):
    """Streams an object and raises ``CorruptObjectError`` at EOF if the hash does not match."""

    def __init__(self, raw: BinaryIO, digest: str, location: str) -> None:
        self._raw = raw
        self._digest = digest
        self._location = location
        self._hasher = new_hasher()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._done:
            return 0
        count = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self._hasher.update(buffer[:count])
        elif self._hasher.hexdigest() != self._digest:
            raise CorruptObjectError(self._digest, self._location)  # again on every read
        else:
            self._done = True
        return int(count or 0)

    def close(self) -> None:
        self._raw.close()
        super().close()


class WriteBatch:
    """Adds many objects with few writes: small ones go into one pack committed at the end."""

    def __init__(self, store: ObjectStore, pack: PackWriter | None) -> None:
        self._store = store
        self._pack = pack

    def add_file(self, path: Path, size: int | None = None) -> StoredFile:
        """Add the file at ``path``; small files are packed."""
        if size is None:
            size = path.stat().st_size
        if self._pack is not None and size <= self._store.small_object_bytes:
            data = path.read_bytes()
            digest = hash_bytes(data)
            if digest not in self._pack and not self._store.stored(digest):
                self._pack.add(digest, data)
            return StoredFile(digest, len(data))
        return self._store.add_file(path, size)

    def add_hashed(self, items: list[tuple[str, bytes]]) -> None:
        """Add many small ``(digest, data)`` pairs hashed by the caller: one membership check.

        Objects already stored are freshened (so a concurrent gc's grace period protects them);
        the rest go into the pack, or loose when this store does not pack.
        """
        if not items:
            return
        absent = self._store.backend.missing({digest for digest, _ in items})
        for digest, data in items:
            if digest in absent:
                if self._pack is not None and len(data) <= self._store.small_object_bytes:
                    self._pack.add(digest, data)
                else:
                    self._store.backend.put_bytes(digest, data)
                absent.discard(digest)
            elif self._pack is None or digest not in self._pack:
                self._store.stored(digest)

    def add_verified(self, digest: str, data: bytes) -> None:
        """Add bytes already verified to hash to ``digest`` (objects copied between stores)."""
        if self._pack is not None and len(data) <= self._store.small_object_bytes:
            if digest not in self._pack and not self._store.stored(digest):
                self._pack.add(digest, data)
            return
        if not self._store.stored(digest):
            self._store.backend.put_bytes(digest, data)

    def add_bytes(self, data: bytes) -> str:
        """Add ``data``; returns its digest."""
        digest = hash_bytes(data)
        if self._pack is not None and len(data) <= self._store.small_object_bytes:
            if digest not in self._pack and not self._store.stored(digest):
                self._pack.add(digest, data)
            return digest
        if not self._store.stored(digest):
            self._store.backend.put_bytes(digest, data)
        return digest


class ObjectStore:
    """Content-addressed, verified storage over an ``ObjectBackend``."""

    def __init__(self, backend: ObjectBackend, *, small_object_bytes: int = 256 * 1024) -> None:
        self.backend = backend
        self.small_object_bytes = small_object_bytes

    @property
    def url(self) -> str:
        """Where the objects live."""
        return self.backend.url

    # -- writing -------------------------------------------------------------------------------

    def stored(self, digest: str) -> bool:
        """``has`` for writers: a local object found is freshened, so gc's grace protects it."""
        if isinstance(self.backend, LocalObjectBackend):
            return self.backend.freshen(digest)
        return self.backend.has(digest)

    def add_bytes(self, data: bytes) -> str:
        """Store ``data`` and return its digest."""
        digest = hash_bytes(data)
        if not self.stored(digest):
            self.backend.put_bytes(digest, data)
        return digest

    def add_file(self, path: Path, size: int | None = None) -> StoredFile:
        """Store a file, streamed; on a local backend it is hashed while it is copied."""
        if size is None:
            size = path.stat().st_size
        if isinstance(self.backend, LocalObjectBackend):
            digest, written = self.backend.ingest_file(path, size)
            return StoredFile(digest, written)
        digest = hash_file(path)
        if not self.backend.has(digest):
            self.backend.put_file(digest, path)
        return StoredFile(digest, size)

    @contextlib.contextmanager
    def batch(self) -> Iterator[WriteBatch]:
        """A batch whose small objects become visible together when the block exits cleanly."""
        pack = (
            self.backend.new_pack_writer() if isinstance(self.backend, LocalObjectBackend) else None
        )
        try:
            yield WriteBatch(self, pack)
        except BaseException:
            if pack is not None:
                pack.abort()
            raise
        if pack is not None:
            pack.commit()

    def add_tree(self, tree: Tree) -> str:
        """Store a tree manifest; returns the tree's digest."""
        return self.add_bytes(tree.to_bytes())

    # -- reading -------------------------------------------------------------------------------

    def has(self, digest: str) -> bool:
        """Whether the object is stored."""
        return self.backend.has(digest)

    def read_bytes(self, digest: str) -> bytes:
        """The object's bytes, verified against its digest."""
        with self.backend.open(digest) as handle:
            data = handle.read()
        if hash_bytes(data) != digest:
            raise CorruptObjectError(digest, self.url)
        return data

    def open(self, digest: str) -> BinaryIO:
        """A streaming reader that raises ``CorruptObjectError`` at the end on a mismatch."""
        raw = self.backend.open(digest)
        return cast(
            BinaryIO,
            io.BufferedReader(_VerifyingReader(raw, digest, self.url), CHUNK_BYTES),
        )

    def get_tree(self, digest: str) -> Tree:
        """Load and verify a tree manifest."""
        return Tree.from_bytes(self.read_bytes(digest))

    def export_file(self, digest: str, destination: Path, mode: int | None = None) -> None:
        """Write the object to ``destination`` as an independent copy, atomically.

        A copy (never a hard link) so that editing the working file can never change the stored
        object; the content is verified before the file takes its final name.
        """
        destination.parent.mkdir(parents=True, exist_ok=True)
        tmp = destination.with_name(f".{destination.name}.loopml-tmp")
        try:
            with self.open(digest) as src, open(tmp, "wb") as out:
                while chunk := src.read(CHUNK_BYTES):
                    out.write(chunk)
            if mode is not None:
                os.chmod(tmp, mode & 0o777)
            os.replace(tmp, destination)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def verify(self, digest: str) -> bool:
        """Whether the stored object exists and matches its digest."""
        try:
            with self.open(digest) as handle:
                while handle.read(CHUNK_BYTES):
                    pass
        except (CorruptObjectError, ObjectNotFoundError):
            return False
        return True

    def missing(self, digests: Iterable[str]) -> set[str]:
        """Digests not in this store."""
        return self.backend.missing(digests)

    def copy_to(
        self,
        other: ObjectStore,
        digests: Iterable[str],
        *,
        jobs: int = 8,
        on_object: Callable[[str, int], None] | None = None,
    ) -> int:
        """Copy the given objects into ``other`` in parallel, verifying each; returns the count.

        Every object lands atomically in ``other``, so an interrupted copy resumes by sending
        only what ``other.missing`` still reports.
        """
        from concurrent.futures import ThreadPoolExecutor

        todo = list(digests)
        target_packs = isinstance(other.backend, LocalObjectBackend)

        def fetch(digest: str) -> tuple[str, int, bytes | None]:
            data_size = self.backend.size(digest)
            if data_size > self.small_object_bytes:
                _copy_large(self, other, digest)
                return digest, data_size, None
            data = self.read_bytes(digest)
            if target_packs:
                return digest, data_size, data
            other.backend.put_bytes(digest, data)  # uploads run in the pool too, not one by one
            return digest, data_size, None

        # Small objects bound for a local store are packed, a pack per slice, so an interrupted
        # copy keeps every finished slice and a resumed one sends only what is still missing.
        slice_size = 2000 if target_packs else max(1, len(todo))
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for start in range(0, len(todo), slice_size):
                part = todo[start : start + slice_size]
                with other.batch() as batch:
                    for digest, size, data in pool.map(fetch, part):
                        if data is not None:
                            batch.add_verified(digest, data)
                        if on_object is not None:
                            on_object(digest, size)
        return len(todo)


def _copy_large(source: ObjectStore, target: ObjectStore, digest: str) -> None:
    """Copy one large object, verified, without holding it in memory."""
    import tempfile

    if isinstance(source.backend, LocalObjectBackend):
        loose = source.backend.loose_path(digest)
        if loose.exists():
            if hash_file(loose) != digest:
                raise CorruptObjectError(digest, str(loose))
            target.backend.put_file(digest, loose)
            return
    scratch = target.backend.tmp_dir if isinstance(target.backend, LocalObjectBackend) else None
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xfer-", dir=scratch) as tmp_dir:
        tmp = Path(tmp_dir) / digest
        source.export_file(digest, tmp)
        target.backend.put_file(digest, tmp)
