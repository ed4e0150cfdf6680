"""The local-folder object backend: loose objects, pack files, atomic writes with plain ``os``.

Layout under the root folder::

    ab/cdef…          loose objects, fanned out by the first two hex characters
    packs/pack-*.pack packed small objects and their ``.idx`` files
    tmp/              temporary files of writes in progress
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from loopml.ids import new_id
from loopml.store.errors import ObjectNotFoundError, StoreError
from loopml.store.fsutil import fsync_dir
from loopml.store.hashing import copy_and_hash, hash_file
from loopml.store.objects.packs import PackIndex, PackWriter, iter_pack_indexes, read_index

__all__ = ["LocalObjectBackend"]

_KERNEL_COPY_FROM = 1024 * 1024


def _kernel_copy(source_fd: int, target_fd: int) -> bool:
    """Copy with ``copy_file_range``; False (having written nothing) where it is unsupported."""
    copied = 0
    while True:
        try:
            count = os.copy_file_range(source_fd, target_fd, 1 << 30)
        except OSError as exc:
            if copied == 0 and exc.errno in (
                errno.EXDEV,
                errno.ENOSYS,
                errno.EINVAL,
                errno.EOPNOTSUPP,
            ):
                return False
            raise
        if count == 0:
            return True
        copied += count


_STALE_TMP_SECONDS = 3600.0
_RACY_MTIME_NS = 3_000_000_000
_RACY_RELIST_NS = 50_000_000


class LocalObjectBackend:
    """Objects in a folder on this machine."""

    def __init__(self, root: Path | str, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.url = str(self.root)
        self.durable = durable
        self.tmp_dir = self.root / "tmp"
        self.packs_dir = self.root / "packs"
        self._packs: dict[Path, PackIndex] = {}
        self._packs_seen_mtime: int | None = None
        self._packs_racy = False
        self._packs_listed_at = 0
        self._packs_lock = threading.Lock()
        self._made_dirs: set[str] = set()

    # -- paths -------------------------------------------------------------------------------

    def loose_path(self, digest: str) -> Path:
        """Where a loose object lives."""
        return self.root / digest[:2] / digest[2:]

    def _ensure_parent(self, digest: str) -> Path:
        path = self.loose_path(digest)
        prefix = digest[:2]
        if prefix not in self._made_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.durable:
                fsync_dir(self.root)  # the fan-out folder's own entry
            self._made_dirs.add(prefix)
        return path

    def _tmp_file(self) -> tuple[int, Path]:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        path = self.tmp_dir / f"obj-{new_id()}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        return fd, path

    # -- packs -------------------------------------------------------------------------------

    def pack_indexes(self) -> list[PackIndex]:
        """Indexes of every complete pack, re-read when the packs folder changed."""
        try:
            mtime = self.packs_dir.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        with self._packs_lock:
            now = time.monotonic_ns()
            # A change in the same timestamp tick as the last listing leaves the mtime unchanged
            # (coarse or 1-2 s timestamps), so while the mtime is recent the folder is re-listed
            # now and then; this store's own commits and repacks invalidate the cache at once.
            recheck = self._packs_racy and now - self._packs_listed_at >= _RACY_RELIST_NS
            if mtime != self._packs_seen_mtime or recheck:
                current = set(iter_pack_indexes(self.packs_dir))
                for gone in set(self._packs) - current:
                    del self._packs[gone]
                for index_path in current - set(self._packs):
                    try:
                        self._packs[index_path] = read_index(index_path)
                    except FileNotFoundError:
                        continue  # repacked away since the listing
                self._packs_seen_mtime = mtime
                self._packs_racy = time.time_ns() - mtime < _RACY_MTIME_NS
                self._packs_listed_at = now
            return list(self._packs.values())

    def invalidate_packs(self) -> None:
        """Forget the cached pack listing (after this process changed the packs folder)."""
        with self._packs_lock:
            self._packs_seen_mtime = None

    def _find_packed(self, digest: str) -> PackIndex | None:
        for index in self.pack_indexes():
            if digest in index.entries:
                return index
        return None

    def new_pack_writer(self) -> PackWriter:
        """A writer for a new pack in this store."""
        return PackWriter(self.packs_dir, on_commit=self.invalidate_packs)

    # -- the Protocol --------------------------------------------------------------------------

    def has(self, digest: str) -> bool:
        """Whether the object is stored, loose or packed."""
        return self.loose_path(digest).exists() or self._find_packed(digest) is not None

    def missing(self, digests: Iterable[str]) -> set[str]:
        """The subset of ``digests`` not stored."""
        packed: set[str] = set()
        for index in self.pack_indexes():
            packed.update(index.entries)
        return {d for d in digests if d not in packed and not self.loose_path(d).exists()}

    def freshen(self, digest: str) -> bool:
        """Whether the object is stored; if so its mtime becomes now.

        Storing content that is already here writes nothing, so without this a concurrent
        ``gc`` could still take the old object as an unreachable one past its grace period.
        """
        try:
            os.utime(self.loose_path(digest))
            return True
        except FileNotFoundError:
            pass
        index = self._find_packed(digest)
        if index is None:
            return False
        try:
            os.utime(index.index_path)  # gc judges a pack's age by its index
        except FileNotFoundError:
            return False  # repacked away just now
        return True

    def put_bytes(self, digest: str, data: bytes) -> None:
        """Store ``data`` as a loose object: temp file, fsync, rename."""
        final = self._ensure_parent(digest)
        if self.freshen(digest):
            return
        fd, tmp = self._tmp_file()
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if self.durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, final)
            if self.durable:
                fsync_dir(final.parent)  # a record may point at it once this returns
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put_file(self, digest: str, path: Path) -> None:
        """Copy the file at ``path`` in as a loose object."""
        final = self._ensure_parent(digest)
        if self.freshen(digest):
            return
        fd, tmp = self._tmp_file()
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                shutil.copyfileobj(src, out, 8 * 1024 * 1024)
                if self.durable:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, final)
            if self.durable:
                fsync_dir(final.parent)  # a record may point at it once this returns
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def ingest_file(self, path: Path, size_hint: int = 0) -> tuple[str, int]:
        """Copy a file in and hash exactly the bytes stored; returns ``(digest, size)``.

        Large files are copied by the kernel (``copy_file_range``: no trip through Python, and
        a reflink where the filesystem has them), then the copy is hashed with BLAKE3's
        threads while it is still in the page cache. Hashing the copy rather than the source
        means a file changing under us can never be stored under the wrong name. Small files
        are copied and hashed in one pass.
        """
        fd, tmp = self._tmp_file()
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb", buffering=0) as src:
                if size_hint >= _KERNEL_COPY_FROM and _kernel_copy(src.fileno(), out.fileno()):
                    size = os.fstat(out.fileno()).st_size
                    # Writing the copy back to disk and hashing it from the page cache
                    # overlap: the fsync waits on the device, the hash on the CPUs.
                    failures: list[OSError] = []

                    def sync() -> None:
                        try:
                            os.fsync(out.fileno())
                        except OSError as exc:
                            failures.append(exc)

                    syncer = threading.Thread(target=sync) if self.durable else None
                    if syncer is not None:
                        syncer.start()
                    digest = hash_file(tmp)
                    if syncer is not None:
                        syncer.join()
                    if failures:
                        raise failures[0]
                else:
                    digest, size = copy_and_hash(src, out, size_hint)
                    if self.durable:
                        out.flush()
                        os.fsync(out.fileno())
            final = self._ensure_parent(digest)
            if self.freshen(digest):
                tmp.unlink()
            else:
                os.replace(tmp, final)
                if self.durable:
                    fsync_dir(final.parent)  # a record may point at it once this returns
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest, size

    def open(self, digest: str) -> BinaryIO:
        """A reader of the object."""
        try:
            return open(self.loose_path(digest), "rb")
        except FileNotFoundError:
            index = self._find_packed(digest)
            if index is None:
                raise ObjectNotFoundError(digest, self.url) from None
            return index.open(digest)

    def size(self, digest: str) -> int:
        """Size in bytes of the stored object."""
        try:
            return self.loose_path(digest).stat().st_size
        except FileNotFoundError:
            index = self._find_packed(digest)
            if index is None:
                raise ObjectNotFoundError(digest, self.url) from None
            return index.entries[digest][1]

    def iter_loose(self) -> Iterator[tuple[str, Path]]:
        """Every loose object with its path."""
        if not self.root.is_dir():
            return
        for fan in sorted(self.root.iterdir()):
            if len(fan.name) != 2 or not fan.is_dir():
                continue
            for entry in fan.iterdir():
                yield fan.name + entry.name, entry

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest (an object both loose and packed is listed once)."""
        seen: set[str] = set()
        for digest, _ in self.iter_loose():
            seen.add(digest)
            yield digest
        for index in self.pack_indexes():
            for digest in index.entries:
                if digest not in seen:
                    seen.add(digest)
                    yield digest

    def delete(self, digest: str) -> None:
        """Remove a loose object; a packed one is dropped by rewriting its pack."""
        self.loose_path(digest).unlink(missing_ok=True)
        index = self._find_packed(digest)
        if index is not None:
            self.repack_one(index, keep=set(index.entries) - {digest})

    # -- maintenance ---------------------------------------------------------------------------

    def repack_one(self, index: PackIndex, keep: set[str]) -> int:
        """Rewrite one pack with only ``keep``; returns how many objects were dropped."""
        dropped = [d for d in index.entries if d not in keep]
        if not dropped:
            return 0
        survivors = [d for d in index.entries if d in keep]
        if survivors:
            writer = self.new_pack_writer()
            try:
                for digest in survivors:
                    writer.add(digest, index.read(digest))
                writer.commit()
            except BaseException:
                writer.abort()
                raise
        # The new pack is published before the old one goes, so every survivor stays readable.
        index.index_path.unlink(missing_ok=True)
        index.pack_path.unlink(missing_ok=True)
        self.invalidate_packs()
        fsync_dir(self.packs_dir)
        return len(dropped)

    def leftovers(self, older_than: float = _STALE_TMP_SECONDS) -> list[Path]:
        """Temporary files of interrupted writes older than ``older_than`` seconds."""
        cutoff = time.time() - older_than
        found: list[Path] = []
        for folder, pattern in ((self.tmp_dir, "*"), (self.packs_dir, "tmp-*")):
            if folder.is_dir():
                for path in folder.glob(pattern):
                    with contextlib.suppress(FileNotFoundError):
                        if path.stat().st_mtime < cutoff:
                            found.append(path)
        if self.packs_dir.is_dir():
            for pack in self.packs_dir.glob("pack-*.pack"):
                if not pack.with_suffix(".idx").exists():
                    with contextlib.suppress(FileNotFoundError):
                        if pack.stat().st_mtime < cutoff:
                            found.append(pack)
        return found

    def check_layout(self) -> None:
        """Raise when the root exists but is not a folder."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"object store {self.root} is not a folder")
