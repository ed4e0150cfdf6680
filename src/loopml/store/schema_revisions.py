"""The metadata schema's migration revisions, importable without SQLAlchemy or Alembic.

Fast read paths that use the standard library's ``sqlite3`` check the database against
:data:`HEAD_REVISION` before trusting its tables.
"""

from __future__ import annotations

from typing import Final

__all__ = ["HEAD_REVISION", "KNOWN_REVISIONS"]

# Every migration's revision id, oldest first; a test checks this against Alembic's scripts.
KNOWN_REVISIONS: Final[tuple[str, ...]] = ("0001", "0002", "0003", "0004")
HEAD_REVISION: Final[str] = KNOWN_REVISIONS[-1]
