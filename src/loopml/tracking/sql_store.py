"""The tracking store on the metadata database (SQLite or PostgreSQL), through SQLAlchemy Core."""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from loopml.ids import new_id
from loopml.store.metadata import MetadataStore, RetryableConflict
from loopml.store.metadata.schema import (
    experiments,
    latest_metrics,
    run_artifacts,
    run_inputs,
    run_metrics,
    run_params,
    run_tags,
    runs,
)
from loopml.tracking.errors import RunNotFoundError, TrackingError
from loopml.tracking.model import ArtifactRecord, InputRecord, Metric, RunInfo, RunStatus

__all__ = ["HEARTBEAT_TIMEOUT_MS", "SqlTrackingStore", "now_ms"]

# A running run whose heartbeat is older than this is crashed (the writer beats every few s).
HEARTBEAT_TIMEOUT_MS = 60_000
_CHUNK = 500


def now_ms() -> int:
    """Epoch milliseconds."""
    return time.time_ns() // 1_000_000


def _stored(value: float) -> float | None:
    # SQLite cannot store NaN (it becomes NULL); store NULL for NaN on every backend alike.
    return None if math.isnan(value) else value


def _loaded(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SqlTrackingStore:
    """Runs in the metadata store's tables."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata
        self._experiment_ids: dict[str, str] = {}

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
        with self.metadata.read() as conn:
            found = conn.execute(select(experiments.c.id).where(experiments.c.name == name)).first()
        if found is not None:
            return str(found.id)
        if not create:
            raise TrackingError(f"no experiment named {name!r}; `loopml runs ls` lists runs")

        def write(conn: Connection) -> str:
            again = conn.execute(select(experiments.c.id).where(experiments.c.name == name)).first()
            if again is not None:
                return str(again.id)
            ident = new_id()
            try:
                conn.execute(insert(experiments).values(id=ident, name=name, created_at=now_ms()))
            except IntegrityError:
                # Another process created it since the check (PostgreSQL does not serialize
                # writers as SQLite does): the retry finds it.
                raise RetryableConflict(f"experiment {name!r} created concurrently") from None
            return ident

        return self.metadata.run_write(write)

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
        experiment_id = self.experiment_id(experiment)
        ident = new_id()
        started = now_ms()

        def write(conn: Connection) -> None:
            conn.execute(
                insert(runs).values(
                    id=ident,
                    experiment_id=experiment_id,
                    name=name,
                    status=RunStatus.RUNNING.value,
                    start_time=started,
                    parent_run_id=parent_run_id,
                    user=user,
                    host=host,
                    pid=pid,
                    heartbeat_at=started,
                )
            )
            if tags:
                conn.execute(
                    insert(run_tags),
                    [{"run_id": ident, "key": k, "value": v} for k, v in tags.items()],
                )

        self.metadata.run_write(write)
        return RunInfo(
            ident,
            experiment,
            name,
            RunStatus.RUNNING,
            started,
            None,
            parent_run_id,
            user,
            host,
            pid,
            started,
            tags=dict(tags),
        )

    def log_batch(
        self,
        run_id: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        metrics: Sequence[Metric] = (),
        tags: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Params, metric points and tags in one transaction."""
        if not (params or metrics or tags):
            return
        latest: dict[str, Metric] = {}
        for point in metrics:
            seen = latest.get(point.key)
            if seen is None or (point.step, point.timestamp) >= (seen.step, seen.timestamp):
                latest[point.key] = point

        def write(conn: Connection) -> None:
            if params:
                self._upsert_kv(conn, run_params, run_id, params)
            if tags:
                self._upsert_kv(conn, run_tags, run_id, tags)
            if metrics:
                conn.execute(
                    insert(run_metrics),
                    [
                        {
                            "run_id": run_id,
                            "key": m.key,
                            "step": m.step,
                            "timestamp": m.timestamp,
                            "value": _stored(m.value),
                        }
                        for m in metrics
                    ],
                )
                self._update_latest(conn, run_id, list(latest.values()))

        self.metadata.run_write(write)

    def _upsert_kv(
        self, conn: Connection, table: Any, run_id: str, items: Sequence[tuple[str, str]]
    ) -> None:
        final = dict(items)
        keys = list(final)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            conn.execute(delete(table).where(table.c.run_id == run_id, table.c.key.in_(chunk)))
        conn.execute(
            insert(table), [{"run_id": run_id, "key": k, "value": v} for k, v in final.items()]
        )

    def _update_latest(self, conn: Connection, run_id: str, points: list[Metric]) -> None:
        keys = [p.key for p in points]
        current: dict[str, tuple[int, int]] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            for row in conn.execute(
                select(
                    latest_metrics.c.key, latest_metrics.c.step, latest_metrics.c.timestamp
                ).where(latest_metrics.c.run_id == run_id, latest_metrics.c.key.in_(chunk))
            ):
                current[row.key] = (row.step, row.timestamp)
        newer = [
            p for p in points if p.key not in current or (p.step, p.timestamp) >= current[p.key]
        ]
        stale = [p.key for p in newer if p.key in current]
        if stale:
            conn.execute(
                delete(latest_metrics).where(
                    latest_metrics.c.run_id == run_id, latest_metrics.c.key.in_(stale)
                )
            )
        if newer:
            conn.execute(
                insert(latest_metrics),
                [
                    {
                        "run_id": run_id,
                        "key": p.key,
                        "step": p.step,
                        "timestamp": p.timestamp,
                        "value": _stored(p.value),
                    }
                    for p in newer
                ],
            )

    def heartbeat(self, run_ids: Sequence[str]) -> None:
        """Mark runs alive."""
        if not run_ids:
            return
        beat = now_ms()
        self.metadata.run_write(
            lambda conn: conn.execute(
                update(runs)
                .where(runs.c.id.in_(list(run_ids)), runs.c.status == RunStatus.RUNNING.value)
                .values(heartbeat_at=beat)
            )
        )

    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> None:
        """End a run (or mark it crashed)."""
        ended = None if status is RunStatus.RUNNING else now_ms()
        self.metadata.run_write(
            lambda conn: conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(
                    status=status.value,
                    end_time=ended,
                    error_type=error_type,
                    error_message=error_message,
                    heartbeat_at=now_ms(),
                )
            )
        )

    def set_manifest(self, run_id: str, digest: str, environment_digest: str) -> None:
        """Point the run at its manifest object and the environment object it names."""
        self.metadata.run_write(
            lambda conn: conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(manifest_hash=digest, environment_hash=environment_digest)
            )
        )

    def share_manifest(self, source_run_id: str, run_ids: Sequence[str]) -> None:
        """Point ``run_ids`` at the manifest and environment of ``source_run_id`` (one write)."""
        if not run_ids:
            return

        def write(conn: Connection) -> None:
            row = conn.execute(
                select(runs.c.manifest_hash, runs.c.environment_hash).where(
                    runs.c.id == source_run_id
                )
            ).first()
            if row is None or row.manifest_hash is None:
                return
            conn.execute(
                update(runs)
                .where(runs.c.id.in_(list(run_ids)))
                .values(manifest_hash=row.manifest_hash, environment_hash=row.environment_hash)
            )

        self.metadata.run_write(write)

    def log_artifacts(self, run_id: str, artifacts: Sequence[ArtifactRecord]) -> None:
        """Record artifacts (replacing any at the same path)."""
        if not artifacts:
            return
        created = now_ms()

        def write(conn: Connection) -> None:
            paths = [a.path for a in artifacts]
            conn.execute(
                delete(run_artifacts).where(
                    run_artifacts.c.run_id == run_id, run_artifacts.c.path.in_(paths)
                )
            )
            conn.execute(
                insert(run_artifacts),
                [
                    {
                        "run_id": run_id,
                        "path": a.path,
                        "digest": a.digest,
                        "size": a.size,
                        "kind": a.kind,
                        "created_at": created,
                    }
                    for a in artifacts
                ],
            )

        self.metadata.run_write(write)

    def log_inputs(self, run_id: str, inputs: Sequence[InputRecord]) -> None:
        """Record dataset versions the run read (each once)."""
        if not inputs:
            return

        def write(conn: Connection) -> None:
            existing = {
                (r.dataset, r.version)
                for r in conn.execute(
                    select(run_inputs.c.dataset, run_inputs.c.version).where(
                        run_inputs.c.run_id == run_id
                    )
                )
            }
            rows = [
                {"run_id": run_id, "dataset": i.dataset, "version": i.version, "hash": i.hash}
                for i in {(i.dataset, i.version): i for i in inputs}.values()
                if (i.dataset, i.version) not in existing
            ]
            if rows:
                conn.execute(insert(run_inputs), rows)

        self.metadata.run_write(write)

    # -- reading -------------------------------------------------------------------------------

    def resolve_id(self, run_id_or_prefix: str) -> str:
        """The full id of the one run whose id starts with the given text."""
        text = run_id_or_prefix.strip().lower()
        if not text or any(c not in "0123456789abcdef" for c in text):
            raise RunNotFoundError(
                f"{run_id_or_prefix!r} is not a run id; `loopml runs ls` lists them"
            )
        with self.metadata.read() as conn:
            found = conn.execute(select(runs.c.id).where(runs.c.id.like(f"{text}%")).limit(2)).all()
        if not found:
            raise RunNotFoundError(f"no run with id {text}; `loopml runs ls` lists them")
        if len(found) > 1:
            raise RunNotFoundError(f"run id prefix {text} is ambiguous; give more characters")
        return str(found[0].id)

    def get_run(self, run_id_or_prefix: str) -> RunInfo:
        """A run with its params, latest metrics, tags, artifacts and inputs."""
        run_id = self.resolve_id(run_id_or_prefix)
        self.reap_crashed([run_id])
        with self.metadata.read() as conn:
            row = conn.execute(
                select(runs, experiments.c.name.label("experiment"))
                .join(experiments, experiments.c.id == runs.c.experiment_id)
                .where(runs.c.id == run_id)
            ).one()
            params = dict(
                conn.execute(
                    select(run_params.c.key, run_params.c.value).where(
                        run_params.c.run_id == run_id
                    )
                ).all()
            )
            metrics = {
                key: _loaded(value)
                for key, value in conn.execute(
                    select(latest_metrics.c.key, latest_metrics.c.value).where(
                        latest_metrics.c.run_id == run_id
                    )
                )
            }
            tags = dict(
                conn.execute(
                    select(run_tags.c.key, run_tags.c.value).where(run_tags.c.run_id == run_id)
                ).all()
            )
            artifacts = tuple(
                ArtifactRecord(r.path, r.digest, r.size, r.kind)
                for r in conn.execute(
                    select(run_artifacts)
                    .where(run_artifacts.c.run_id == run_id)
                    .order_by(run_artifacts.c.path)
                )
            )
            inputs = tuple(
                InputRecord(r.dataset, r.version, r.hash)
                for r in conn.execute(
                    select(run_inputs)
                    .where(run_inputs.c.run_id == run_id)
                    .order_by(run_inputs.c.dataset, run_inputs.c.version)
                )
            )
        return _run_info(row, params, metrics, tags, artifacts, inputs)

    def run_header(self, run_id: str) -> RunInfo:
        """The run's own row (no params, metrics, tags or artifacts): one query."""
        with self.metadata.read() as conn:
            row = conn.execute(
                select(runs, experiments.c.name.label("experiment"))
                .join(experiments, experiments.c.id == runs.c.experiment_id)
                .where(runs.c.id == run_id)
            ).first()
        if row is None:
            raise RunNotFoundError(f"no run with id {run_id}; `loopml runs ls` lists them")
        return _run_info(row, {}, {}, {}, (), ())

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of one metric, in step order (then time, then insertion)."""
        with self.metadata.read() as conn:
            rows = conn.execute(
                select(run_metrics.c.step, run_metrics.c.timestamp, run_metrics.c.value)
                .where(run_metrics.c.run_id == run_id, run_metrics.c.key == key)
                .order_by(run_metrics.c.step, run_metrics.c.timestamp)
            ).all()
        return [Metric(key, _loaded(r.value), r.step, r.timestamp) for r in rows]

    def latest_metrics(self, run_id: str) -> dict[str, float]:
        """The latest value of each of the run's metrics (one query)."""
        with self.metadata.read() as conn:
            return {
                str(key): _loaded(value)
                for key, value in conn.execute(
                    select(latest_metrics.c.key, latest_metrics.c.value).where(
                        latest_metrics.c.run_id == run_id
                    )
                )
            }

    def metric_keys(self, run_id: str) -> list[str]:
        """Names of the run's metrics."""
        with self.metadata.read() as conn:
            return [
                str(k)
                for (k,) in conn.execute(
                    select(latest_metrics.c.key)
                    .where(latest_metrics.c.run_id == run_id)
                    .order_by(latest_metrics.c.key)
                )
            ]

    def children(self, run_id: str) -> list[str]:
        """Ids of the run's child runs, oldest first."""
        with self.metadata.read() as conn:
            return [
                str(r.id)
                for r in conn.execute(
                    select(runs.c.id).where(runs.c.parent_run_id == run_id).order_by(runs.c.id)
                )
            ]

    # -- housekeeping ------------------------------------------------------------------------

    def reap_crashed(self, run_ids: Sequence[str] | None = None) -> list[str]:
        """Mark crashed the running runs whose heartbeat stopped or whose process is gone.

        A process on this host is checked directly (a ``kill -9`` is noticed at once); a run
        from another host is crashed only when its heartbeat is older than the timeout.
        """
        host = socket.gethostname()
        now = now_ms()
        query = select(runs.c.id, runs.c.host, runs.c.pid, runs.c.heartbeat_at).where(
            runs.c.status == RunStatus.RUNNING.value
        )
        if run_ids is not None:
            query = query.where(runs.c.id.in_(list(run_ids)))
        with self.metadata.read() as conn:
            candidates = conn.execute(query).all()
        dead = [
            r.id
            for r in candidates
            if now - r.heartbeat_at > HEARTBEAT_TIMEOUT_MS
            or (r.host == host and r.pid != os.getpid() and not _pid_alive(r.pid))
        ]
        if not dead:
            return []

        def write(conn: Connection) -> None:
            conn.execute(
                update(runs)
                .where(runs.c.id.in_(dead), runs.c.status == RunStatus.RUNNING.value)
                .values(
                    status=RunStatus.CRASHED.value,
                    end_time=runs.c.heartbeat_at,
                    error_message="the run's process stopped without ending the run",
                )
            )

        self.metadata.run_write(write)
        return [str(d) for d in dead]

    def set_deleted(self, run_ids: Sequence[str], deleted: bool) -> int:
        """Soft-delete (or restore) runs; returns how many changed."""
        stamp = now_ms() if deleted else None
        result = self.metadata.run_write(
            lambda conn: conn.execute(
                update(runs).where(runs.c.id.in_(list(run_ids))).values(deleted_at=stamp)
            )
        )
        return int(result.rowcount)

    def count_points(self, run_id: str, key: str | None = None) -> int:
        """How many metric points a run has (of one key, or all)."""
        query = select(func.count()).select_from(run_metrics).where(run_metrics.c.run_id == run_id)
        if key is not None:
            query = query.where(run_metrics.c.key == key)
        with self.metadata.read() as conn:
            return int(conn.execute(query).scalar_one())


def _run_info(
    row: Any,
    params: dict[str, str],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: tuple[ArtifactRecord, ...],
    inputs: tuple[InputRecord, ...],
) -> RunInfo:
    return RunInfo(
        id=row.id,
        experiment=row.experiment,
        name=row.name,
        status=RunStatus(row.status),
        start_time=row.start_time,
        end_time=row.end_time,
        parent_run_id=row.parent_run_id,
        user=row.user,
        host=row.host,
        pid=row.pid,
        heartbeat_at=row.heartbeat_at,
        manifest_hash=row.manifest_hash,
        error_type=row.error_type,
        error_message=row.error_message,
        deleted=row.deleted_at is not None,
        params=params,
        metrics=metrics,
        tags=tags,
        artifacts=artifacts,
        inputs=inputs,
    )
