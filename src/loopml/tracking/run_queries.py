"""The read side of :class:`~loopml.tracking.sql_store.SqlTrackingStore`: queries over runs.

:class:`_RunReads` holds the store's read-only methods (resolving ids and prefixes, a run with its
params, metrics, tags, artifacts and inputs, metric histories and latest values, child runs, point
counts). It is separate from :mod:`loopml.tracking.sql_store`, which keeps construction and the run
lifecycle, and from :mod:`loopml.tracking.run_writes`, which records what runs log, so that each
module holds one concern; ``SqlTrackingStore`` inherits this mixin and stays the class users import.
It sits below both, so it also holds the helper they all use (:func:`_chunks`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from loopml.store.metadata.plainsql import Sql, in_list
from loopml.tracking.errors import RunNotFoundError
from loopml.tracking.model import ArtifactRecord, InputRecord, Metric, RunInfo, RunStatus

if TYPE_CHECKING:
    from loopml.store.metadata.plainsql import SqlDatabase

__all__: list[str] = []

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


def _loaded(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class _RunReads:
    """The read queries of :class:`~loopml.tracking.sql_store.SqlTrackingStore` (a mixin)."""

    if TYPE_CHECKING:
        # Given by SqlTrackingStore, the class this is mixed into.
        @property
        def db(self) -> SqlDatabase: ...

        def reap_crashed(self, run_ids: Sequence[str] | None = None) -> list[str]: ...

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
