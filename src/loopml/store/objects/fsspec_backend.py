"""Object backend over any fsspec file system (``s3://bucket/prefix`` for teams).

A rename is not atomic on object stores, so atomicity comes from the store itself: an S3 PUT
(single or multipart) becomes visible whole, when it completes, or not at all.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator, Mapping
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
        self.fs = fsspec.filesystem(protocol, **dict(storage_options or {}))
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

    def delete(self, digest: str) -> None:
        """Remove the object if present."""
        try:
            self.fs.rm_file(self._path(digest))
        except FileNotFoundError:
            pass
