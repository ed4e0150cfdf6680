"""Errors of data versioning."""

from __future__ import annotations

from loopml.errors import LoopMLError, NotFoundError, UserInputError

__all__ = [
    "AmbiguousReferenceError",
    "DataError",
    "DatasetNotFoundError",
    "UnrecordedChangesError",
    "VersionNotFoundError",
]


class DataError(LoopMLError):
    """A data-versioning operation cannot proceed."""


class DatasetNotFoundError(DataError, NotFoundError):
    """No dataset has that name."""


class VersionNotFoundError(DataError, NotFoundError):
    """The dataset has no version matching the reference."""


class AmbiguousReferenceError(DataError, UserInputError):
    """A hash prefix matches more than one version."""


class UnrecordedChangesError(DataError):
    """A checkout would overwrite files whose content no version recorded."""
