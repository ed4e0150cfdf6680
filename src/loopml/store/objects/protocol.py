"""The object-level Protocol every storage backend implements (DESIGN section 4)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

__all__ = ["ObjectBackend"]


@runtime_checkable
class ObjectBackend(Protocol):
    """Immutable blobs addressed by their hex BLAKE3 digest.

    Backends store bytes; they do not hash or verify (``ObjectStore`` does), but each makes
    ``put_*`` atomic in its own way: a reader sees the whole object or none of it.
    """

    url: str

    def has(self, digest: str) -> bool:
        """Whether the object is stored."""
        ...

    def missing(self, digests: Iterable[str]) -> set[str]:
        """The subset of ``digests`` that is not stored (one listing, not a call per object)."""
        ...

    def put_bytes(self, digest: str, data: bytes) -> None:
        """Store ``data`` under ``digest`` atomically; a no-op when it is already there."""
        ...

    def put_file(self, digest: str, path: Path) -> None:
        """Store the file at ``path`` under ``digest`` atomically, streaming it."""
        ...

    def open(self, digest: str) -> BinaryIO:
        """A binary reader of the stored bytes; raises ``ObjectNotFoundError``."""
        ...

    def size(self, digest: str) -> int:
        """The stored object's size in bytes; raises ``ObjectNotFoundError``."""
        ...

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest, in no particular order."""
        ...

    def delete(self, digest: str) -> None:
        """Remove the object if present."""
        ...
