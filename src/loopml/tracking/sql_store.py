"""The tracking store on the metadata database (SQLite or PostgreSQL), in plain SQL.

Every statement goes through :class:`~loopml.store.metadata.plainsql.SqlDatabase`: on a SQLite
workspace the standard library's ``sqlite3`` (a run, or a cached pipeline, never imports
SQLAlchemy), elsewhere :class:`MetadataStore`. The ``*_tx`` methods write inside a transaction the
caller holds, so that a pipeline records a step's run and its step record in one commit.

This module keeps construction, experiments and the run lifecycle (create, heartbeat, status,
manifest, crash reaping, deletion); :class:`SqlTrackingStore` inherits what runs record from
:mod:`loopml.tracking.run_writes` and the read queries from :mod:`loopml.tracking.run_queries`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loopml.ids import new_id
from loopml.store.metadata.errors import RetryableConflict
from loopml.store.metadata.plainsql import (
    AlchemyDatabase,
    Sql,
    SqlDatabase,
    in_list,
    is_unique_violation,
)
from loopml.tracking.errors import TrackingError
from loopml.tracking.model import NewRun, RunInfo, RunStatus
from loopml.tracking.run_queries import _chunks, _RunReads
from loopml.tracking.run_writes import _RunWrites, now_ms

if TYPE_CHECKING:
    from loopml.store.metadata import MetadataStore
    from loopml.store.workspace import Workspace

__all__ = ["HEARTBEAT_TIMEOUT_MS", "SqlTrackingStore", "now_ms"]

# A running run whose heartbeat is older than this is crashed (the writer beats every few s).
HEARTBEAT_TIMEOUT_MS = 60_000


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SqlTrackingStore(_RunWrites, _RunReads):
    """Runs in the metadata store's tables.

    ``SqlTrackingStore(metadata)`` works through that :class:`MetadataStore`;
    ``SqlTrackingStore(workspace=ws)`` through ``ws.sql`` (the standard library's ``sqlite3`` on
    a SQLite workspace), opening the SQLAlchemy store only for what needs it (search).
    """

    def __init__(
        self, metadata: MetadataStore | None = None, *, workspace: Workspace | None = None
    ) -> None:
        if (metadata is None) == (workspace is None):
            raise TypeError("SqlTrackingStore needs a metadata store or a workspace (one of them)")
        self._metadata = metadata
        self._workspace = workspace
        self._alchemy: AlchemyDatabase | None = None
        self._experiment_ids: dict[str, str] = {}

    @property
    def metadata(self) -> MetadataStore:
        """The SQLAlchemy metadata store (opened on first use for a workspace's store)."""
        if self._metadata is not None:
            return self._metadata
        assert self._workspace is not None
        return self._workspace.metadata

    @property
    def db(self) -> SqlDatabase:
        """Where this store's statements run (see :mod:`loopml.store.metadata.plainsql`)."""
        if self._workspace is not None:
            return self._workspace.sql
        if self._alchemy is None:
            assert self._metadata is not None
            self._alchemy = AlchemyDatabase(self._metadata)
        return self._alchemy

    # -- experiments and runs ----------------------------------------------------------------

    def experiment_id(self, name: str, *, create: bool = True) -> str:
        """The id of experiment ``name``, created on first use (ids never change: memoised)."""
        known = self._experiment_ids.get(name)
        if known is not None:
            return known
        ident = self._experiment_id(name, create=create)
        self._experiment_ids[name] = ident
        return ident

    def _experiment_id(self, name: str, *, create: bool) -> str:
        query = "SELECT id FROM experiments WHERE name = :name"
        found = self.db.read(lambda sql: sql.rows(query, {"name": name}))
        if found:
            return str(found[0][0])
        if not create:
            raise TrackingError(f"no experiment named {name!r}; `loopml runs ls` lists runs")

        def write(sql: Sql) -> str:
            again = sql.rows(query, {"name": name})
            if again:
                return str(again[0][0])
            ident = new_id()
            try:
                sql.run(
                    "INSERT INTO experiments (id, name, created_at) VALUES (:id, :name, :at)",
                    {"id": ident, "name": name, "at": now_ms()},
                )
            except Exception as exc:
                if not is_unique_violation(exc):
                    raise
                # Another process created it since the check (PostgreSQL does not serialize
                # writers as SQLite does): the retry finds it.
                raise RetryableConflict(f"experiment {name!r} created concurrently") from None
            return ident

        return self.db.write(write)

    def create_run(
        self,
        *,
        experiment: str,
        name: str,
        parent_run_id: str | None,
        user: str,
        host: str,
        pid: int,
        tags: dict[str, str],
    ) -> RunInfo:
        """Start a run in state ``running``."""
        run = NewRun(
            id=new_id(),
            experiment_id=self.experiment_id(experiment),
            name=name,
            status=RunStatus.RUNNING,
            start_time=now_ms(),
            end_time=None,
            parent_run_id=parent_run_id,
            user=user,
            host=host,
            pid=pid,
            tags=dict(tags),
        )
        self.db.write(lambda sql: self.insert_runs_tx(sql, [run]))
        return RunInfo(
            run.id,
            experiment,
            name,
            RunStatus.RUNNING,
            run.start_time,
            None,
            parent_run_id,
            user,
            host,
            pid,
            run.start_time,
            tags=dict(tags),
        )

    def heartbeat(self, run_ids: Sequence[str]) -> None:
        """Mark runs alive."""
        if not run_ids:
            return
        beat = now_ms()

        def write(sql: Sql) -> None:
            for chunk in _chunks(list(run_ids)):
                ids, params = in_list("r", chunk)
                sql.run(
                    f"UPDATE runs SET heartbeat_at = :beat WHERE id IN ({ids}) "
                    "AND status = :running",
                    {"beat": beat, "running": RunStatus.RUNNING.value, **params},
                )

        self.db.write(write)

    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> None:
        """End a run (or mark it crashed)."""
        self.db.write(
            lambda sql: self.set_status_tx(
                sql, run_id, status, error_type=error_type, error_message=error_message
            )
        )

    def set_status_tx(
        self,
        sql: Sql,
        run_id: str,
        status: RunStatus,
        *,
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> None:
        """:meth:`set_status` in the caller's transaction."""
        now = now_ms()
        sql.run(
            "UPDATE runs SET status = :status, end_time = :end_time, error_type = :error_type, "
            "error_message = :error_message, heartbeat_at = :beat WHERE id = :id",
            {
                "id": run_id,
                "status": status.value,
                "end_time": None if status is RunStatus.RUNNING else now,
                "error_type": error_type,
                "error_message": error_message,
                "beat": now,
            },
        )

    def set_manifest(self, run_id: str, digest: str, environment_digest: str) -> None:
        """Point the run at its manifest object and the environment object it names."""
        self.db.write(
            lambda sql: sql.run(
                "UPDATE runs SET manifest_hash = :digest, environment_hash = :environment "
                "WHERE id = :id",
                {"id": run_id, "digest": digest, "environment": environment_digest},
            )
        )

    def share_manifest(self, source_run_id: str, run_ids: Sequence[str]) -> None:
        """Point ``run_ids`` at the manifest and environment of ``source_run_id`` (one write)."""
        if not run_ids:
            return

        def write(sql: Sql) -> None:
            found = sql.rows(
                "SELECT manifest_hash, environment_hash FROM runs WHERE id = :id",
                {"id": source_run_id},
            )
            if not found or found[0][0] is None:
                return
            for chunk in _chunks(list(run_ids)):
                ids, params = in_list("r", chunk)
                sql.run(
                    "UPDATE runs SET manifest_hash = :digest, environment_hash = :environment "
                    f"WHERE id IN ({ids})",
                    {"digest": found[0][0], "environment": found[0][1], **params},
                )

        self.db.write(write)

    # -- housekeeping ------------------------------------------------------------------------

    def reap_crashed(self, run_ids: Sequence[str] | None = None) -> list[str]:
        """Mark crashed the running runs whose heartbeat stopped or whose process is gone.

        A process on this host is checked directly (a ``kill -9`` is noticed at once); a run
        from another host is crashed only when its heartbeat is older than the timeout.
        """
        host = socket.gethostname()
        now = now_ms()

        def read(sql: Sql) -> list[tuple[Any, ...]]:
            query = "SELECT id, host, pid, heartbeat_at FROM runs WHERE status = :running"
            base = {"running": RunStatus.RUNNING.value}
            if run_ids is None:
                return sql.rows(query, base)
            found: list[tuple[Any, ...]] = []
            for chunk in _chunks(list(run_ids)):
                ids, params = in_list("r", chunk)
                found += sql.rows(f"{query} AND id IN ({ids})", {**base, **params})
            return found

        candidates = self.db.read(read)
        dead = [
            str(ident)
            for ident, run_host, pid, beat in candidates
            if now - beat > HEARTBEAT_TIMEOUT_MS
            or (run_host == host and pid != os.getpid() and not _pid_alive(pid))
        ]
        if not dead:
            return []

        def write(sql: Sql) -> None:
            for chunk in _chunks(dead):
                ids, params = in_list("r", chunk)
                sql.run(
                    "UPDATE runs SET status = :crashed, end_time = heartbeat_at, "
                    "error_message = :message "
                    f"WHERE id IN ({ids}) AND status = :running",
                    {
                        "crashed": RunStatus.CRASHED.value,
                        "running": RunStatus.RUNNING.value,
                        "message": "the run's process stopped without ending the run",
                        **params,
                    },
                )

        self.db.write(write)
        return dead

    def set_deleted(self, run_ids: Sequence[str], deleted: bool) -> int:
        """Soft-delete (or restore) runs; returns how many changed."""
        stamp = now_ms() if deleted else None

        def write(sql: Sql) -> int:
            changed = 0
            for chunk in _chunks(list(run_ids)):
                ids, params = in_list("r", chunk)
                changed += sql.run(
                    f"UPDATE runs SET deleted_at = :stamp WHERE id IN ({ids})",
                    {"stamp": stamp, **params},
                )
            return changed

        return self.db.write(write)
