"""Hashing the files of a working copy, reading only what the stat cache cannot vouch for."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.data.progress import NullProgress, Progress
from loopml.data.scan import ScannedFile, check_readable
from loopml.errors import UserInputError
from loopml.store.hashing import hash_bytes, hash_file
from loopml.store.statcache import StatCache, StatEntry, is_trustworthy, now_ns, open_stat_cache
from loopml.store.tree import Tree, TreeEntry

if TYPE_CHECKING:
    from loopml.store.objects.store import WriteBatch
    from loopml.store.workspace import Workspace

__all__ = ["HashedTree", "hash_working_files", "stat_cache_for"]


@dataclass(frozen=True, slots=True)
class HashedTree:
    """The tree of a working copy and how many files had to be read to build it."""

    tree: Tree
    files_read: int
    bytes_read: int
    fresh_entries: tuple[StatEntry, ...]

    def remember(self, cache: StatCache) -> None:
        """Record what was read in the stat cache (call after the objects are durable)."""
        cache.record(self.fresh_entries)


def stat_cache_for(workspace: Workspace) -> StatCache:
    """The stat cache of this machine in ``workspace``."""
    return open_stat_cache(workspace.metadata, workspace.host)


_SLICE_BYTES = 64 * 1024 * 1024


def _read_small(item: ScannedFile, shown_root: str) -> bytes:
    """The whole content of a small file, read with one system call where possible."""
    try:
        fd = os.open(item.absolute, os.O_RDONLY)
    except PermissionError:
        raise UserInputError(
            f"cannot read {shown_root}/{item.relative}: permission denied; fix it with chmod u+r"
        ) from None
    except FileNotFoundError:
        raise UserInputError(
            f"{shown_root}/{item.relative} disappeared while being read; run the command again"
        ) from None
    try:
        chunks = []
        while chunk := os.read(fd, max(item.stat.st_size + 1, 65536)):
            chunks.append(chunk)
        return b"".join(chunks) if len(chunks) != 1 else chunks[0]
    finally:
        os.close(fd)


def hash_working_files(
    workspace: Workspace,
    files: list[ScannedFile],
    *,
    shown_root: str,
    batch: WriteBatch | None = None,
    cache: StatCache | None = None,
    progress: Progress | None = None,
) -> HashedTree:
    """Build the tree of ``files``; with ``batch`` every file read is also stored.

    A file whose stat cache entry is trustworthy is not read. When storing, it is also not
    re-stored if its object is already present.
    """
    progress = progress or NullProgress()
    cache = cache or stat_cache_for(workspace)
    known = cache.lookup([f.absolute for f in files])
    digests: dict[str, tuple[str, int]] = {}
    to_read: list[ScannedFile] = []
    trusted: list[tuple[ScannedFile, str]] = []
    for item in files:
        entry = known.get(item.absolute)
        if entry is not None and is_trustworthy(entry, item.stat):
            trusted.append((item, entry.digest))
        else:
            to_read.append(item)
    # When storing, a cached hash is only enough if its object is still in the store (gc may
    # have removed it); one batched membership check instead of one per file.
    absent = workspace.objects.missing({d for _, d in trusted}) if batch is not None else set()
    for item, digest in trusted:
        if digest in absent:
            to_read.append(item)
        else:
            digests[item.relative] = (digest, item.stat.st_size)
    check_readable(to_read, shown_root)
    total_bytes = sum(f.stat.st_size for f in to_read)
    progress.start("hashing" if batch is None else "adding", len(to_read), total_bytes)

    def read_one(item: ScannedFile) -> tuple[ScannedFile, str, int, int]:
        started = now_ns()
        try:
            if batch is not None:
                stored = batch.add_file(Path(item.absolute), item.stat.st_size)
                digest, size = stored.digest, stored.size
            else:
                digest, size = hash_file(item.absolute), item.stat.st_size
        except PermissionError:
            raise UserInputError(
                f"cannot read {shown_root}/{item.relative}: permission denied; "
                "fix it with chmod u+r"
            ) from None
        except FileNotFoundError:
            raise UserInputError(
                f"{shown_root}/{item.relative} disappeared while being read; run the command again"
            ) from None
        return item, digest, size, started

    fresh: list[StatEntry] = []
    bytes_read = 0

    def done(item: ScannedFile, digest: str, size: int, started: int) -> None:
        nonlocal bytes_read
        digests[item.relative] = (digest, size)
        fresh.append(StatEntry.of(item.absolute, item.stat, digest, started))
        bytes_read += size
        progress.advance(1, size)

    # Small files are read and hashed on this thread with plain os calls, then stored a slice
    # at a time with one membership check: threads only add GIL contention for 10 KiB reads.
    small_limit = workspace.objects.small_object_bytes
    small = [f for f in to_read if f.stat.st_size <= small_limit]
    large = [f for f in to_read if f.stat.st_size > small_limit]
    pending: list[tuple[ScannedFile, str, bytes, int]] = []
    pending_bytes = 0

    def flush_small() -> None:
        nonlocal pending_bytes
        if batch is not None:
            batch.add_hashed([(digest, data) for _, digest, data, _ in pending])
        for item, digest, data, started in pending:
            done(item, digest, len(data), started)
        pending.clear()
        pending_bytes = 0

    for item in small:
        started = now_ns()
        data = _read_small(item, shown_root)
        pending.append((item, hash_bytes(data), data, started))
        pending_bytes += len(data)
        if pending_bytes >= _SLICE_BYTES:
            flush_small()
    flush_small()

    workers = workspace.settings.effective_jobs if len(large) > 1 else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for item, digest, size, started in pool.map(read_one, large):
            done(item, digest, size, started)
    progress.finish()
    tree = Tree.build(
        TreeEntry(f.relative, digests[f.relative][1], f.mode, digests[f.relative][0]) for f in files
    )
    return HashedTree(tree, len(to_read), bytes_read, tuple(fresh))
