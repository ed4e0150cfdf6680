"""The metadata store: SQLite or PostgreSQL behind one API (DESIGN section 4).

:class:`MetadataStore` (SQLAlchemy) is imported on first use, so that the plain-SQL fast paths
(``loopml.store.metadata.plainsql``) and the errors can be imported without SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from loopml.store.schema_revisions import HEAD_REVISION

if TYPE_CHECKING:
    from loopml.store.metadata.engine import MetadataStore

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


def __getattr__(name: str) -> Any:
    if name == "MetadataStore":
        from loopml.store.metadata.engine import MetadataStore

        return MetadataStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
