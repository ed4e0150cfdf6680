"""The tracking store on the metadata database (SQLite or PostgreSQL), in plain SQL.

Every statement goes through :class:`~loopml.store.metadata.plainsql.SqlDatabase`: on a SQLite
workspace the standard library's ``sqlite3`` (a run, or a cached pipeline, never imports
SQLAlchemy), elsewhere :class:`MetadataStore`. The ``*_tx`` methods write inside a transaction the
caller holds, so that a pipeline records a step's run and its step record in one commit.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from loopml.ids import new_id
from loopml.store.metadata.errors import RetryableConflict
from loopml.store.metadata.plainsql import (
    AlchemyDatabase,
    Sql,
    SqlDatabase,
    in_list,
    is_unique_violation,
)
from loopml.tracking.errors import RunNotFoundError, TrackingError
from loopml.tracking.model import (
    ArtifactRecord,
    InputRecord,
    Metric,
    NewRun,
    RunInfo,
    RunStatus,
)

if TYPE_CHECKING:
    from loopml.store.metadata import MetadataStore
    from loopml.store.workspace import Workspace

__all__ = ["HEARTBEAT_TIMEOUT_MS", "SqlTrackingStore", "now_ms"]

# A running run whose heartbeat is older than this is crashed (the writer beats every few s).
HEARTBEAT_TIMEOUT_MS = 60_000
_CHUNK = 500
# Past this many ids, reading every run id once is cheaper than two lookups per id.
_NEIGHBOUR_LOOKUPS = 64

# The columns of ``runs`` read into a RunInfo, in order (``e.name`` is the experiment's name).
_RUN_COLUMNS: Final = (
    'r.id, e.name, r.name, r.status, r.start_time, r.end_time, r.parent_run_id, r."user", '
    "r.host, r.pid, r.heartbeat_at, r.manifest_hash, r.error_type, r.error_message, "
    "r.deleted_at"
)
_RUN_FROM: Final = "FROM runs AS r JOIN experiments AS e ON e.id = r.experiment_id"

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


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


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


class SqlTrackingStore:
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

    # -- reading -------------------------------------------------------------------------------

    def resolve_id(self, run_id_or_prefix: str) -> str:
        """The full id of the one run whose id starts with the given text."""
        text = run_id_or_prefix.strip().lower()
        if not text or any(c not in "0123456789abcdef" for c in text):
            raise RunNotFoundError(
                f"{run_id_or_prefix!r} is not a run id; `loopml runs ls` lists them"
            )
        found = self.db.read(
            lambda sql: sql.rows(
                "SELECT id FROM runs WHERE id LIKE :prefix LIMIT 2", {"prefix": f"{text}%"}
            )
        )
        if not found:
            raise RunNotFoundError(f"no run with id {text}; `loopml runs ls` lists them")
        if len(found) > 1:
            raise RunNotFoundError(f"run id prefix {text} is ambiguous; give more characters")
        return str(found[0][0])

    def id_prefixes(self, run_ids: Iterable[str], minimum: int = 8) -> dict[str, str]:
        """The shortest prefix (at least ``minimum`` characters) of each id no other run shares.

        Only each id's neighbours in sort order can share its longest prefix, so two indexed
        lookups per id answer it, however many runs there are.
        """
        from loopml.ids import shortest_unique_prefixes

        wanted = list(dict.fromkeys(run_ids))
        if not wanted:
            return {}

        def read(sql: Sql) -> set[str]:
            if len(wanted) > _NEIGHBOUR_LOOKUPS:
                return {str(ident) for (ident,) in sql.rows("SELECT id FROM runs")}
            around: set[str] = set()
            for ident in wanted:
                for query in (
                    "SELECT MAX(id) FROM runs WHERE id < :id",
                    "SELECT MIN(id) FROM runs WHERE id > :id",
                ):
                    (neighbour,) = sql.rows(query, {"id": ident})[0]
                    if neighbour is not None:
                        around.add(str(neighbour))
            return around

        prefixes = shortest_unique_prefixes([*self.db.read(read), *wanted], minimum)
        return {ident: prefixes[ident] for ident in wanted}

    def names_and_statuses(self, run_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """``id -> (name, status)`` of the given runs that exist."""

        def read(sql: Sql) -> dict[str, tuple[str, str]]:
            found: dict[str, tuple[str, str]] = {}
            for chunk in _chunks(list(run_ids)):
                ids, params = in_list("r", chunk)
                for ident, name, status in sql.rows(
                    f"SELECT id, name, status FROM runs WHERE id IN ({ids})", params
                ):
                    found[str(ident)] = (str(name), str(status))
            return found

        return self.db.read(read)

    def get_run(self, run_id_or_prefix: str) -> RunInfo:
        """A run with its params, latest metrics, tags, artifacts and inputs."""
        run_id = self.resolve_id(run_id_or_prefix)
        self.reap_crashed([run_id])

        def read(sql: Sql) -> RunInfo:
            row = sql.rows(f"SELECT {_RUN_COLUMNS} {_RUN_FROM} WHERE r.id = :id", {"id": run_id})
            if not row:
                raise RunNotFoundError(f"no run with id {run_id}; `loopml runs ls` lists them")
            by_run = {"id": run_id}
            params = dict(
                sql.rows('SELECT "key", "value" FROM run_params WHERE run_id = :id', by_run)
            )
            metrics = {
                str(key): _loaded(value)
                for key, value in sql.rows(
                    'SELECT "key", "value" FROM latest_metrics WHERE run_id = :id', by_run
                )
            }
            tags = dict(sql.rows('SELECT "key", "value" FROM run_tags WHERE run_id = :id', by_run))
            artifacts = tuple(
                ArtifactRecord(*r)
                for r in sql.rows(
                    "SELECT path, digest, size, kind FROM run_artifacts WHERE run_id = :id "
                    "ORDER BY path",
                    by_run,
                )
            )
            inputs = tuple(
                InputRecord(*r)
                for r in sql.rows(
                    "SELECT dataset, version, hash FROM run_inputs WHERE run_id = :id "
                    "ORDER BY dataset, version",
                    by_run,
                )
            )
            return _run_info(row[0], params, metrics, tags, artifacts, inputs)

        return self.db.read(read)

    def run_header(self, run_id: str) -> RunInfo:
        """The run's own row (no params, metrics, tags or artifacts): one query."""
        found = self.db.read(
            lambda sql: sql.rows(
                f"SELECT {_RUN_COLUMNS} {_RUN_FROM} WHERE r.id = :id", {"id": run_id}
            )
        )
        if not found:
            raise RunNotFoundError(f"no run with id {run_id}; `loopml runs ls` lists them")
        return _run_info(found[0], {}, {}, {}, (), ())

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of one metric, in step order (then time, then insertion)."""
        rows = self.db.read(
            lambda sql: sql.rows(
                'SELECT step, "timestamp", "value" FROM run_metrics '
                'WHERE run_id = :run_id AND "key" = :key ORDER BY step, "timestamp"',
                {"run_id": run_id, "key": key},
            )
        )
        return [Metric(key, _loaded(value), step, stamp) for step, stamp, value in rows]

    def latest_metrics(self, run_id: str) -> dict[str, float]:
        """The latest value of each of the run's metrics (one query)."""
        return self.latest_metrics_of([run_id]).get(run_id, {})

    def latest_metrics_of(self, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """:meth:`latest_metrics` of many runs at once (runs without metrics are left out)."""
        if not run_ids:
            return {}
        return self.db.read(lambda sql: self.latest_metrics_tx(sql, run_ids))

    def latest_metrics_tx(self, sql: Sql, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """:meth:`latest_metrics_of` in the caller's transaction."""
        found: dict[str, dict[str, float]] = {}
        for chunk in _chunks(list(dict.fromkeys(run_ids))):
            ids, params = in_list("r", chunk)
            for run_id, key, value in sql.rows(
                f'SELECT run_id, "key", "value" FROM latest_metrics WHERE run_id IN ({ids})',
                params,
            ):
                found.setdefault(str(run_id), {})[str(key)] = _loaded(value)
        return found

    def metric_keys(self, run_id: str) -> list[str]:
        """Names of the run's metrics."""
        rows = self.db.read(
            lambda sql: sql.rows(
                'SELECT "key" FROM latest_metrics WHERE run_id = :run_id ORDER BY "key"',
                {"run_id": run_id},
            )
        )
        return [str(key) for (key,) in rows]

    def children(self, run_id: str) -> list[str]:
        """Ids of the run's child runs, oldest first."""
        rows = self.db.read(
            lambda sql: sql.rows(
                "SELECT id FROM runs WHERE parent_run_id = :run_id ORDER BY id",
                {"run_id": run_id},
            )
        )
        return [str(ident) for (ident,) in rows]

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

    def count_points(self, run_id: str, key: str | None = None) -> int:
        """How many metric points a run has (of one key, or all)."""
        query = "SELECT COUNT(*) FROM run_metrics WHERE run_id = :run_id"
        params: dict[str, Any] = {"run_id": run_id}
        if key is not None:
            query += ' AND "key" = :key'
            params["key"] = key
        return int(self.db.read(lambda sql: sql.rows(query, params))[0][0])


def _run_info(
    row: Sequence[Any],
    params: dict[str, str],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: tuple[ArtifactRecord, ...],
    inputs: tuple[InputRecord, ...],
) -> RunInfo:
    (
        ident,
        experiment,
        name,
        status,
        start_time,
        end_time,
        parent_run_id,
        user,
        host,
        pid,
        heartbeat_at,
        manifest_hash,
        error_type,
        error_message,
        deleted_at,
    ) = row
    return RunInfo(
        id=ident,
        experiment=experiment,
        name=name,
        status=RunStatus(status),
        start_time=start_time,
        end_time=end_time,
        parent_run_id=parent_run_id,
        user=user,
        host=host,
        pid=pid,
        heartbeat_at=heartbeat_at,
        manifest_hash=manifest_hash,
        error_type=error_type,
        error_message=error_message,
        deleted=deleted_at is not None,
        params=params,
        metrics=metrics,
        tags=tags,
        artifacts=artifacts,
        inputs=inputs,
    )
