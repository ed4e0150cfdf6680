"""Errors of experiment tracking."""

from __future__ import annotations

from loopml.errors import LoopMLError, NotFoundError, UserInputError

__all__ = [
    "FilterSyntaxError",
    "InvalidValueError",
    "NoActiveRunError",
    "RunNotFoundError",
    "TrackingError",
]


class TrackingError(LoopMLError):
    """A tracking operation cannot proceed."""


class RunNotFoundError(TrackingError, NotFoundError):
    """No run has that id (or id prefix)."""


class NoActiveRunError(TrackingError):
    """A ``log_*`` call was made outside ``start_run``."""


class InvalidValueError(TrackingError, UserInputError):
    """A logged value cannot be stored (a non-numeric metric, a too-long key)."""


class FilterSyntaxError(TrackingError, UserInputError):
    """A ``search_runs`` filter or order-by cannot be parsed."""
