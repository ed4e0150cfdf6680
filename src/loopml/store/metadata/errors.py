"""Errors raised by the metadata store.

Every message is one line a user can act on; none of them contains a database password or the
driver's raw wording for a lock ("database is locked" never reaches the user).
"""

from __future__ import annotations

from loopml.errors import UserInputError
from loopml.store.errors import MissingExtraError, StoreError

__all__ = [
    "DatabaseBusyError",
    "DatabaseUnavailableError",
    "InvalidDatabaseUrlError",
    "MetadataError",
    "MissingDriverError",
    "RetryableConflict",
    "SchemaTooNewError",
    "WriteConflictError",
]


class MetadataError(StoreError):
    """Base class of the metadata store's expected failures."""


class DatabaseUnavailableError(MetadataError):
    """The metadata database cannot be reached or opened."""


class InvalidDatabaseUrlError(MetadataError, UserInputError):
    """The database URL is malformed or names a database loopml does not support."""


class MissingDriverError(MetadataError, MissingExtraError):
    """The driver for the configured database is not installed (an optional extra)."""


class SchemaTooNewError(MetadataError):
    """The database was migrated by a newer loopml than the one running."""


class DatabaseBusyError(MetadataError):
    """Other writers held the database for longer than all retries allowed."""


class WriteConflictError(MetadataError):
    """A write kept conflicting with concurrent writes after all retries."""


class RetryableConflict(MetadataError):  # noqa: N818 - the name says what callers do with it
    """Raised by a ``run_write`` callback to ask for the whole transaction to be retried.

    Typically raised ``from`` an ``IntegrityError`` when a value computed inside the transaction
    (such as the next version number) was taken by a concurrent writer in the meantime.
    """

    def __init__(self, message: str = "a concurrent write took the same value; retrying") -> None:
        super().__init__(message)
