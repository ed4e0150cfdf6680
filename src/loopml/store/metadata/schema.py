"""The metadata database's tables, as SQLAlchemy Core objects.

This module describes the newest schema; the migrations in ``migrations/versions`` build it step
by step and are frozen once released. A contract test compares the migrated database with these
objects, so the two cannot drift apart silently.

Conventions: ids are ``String(32)`` from :func:`loopml.ids.new_id`, times are ``BigInteger``
epoch milliseconds (``*_ns`` columns are nanoseconds), hashes are 64 hex characters.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "NAMING_CONVENTION",
    "dataset_tags",
    "dataset_versions",
    "datasets",
    "metadata",
    "pins",
    "remotes",
    "stat_cache",
]

# Without a convention each database invents its own constraint names, and a later migration
# that drops or alters a constraint would need to know which backend it runs on.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID = String(32)
HASH = String(64)
NAME = String(128)

datasets = Table(
    "datasets",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", NAME, nullable=False, unique=True),
    # Relative to the workspace root, with forward slashes, so a workspace moves between machines.
    Column("path", Text, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("kind IN ('file', 'dir')", name="kind"),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("hash", HASH, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("message", Text, nullable=True),
    Column("author", NAME, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Concurrent writers both computing max(number) + 1 are caught here, not by a lock.
    UniqueConstraint("dataset_id", "number"),
    Index(None, "hash"),
)

dataset_tags = Table(
    "dataset_tags",
    metadata,
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    Column("tag", NAME, nullable=False),
    Column("version_id", ID, ForeignKey("dataset_versions.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("dataset_id", "tag"),
    # PostgreSQL does not index foreign keys by itself; deleting a version would scan every tag.
    Index(None, "version_id"),
)

stat_cache = Table(
    "stat_cache",
    metadata,
    Column("host", String(255), nullable=False),
    Column("path", Text, nullable=False),
    Column("inode", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("hash", HASH, nullable=False),
    # A file modified within the same timestamp tick as it was hashed may have changed unseen
    # ("racy" entry); comparing mtime_ns with this wall-clock time detects that case.
    Column("hashed_at_ns", BigInteger, nullable=False),
    PrimaryKeyConstraint("host", "path"),
    # Lookups are always by (host, path); storing rows in that key's b-tree halves the I/O.
    sqlite_with_rowid=False,
)

remotes = Table(
    "remotes",
    metadata,
    Column("name", NAME, primary_key=True),
    Column("url", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_push_at", BigInteger, nullable=True),
    Column("last_pull_at", BigInteger, nullable=True),
)

# Explicit garbage-collection roots: objects no record points to, kept on purpose.
pins = Table(
    "pins",
    metadata,
    Column("hash", HASH, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
