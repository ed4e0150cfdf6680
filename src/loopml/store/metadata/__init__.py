"""The metadata store: SQLite or PostgreSQL behind one API (DESIGN section 4)."""

from loopml.store.metadata.engine import MetadataStore
from loopml.store.metadata.errors import (
    DatabaseBusyError,
    DatabaseUnavailableError,
    InvalidDatabaseUrlError,
    MetadataError,
    MissingDriverError,
    RetryableConflict,
    SchemaTooNewError,
    WriteConflictError,
)
from loopml.store.metadata.migrate import HEAD_REVISION

__all__ = [
    "HEAD_REVISION",
    "DatabaseBusyError",
    "DatabaseUnavailableError",
    "InvalidDatabaseUrlError",
    "MetadataError",
    "MetadataStore",
    "MissingDriverError",
    "RetryableConflict",
    "SchemaTooNewError",
    "WriteConflictError",
]
