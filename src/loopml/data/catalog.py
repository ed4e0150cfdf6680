"""The tracked datasets and their latest versions, read the fastest way available.

``data status`` runs often and does little, so on SQLite it reads through the standard library's
``sqlite3`` and never imports SQLAlchemy; anywhere else it goes through the repository.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from loopml.store.schema_revisions import HEAD_REVISION
from loopml.store.statcache import SqliteStatCache, StatCache
from loopml.store.workspace import Workspace

__all__ = ["TrackedDataset", "tracked_datasets"]


@dataclass(frozen=True, slots=True)
class TrackedDataset:
    """A dataset with its path and latest version (``None`` before its first version)."""

    name: str
    path: str
    kind: str
    latest_number: int | None
    latest_hash: str | None


_LATEST_SQL = """
SELECT d.name, d.path, d.kind, v.number, v.hash
FROM datasets AS d
LEFT JOIN dataset_versions AS v
  ON v.dataset_id = d.id
 AND v.number = (SELECT MAX(number) FROM dataset_versions WHERE dataset_id = d.id)
ORDER BY d.name
"""


def _sqlite_file(workspace: Workspace) -> Path | None:
    url = workspace.settings.database_url
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    return Path(url[len(prefix) :])


def _fast_read(database: Path) -> list[TrackedDataset] | None:
    if not database.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30.0)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if revision is None or revision[0] != HEAD_REVISION:
            return None
        return [TrackedDataset(*row) for row in conn.execute(_LATEST_SQL)]
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def tracked_datasets(workspace: Workspace) -> tuple[list[TrackedDataset], StatCache]:
    """Every dataset with its latest version, and the stat cache to check files against."""
    database = _sqlite_file(workspace)
    if database is not None:
        fast = _fast_read(database)
        if fast is not None:
            return fast, SqliteStatCache(database, workspace.host)
    return _slow_read(workspace)


def _slow_read(workspace: Workspace) -> tuple[list[TrackedDataset], StatCache]:
    from loopml.data.repository import DatasetRepository
    from loopml.data.working import stat_cache_for

    repository = DatasetRepository(workspace.metadata)
    result: list[TrackedDataset] = []
    for dataset in repository.all():
        latest = repository.latest(dataset)
        result.append(
            TrackedDataset(
                dataset.name,
                dataset.path,
                dataset.kind,
                latest.number if latest else None,
                latest.hash if latest else None,
            )
        )
    return result, stat_cache_for(workspace)
