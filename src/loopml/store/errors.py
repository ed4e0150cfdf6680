"""Errors of the storage layer."""

from __future__ import annotations

from loopml.errors import LoopMLError, NotFoundError, UserInputError

__all__ = [
    "CorruptObjectError",
    "MissingExtraError",
    "ObjectNotFoundError",
    "StoreError",
    "UnsupportedStoreURLError",
]


class StoreError(LoopMLError):
    """A failure of the object or metadata store."""


class ObjectNotFoundError(StoreError, NotFoundError):
    """An object is not in the store."""

    def __init__(self, digest: str, where: str = "the object store") -> None:
        super().__init__(
            f"object {digest[:16]} is missing from {where}; run `loopml pull` or `loopml fsck`"
        )
        self.digest = digest


class CorruptObjectError(StoreError):
    """An object's content does not match its hash."""

    def __init__(self, digest: str, location: str) -> None:
        super().__init__(
            f"object {digest[:16]} is corrupt ({location}); run `loopml fsck` and restore it "
            "with `loopml pull` or by re-adding the data"
        )
        self.digest = digest
        self.location = location


class UnsupportedStoreURLError(UserInputError):
    """A storage URL names a scheme no backend handles."""


class MissingExtraError(StoreError):
    """A backend needs an optional dependency that is not installed."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} needs an optional dependency: pip install 'loopml[{extra}]'")
