"""The stat cache: (path, inode, size, mtime_ns) → hash, so an unchanged file costs one ``stat``.

An entry is trusted only when the file's identity matches and its mtime is safely older than
the moment it was hashed. A file written within the same timestamp tick as its hashing could
have changed again without its mtime moving (git's "racy clean" case), so it is hashed again.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from loopml.store.metadata import MetadataStore

__all__ = [
    "SqlStatCache",
    "SqliteStatCache",
    "StatCache",
    "StatEntry",
    "is_trustworthy",
    "open_stat_cache",
]

# Filesystems with whole-second timestamps (FAT, some network mounts) need a wide window;
# nanosecond filesystems still only move mtime once per kernel clock tick (1-10 ms).
_COARSE_WINDOW_NS = 2_000_000_000
_FINE_WINDOW_NS = 100_000_000
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class StatEntry:
    """What was known about a file when it was last hashed."""

    path: str
    inode: int
    size: int
    mtime_ns: int
    digest: str
    hashed_at_ns: int

    @classmethod
    def of(cls, path: str, st: os.stat_result, digest: str, hashed_at_ns: int) -> StatEntry:
        """An entry for a file just hashed."""
        return cls(path, st.st_ino, st.st_size, st.st_mtime_ns, digest, hashed_at_ns)


def is_trustworthy(entry: StatEntry | None, st: os.stat_result) -> bool:
    """Whether ``entry`` still gives the hash of a file with stat result ``st``."""
    if entry is None:
        return False
    if (entry.inode, entry.size, entry.mtime_ns) != (st.st_ino, st.st_size, st.st_mtime_ns):
        return False
    window = _COARSE_WINDOW_NS if st.st_mtime_ns % 1_000_000_000 == 0 else _FINE_WINDOW_NS
    return st.st_mtime_ns + window < entry.hashed_at_ns


def now_ns() -> int:
    """Wall-clock nanoseconds, the clock mtimes are measured on."""
    return time.time_ns()


class StatCache(Protocol):
    """Lookup and record stat entries for one host."""

    def lookup(self, paths: Sequence[str]) -> Mapping[str, StatEntry]:
        """Entries for those of ``paths`` that have one."""
        ...

    def record(self, entries: Iterable[StatEntry]) -> None:
        """Insert or replace entries."""
        ...


class SqliteStatCache:
    """The stat cache read and written with the standard library's ``sqlite3``.

    Used on the hottest path (``data status``) so that a command that does little never imports
    SQLAlchemy. It speaks to the same table the SQLAlchemy schema defines.
    """

    def __init__(self, database: Path, host: str) -> None:
        self._db = database
        self._host = host

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._db, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def lookup(self, paths: Sequence[str]) -> Mapping[str, StatEntry]:
        """Entries for ``paths``, fetched in chunks of bound parameters."""
        found: dict[str, StatEntry] = {}
        conn = self._connect()
        try:
            for start in range(0, len(paths), _CHUNK):
                chunk = paths[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    "SELECT path, inode, size, mtime_ns, hash, hashed_at_ns FROM stat_cache "
                    f"WHERE host = ? AND path IN ({marks})",
                    (self._host, *chunk),
                )
                for row in rows:
                    found[row[0]] = StatEntry(*row)
        finally:
            conn.close()
        return found

    def record(self, entries: Iterable[StatEntry]) -> None:
        """Upsert entries in one ``BEGIN IMMEDIATE`` transaction, retried while busy."""
        rows = [
            (self._host, e.path, e.inode, e.size, e.mtime_ns, e.digest, e.hashed_at_ns)
            for e in entries
        ]
        if not rows:
            return
        conn = self._connect()
        try:
            for attempt in range(20):
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(
                        "INSERT OR REPLACE INTO stat_cache "
                        "(host, path, inode, size, mtime_ns, hash, hashed_at_ns) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                    conn.execute("COMMIT")
                    return
                except sqlite3.OperationalError as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
                    time.sleep(min(0.05 * (attempt + 1), 0.5))
        finally:
            conn.close()


class SqlStatCache:
    """The stat cache through SQLAlchemy, for PostgreSQL (and SQLite when already open)."""

    def __init__(self, metadata: MetadataStore, host: str) -> None:
        self._metadata = metadata
        self._host = host

    def lookup(self, paths: Sequence[str]) -> Mapping[str, StatEntry]:
        """Entries for ``paths``."""
        from sqlalchemy import select

        from loopml.store.metadata.schema import stat_cache

        found: dict[str, StatEntry] = {}
        with self._metadata.read() as conn:
            for start in range(0, len(paths), _CHUNK):
                chunk = list(paths[start : start + _CHUNK])
                query = select(
                    stat_cache.c.path,
                    stat_cache.c.inode,
                    stat_cache.c.size,
                    stat_cache.c.mtime_ns,
                    stat_cache.c.hash,
                    stat_cache.c.hashed_at_ns,
                ).where(stat_cache.c.host == self._host, stat_cache.c.path.in_(chunk))
                for row in conn.execute(query):
                    found[row[0]] = StatEntry(*row)
        return found

    def record(self, entries: Iterable[StatEntry]) -> None:
        """Upsert entries (delete then insert, portable across both databases)."""
        from sqlalchemy import delete, insert

        from loopml.store.metadata.schema import stat_cache

        rows = [
            {
                "host": self._host,
                "path": e.path,
                "inode": e.inode,
                "size": e.size,
                "mtime_ns": e.mtime_ns,
                "hash": e.digest,
                "hashed_at_ns": e.hashed_at_ns,
            }
            for e in entries
        ]
        if not rows:
            return

        def write(conn: object) -> None:
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start : start + _CHUNK]
                conn.execute(  # type: ignore[attr-defined]
                    delete(stat_cache).where(
                        stat_cache.c.host == self._host,
                        stat_cache.c.path.in_([r["path"] for r in chunk]),
                    )
                )
                conn.execute(insert(stat_cache), chunk)  # type: ignore[attr-defined]

        self._metadata.run_write(write)


def open_stat_cache(metadata: MetadataStore, host: str) -> StatCache:
    """The fastest stat cache implementation for this metadata store."""
    path = metadata.sqlite_path
    if path is not None:
        return SqliteStatCache(path, host)
    return SqlStatCache(metadata, host)
