"""The write side of :class:`~loopml.tracking.sql_store.SqlTrackingStore`: what runs record.

:class:`_RunWrites` holds the methods that record a run's contents: whole new runs in one batch,
params, metric points (and each key's latest point) and tags, artifacts and dataset inputs. It is
separate from :mod:`loopml.tracking.sql_store`, which keeps construction, experiments and the run
lifecycle (create, heartbeat, status, manifest, crash reaping, deletion), and from
:mod:`loopml.tracking.run_queries`, which holds the reads; ``SqlTrackingStore`` inherits this mixin
and stays the class users import. The ``*_tx`` methods write inside a transaction the caller holds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from loopml.store.metadata.plainsql import Sql, in_list
from loopml.tracking.model import ArtifactRecord, InputRecord, Metric, NewRun
from loopml.tracking.run_queries import _chunks

if TYPE_CHECKING:
    from loopml.store.metadata.plainsql import SqlDatabase

__all__ = ["now_ms"]

_INSERT_RUN: Final = (
    "INSERT INTO runs (id, experiment_id, name, status, start_time, end_time, parent_run_id, "
    '"user", host, pid, heartbeat_at) VALUES (:id, :experiment_id, :name, :status, '
    ":start_time, :end_time, :parent_run_id, :user, :host, :pid, :heartbeat_at)"
)
_INSERT_TAG: Final = 'INSERT INTO run_tags (run_id, "key", "value") VALUES (:run_id, :key, :value)'
_INSERT_PARAM: Final = (
    'INSERT INTO run_params (run_id, "key", "value") VALUES (:run_id, :key, :value)'
)
_INSERT_METRIC: Final = (
    'INSERT INTO run_metrics (run_id, "key", step, "timestamp", "value") '
    "VALUES (:run_id, :key, :step, :timestamp, :value)"
)
_INSERT_LATEST: Final = (
    'INSERT INTO latest_metrics (run_id, "key", step, "timestamp", "value") '
    "VALUES (:run_id, :key, :step, :timestamp, :value)"
)
_INSERT_INPUT: Final = (
    "INSERT INTO run_inputs (run_id, dataset, version, hash) "
    "VALUES (:run_id, :dataset, :version, :hash)"
)


def now_ms() -> int:
    """Epoch milliseconds."""
    return time.time_ns() // 1_000_000


def _stored(value: float) -> float | None:
    # SQLite cannot store NaN (it becomes NULL); store NULL for NaN on every backend alike.
    return None if math.isnan(value) else value


def _latest_of(points: Iterable[Metric]) -> dict[str, Metric]:
    """The latest point of each key (highest step, then timestamp; ties go to the later)."""
    latest: dict[str, Metric] = {}
    for point in points:
        seen = latest.get(point.key)
        if seen is None or (point.step, point.timestamp) >= (seen.step, seen.timestamp):
            latest[point.key] = point
    return latest


def _metric_row(run_id: str, point: Metric) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "key": point.key,
        "step": point.step,
        "timestamp": point.timestamp,
        "value": _stored(point.value),
    }


class _RunWrites:
    """The writes of a run's contents in :class:`~loopml.tracking.sql_store.SqlTrackingStore`."""

    if TYPE_CHECKING:
        # Given by SqlTrackingStore, the class this is mixed into.
        @property
        def db(self) -> SqlDatabase: ...

    def insert_runs_tx(self, sql: Sql, new_runs: Sequence[NewRun]) -> None:
        """Write whole new runs (row, tags, params, metrics, inputs) in the caller's transaction.

        A run that is not ``running`` is written with its end time as its last heartbeat, as
        :meth:`set_status` leaves an ended run.
        """
        if not new_runs:
            return
        sql.run_many(
            _INSERT_RUN,
            [
                {
                    "id": run.id,
                    "experiment_id": run.experiment_id,
                    "name": run.name,
                    "status": run.status.value,
                    "start_time": run.start_time,
                    "end_time": run.end_time,
                    "parent_run_id": run.parent_run_id,
                    "user": run.user,
                    "host": run.host,
                    "pid": run.pid,
                    "heartbeat_at": run.end_time if run.end_time is not None else run.start_time,
                }
                for run in new_runs
            ],
        )
        sql.run_many(
            _INSERT_TAG,
            [
                {"run_id": run.id, "key": key, "value": value}
                for run in new_runs
                for key, value in run.tags.items()
            ],
        )
        sql.run_many(
            _INSERT_PARAM,
            [
                {"run_id": run.id, "key": key, "value": value}
                for run in new_runs
                for key, value in run.params.items()
            ],
        )
        sql.run_many(
            _INSERT_METRIC,
            [_metric_row(run.id, point) for run in new_runs for point in run.metrics],
        )
        sql.run_many(
            _INSERT_LATEST,
            [
                _metric_row(run.id, point)
                for run in new_runs
                for point in _latest_of(run.metrics).values()
            ],
        )
        sql.run_many(
            _INSERT_INPUT,
            [
                {"run_id": run.id, "dataset": i.dataset, "version": i.version, "hash": i.hash}
                for run in new_runs
                for i in {(i.dataset, i.version): i for i in run.inputs}.values()
            ],
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
        self.db.write(
            lambda sql: self.log_batch_tx(sql, run_id, params=params, metrics=metrics, tags=tags)
        )

    def log_batch_tx(
        self,
        sql: Sql,
        run_id: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        metrics: Sequence[Metric] = (),
        tags: Sequence[tuple[str, str]] = (),
    ) -> None:
        """:meth:`log_batch` in the caller's transaction."""
        if params:
            self._upsert_kv(sql, "run_params", run_id, params)
        if tags:
            self._upsert_kv(sql, "run_tags", run_id, tags)
        if metrics:
            sql.run_many(_INSERT_METRIC, [_metric_row(run_id, m) for m in metrics])
            self._update_latest(sql, run_id, list(_latest_of(metrics).values()))

    def _upsert_kv(
        self, sql: Sql, table: str, run_id: str, items: Sequence[tuple[str, str]]
    ) -> None:
        final = dict(items)
        for chunk in _chunks(list(final)):
            keys, params = in_list("k", chunk)
            sql.run(
                f'DELETE FROM {table} WHERE run_id = :run_id AND "key" IN ({keys})',
                {"run_id": run_id, **params},
            )
        sql.run_many(
            f'INSERT INTO {table} (run_id, "key", "value") VALUES (:run_id, :key, :value)',
            [{"run_id": run_id, "key": k, "value": v} for k, v in final.items()],
        )

    def _update_latest(self, sql: Sql, run_id: str, points: list[Metric]) -> None:
        current: dict[str, tuple[int, int]] = {}
        for chunk in _chunks([p.key for p in points]):
            keys, params = in_list("k", chunk)
            for key, step, stamp in sql.rows(
                'SELECT "key", step, "timestamp" FROM latest_metrics '
                f'WHERE run_id = :run_id AND "key" IN ({keys})',
                {"run_id": run_id, **params},
            ):
                current[key] = (step, stamp)
        newer = [
            p for p in points if p.key not in current or (p.step, p.timestamp) >= current[p.key]
        ]
        stale = [p.key for p in newer if p.key in current]
        for chunk in _chunks(stale):
            keys, params = in_list("k", chunk)
            sql.run(
                f'DELETE FROM latest_metrics WHERE run_id = :run_id AND "key" IN ({keys})',
                {"run_id": run_id, **params},
            )
        sql.run_many(_INSERT_LATEST, [_metric_row(run_id, p) for p in newer])

    def log_artifacts(self, run_id: str, artifacts: Sequence[ArtifactRecord]) -> None:
        """Record artifacts (replacing any at the same path)."""
        if not artifacts:
            return
        created = now_ms()

        def write(sql: Sql) -> None:
            final = {a.path: a for a in artifacts}
            for chunk in _chunks(list(final)):
                paths, params = in_list("p", chunk)
                sql.run(
                    f"DELETE FROM run_artifacts WHERE run_id = :run_id AND path IN ({paths})",
                    {"run_id": run_id, **params},
                )
            sql.run_many(
                "INSERT INTO run_artifacts (run_id, path, digest, size, kind, created_at) "
                "VALUES (:run_id, :path, :digest, :size, :kind, :created_at)",
                [
                    {
                        "run_id": run_id,
                        "path": a.path,
                        "digest": a.digest,
                        "size": a.size,
                        "kind": a.kind,
                        "created_at": created,
                    }
                    for a in final.values()
                ],
            )

        self.db.write(write)

    def log_inputs(self, run_id: str, inputs: Sequence[InputRecord]) -> None:
        """Record dataset versions the run read (each once)."""
        if not inputs:
            return
        self.db.write(lambda sql: self.log_inputs_tx(sql, run_id, inputs))

    def log_inputs_tx(self, sql: Sql, run_id: str, inputs: Sequence[InputRecord]) -> None:
        """:meth:`log_inputs` in the caller's transaction."""
        if not inputs:
            return
        existing = {
            (dataset, version)
            for dataset, version in sql.rows(
                "SELECT dataset, version FROM run_inputs WHERE run_id = :run_id",
                {"run_id": run_id},
            )
        }
        sql.run_many(
            _INSERT_INPUT,
            [
                {"run_id": run_id, "dataset": i.dataset, "version": i.version, "hash": i.hash}
                for i in {(i.dataset, i.version): i for i in inputs}.values()
                if (i.dataset, i.version) not in existing
            ],
        )
