"""What a materializer is: a named way to turn values of some types into objects and back."""

from __future__ import annotations

from typing import Any, Protocol

from loopml.store.objects.store import ObjectStore

__all__ = ["Materializer"]


class Materializer(Protocol):
    """Saves a value as one object (or tree) in the store and loads it back.

    ``save`` must be deterministic: the same value gives the same bytes, hence the same digest,
    which is what makes step outputs comparable across runs.
    """

    name: str

    def handles(self, value: object) -> bool:
        """Whether this materializer is the right one for ``value``."""
        ...

    def save(self, value: Any, store: ObjectStore) -> str:
        """Store ``value``; returns the digest of what was stored."""
        ...

    def load(self, digest: str, store: ObjectStore) -> Any:
        """The value stored under ``digest``."""
        ...
