"""Object backend over any fsspec file system (``s3://bucket/prefix`` for teams).

A rename is not atomic on object stores, so atomicity comes from the store itself: an S3 PUT
(single or multipart) becomes visible whole, when it completes, or not at all.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from loopml.store.errors import ObjectNotFoundError, StoreError

__all__ = ["FsspecObjectBackend"]


class FsspecObjectBackend:
    """Objects under ``<url>/<ab>/<cdef…>`` on an fsspec file system."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        import fsspec

        self.url = url.rstrip("/")
        protocol, _, path = self.url.partition("://")
        if not path.strip("/"):
            raise StoreError(f"{url} names no bucket; use s3://bucket/prefix")
        options = dict(storage_options or {})
        # No listings cache: a listing (``missing``) would otherwise answer later ``has``/``open``
        # from memory, blind to objects others uploaded or deleted since.
        options.setdefault("use_listings_cache", False)
        self.fs = fsspec.filesystem(protocol, **options)
        self.root = path.strip("/")

    def _path(self, digest: str) -> str:
        return posixpath.join(self.root, digest[:2], digest[2:])

    def has(self, digest: str) -> bool:
        """Whether the object exists (one HEAD request)."""
        return bool(self.fs.exists(self._path(digest)))

    def missing(self, digests: Iterable[str]) -> set[str]:
        """One listing of the prefix instead of a request per object."""
        wanted = set(digests)
        if not wanted:
            return set()
        present: set[str] = set()
        try:
            listing = self.fs.find(self.root)
        except FileNotFoundError:
            listing = []
        prefix_len = len(self.root) + 1
        for key in listing:
            rel = key[prefix_len:] if key.startswith(self.root + "/") else key
            fan, _, rest = rel.partition("/")
            if len(fan) == 2 and rest and "/" not in rest:
                present.add(fan + rest)
        return wanted - present

    def put_bytes(self, digest: str, data: bytes) -> None:
        """Upload in one PUT."""
        self.fs.pipe_file(self._path(digest), data)

    def put_file(self, digest: str, path: Path) -> None:
        """Upload a file, multipart when large."""
        self.fs.put_file(str(path), self._path(digest))

    def open(self, digest: str) -> BinaryIO:
        """A reader of the object."""
        try:
            return cast(BinaryIO, self.fs.open(self._path(digest), "rb"))
        except FileNotFoundError:
            raise ObjectNotFoundError(digest, self.url) from None

    def size(self, digest: str) -> int:
        """The object's size."""
        try:
            return int(self.fs.size(self._path(digest)))
        except FileNotFoundError:
            raise ObjectNotFoundError(digest, self.url) from None

    def iter_digests(self) -> Iterator[str]:
        """Every object under the prefix."""
        try:
            listing = self.fs.find(self.root)
        except FileNotFoundError:
            return
        for key in listing:
            rel = key[len(self.root) + 1 :]
            fan, _, rest = rel.partition("/")
            if len(fan) == 2 and rest and "/" not in rest:
                yield fan + rest

    def iter_stats(self) -> Iterator[tuple[str, int, float | None]]:
        """``(digest, size, modified epoch seconds or None)`` of every object, in one listing."""
        try:
            listing = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return
        for key, info in listing.items():
            rel = key[len(self.root) + 1 :]
            fan, _, rest = rel.partition("/")
            if len(fan) == 2 and rest and "/" not in rest:
                yield fan + rest, int(info.get("size") or 0), _modified(info)

    def delete(self, digest: str) -> None:
        """Remove the object if present."""
        try:
            self.fs.rm_file(self._path(digest))
        except FileNotFoundError:
            pass


def _modified(info: Mapping[str, Any]) -> float | None:
    """The modification time in an fsspec ``info`` dict (S3's ``LastModified`` and the like)."""
    for key in ("LastModified", "mtime", "last_modified", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return None
