"""Bringing the database schema up to date when a store is opened.

Every CLI call opens the store, so the common case (schema already current) costs one SELECT and
never imports Alembic; Alembic is imported only when the schema is behind.

To write a new migration, add ``migrations/versions/NNNN_<slug>.py`` (for example with
``alembic.command.revision(alembic_config(), "message", rev_id="0002")``), then append its
revision to ``KNOWN_REVISIONS`` in ``loopml/store/schema_revisions.py``; a test checks they agree.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from loopml.store.metadata.errors import SchemaTooNewError
from loopml.store.schema_revisions import HEAD_REVISION, KNOWN_REVISIONS

if TYPE_CHECKING:
    from alembic.config import Config

    from loopml.store.metadata.engine import MetadataStore

__all__ = [
    "HEAD_REVISION",
    "KNOWN_REVISIONS",
    "alembic_config",
    "ensure_schema",
    "schema_revision",
    "upgrade",
]

# The revision list lives in a module without imports, so stdlib-sqlite3 fast paths can check
# the schema without SQLAlchemy; knowing it without Alembic lets ``open`` tell "behind" (upgrade)
# from "newer than this code" (refuse) cheaply.

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
# Any fixed 64-bit key works; every loopml process must use the same one ("loopml" in ASCII).
_PG_LOCK_KEY: Final = 0x6C6F6F706D6C

_MISSING_TABLE_SQLSTATE: Final = "42P01"  # PostgreSQL undefined_table


def schema_revision(conn: Connection) -> str | None:
    """The database's schema revision, or None when no migration has run yet.

    Raises :class:`SchemaTooNewError` for a revision this code does not know.
    """
    try:
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError as exc:
        if _is_missing_table(exc):
            return None
        raise
    revisions = [str(row) for row in rows]
    unknown = [rev for rev in revisions if rev not in KNOWN_REVISIONS]
    if unknown:
        raise SchemaTooNewError(
            f"this workspace was written by a newer loopml (schema revision {unknown[0]}, this "
            f"loopml knows up to {HEAD_REVISION}); upgrade loopml"
        )
    if not revisions:
        return None
    return max(revisions, key=KNOWN_REVISIONS.index)


def ensure_schema(store: MetadataStore) -> None:
    """Upgrade the schema to :data:`HEAD_REVISION` if it is behind; refuse a newer one."""
    if _current(store) == HEAD_REVISION:
        return
    with _migration_lock(store):
        # Another process may have migrated while this one waited for the lock.
        if _current(store) != HEAD_REVISION:
            upgrade(store)


def upgrade(store: MetadataStore) -> None:
    """Run Alembic's upgrade to head in one transaction. Callers hold the migration lock."""
    from alembic import command

    config = alembic_config()
    with store.write() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def alembic_config() -> Config:
    """An Alembic configuration built in code; there is no ``alembic.ini``."""
    from alembic.config import Config

    config = Config()
    # ConfigParser interpolates "%", which may appear in an install path.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def _current(store: MetadataStore) -> str | None:
    with store.read() as conn:
        return schema_revision(conn)


def _is_missing_table(exc: DBAPIError) -> bool:
    if getattr(exc.orig, "sqlstate", None) == _MISSING_TABLE_SQLSTATE:
        return True
    return "no such table" in str(exc.orig)


@contextmanager
def _migration_lock(store: MetadataStore) -> Iterator[None]:
    """Serialise migrations between processes opening the same new database at once."""
    if store.dialect == "postgresql":
        with _pg_advisory_lock(store):
            yield
        return
    path = store.sqlite_path
    if path is None:  # An in-memory database belongs to this process alone.
        yield
        return
    with _file_lock(path.with_name(path.name + ".migrate.lock")):
        yield


@contextmanager
def _pg_advisory_lock(store: MetadataStore) -> Iterator[None]:
    # A session-level lock on its own connection survives the commits a migration may need,
    # and PostgreSQL releases it by itself if this process dies.
    with store.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
            except DBAPIError:
                # Never return a connection that may still hold the lock to the pool.
                conn.invalidate()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _lock_fd(fd)
        yield  # The lock goes with the descriptor when it is closed, even on a crash.
    finally:
        os.close(fd)


def _lock_fd(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt
        import time

        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return
            except OSError:
                time.sleep(0.05)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
