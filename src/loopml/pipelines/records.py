"""Step runs, their outputs, the step cache and lineage edges in the metadata store.

Plain SQL through :class:`~loopml.store.metadata.plainsql.SqlDatabase` (the standard library's
``sqlite3`` on a SQLite workspace), so that a fully cached pipeline run never imports
SQLAlchemy. The ``*_tx`` methods write inside a transaction the caller holds: a step's record
and its tracking run are committed together.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from loopml.pipelines.model import OutputRecord, StepRecord
from loopml.store.metadata.plainsql import AlchemyDatabase, Sql, SqlDatabase, in_list

if TYPE_CHECKING:
    from loopml.store.metadata import MetadataStore

__all__ = ["FinishedStep", "OutputRecord", "StepRecord", "StepRecords"]

_CHUNK: Final = 500
_COLUMNS: Final = (
    "sr.id, sr.pipeline_run_id, sr.node, sr.step, sr.cache_key, sr.code_hash, sr.key_parts, "
    "sr.status, sr.started_at, sr.duration_ms, sr.attempts, sr.error"
)
_OUTPUTS: Final = "o.digest, o.materializer, o.type_name"
_INSERT_STEP_RUN: Final = (
    "INSERT INTO step_runs (id, pipeline_run_id, node, step, cache_key, code_hash, key_parts, "
    "status, started_at, duration_ms, attempts, error) VALUES (:id, :pipeline_run_id, :node, "
    ":step, :cache_key, :code_hash, :key_parts, :status, :started_at, :duration_ms, :attempts, "
    ":error)"
)
_INSERT_OUTPUT: Final = (
    'INSERT INTO step_outputs (step_run_id, "position", digest, materializer, type_name) '
    "VALUES (:step_run_id, :position, :digest, :materializer, :type_name)"
)
_INSERT_EDGE: Final = (
    "INSERT INTO lineage_edges (src_kind, src_id, dst_kind, dst_id, role) "
    "VALUES (:src_kind, :src_id, :dst_kind, :dst_id, :role)"
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[start : start + _CHUNK] for start in range(0, len(values), _CHUNK)]


@dataclass(frozen=True)
class FinishedStep:
    """A step run recorded whole, in one go: a step that came from the cache."""

    step_run_id: str
    pipeline_run_id: str
    node: str
    step: str
    cache_key: str
    code_hash: str
    key_parts: dict[str, Any]
    status: str
    started_at: int
    duration_ms: int
    attempts: int
    outputs: tuple[OutputRecord, ...]
    lineage: tuple[tuple[str, str, str], ...] = ()


class StepRecords:
    """Reads and writes pipeline records."""

    def __init__(self, database: SqlDatabase | MetadataStore) -> None:
        # A MetadataStore (SQLAlchemy) is accepted as it always was, and spoken to in plain SQL.
        self.db: SqlDatabase = (
            AlchemyDatabase(database) if hasattr(database, "run_write") else database  # type: ignore[arg-type]
        )

    # -- writing -------------------------------------------------------------------------------

    def start(
        self,
        *,
        step_run_id: str,
        pipeline_run_id: str,
        node: str,
        step: str,
        cache_key: str,
        code_hash: str,
        key_parts: dict[str, Any],
    ) -> None:
        """Record a step as running."""
        self.db.write(
            lambda sql: self.start_tx(
                sql,
                step_run_id=step_run_id,
                pipeline_run_id=pipeline_run_id,
                node=node,
                step=step,
                cache_key=cache_key,
                code_hash=code_hash,
                key_parts=key_parts,
            )
        )

    def start_tx(
        self,
        sql: Sql,
        *,
        step_run_id: str,
        pipeline_run_id: str,
        node: str,
        step: str,
        cache_key: str,
        code_hash: str,
        key_parts: dict[str, Any],
    ) -> None:
        """:meth:`start` in the caller's transaction."""
        sql.run(
            _INSERT_STEP_RUN,
            _step_row(
                step_run_id,
                pipeline_run_id,
                node,
                step,
                cache_key,
                code_hash,
                key_parts,
                status="running",
                started_at=_now_ms(),
                duration_ms=None,
                attempts=0,
            ),
        )

    def finish(
        self,
        step_run_id: str,
        *,
        status: str,
        duration_ms: int,
        attempts: int,
        outputs: list[OutputRecord],
        error: str | None = None,
        cache_key: str | None = None,
        step: str | None = None,
        lineage: list[tuple[str, str, str]] | None = None,
    ) -> None:
        """Record the outcome, the outputs, the cache entry (when given) and lineage edges."""
        self.db.write(
            lambda sql: self.finish_tx(
                sql,
                step_run_id,
                status=status,
                duration_ms=duration_ms,
                attempts=attempts,
                outputs=outputs,
                error=error,
                cache_key=cache_key,
                step=step,
                lineage=lineage,
            )
        )

    def finish_tx(
        self,
        sql: Sql,
        step_run_id: str,
        *,
        status: str,
        duration_ms: int,
        attempts: int,
        outputs: list[OutputRecord],
        error: str | None = None,
        cache_key: str | None = None,
        step: str | None = None,
        lineage: list[tuple[str, str, str]] | None = None,
    ) -> None:
        """:meth:`finish` in the caller's transaction."""
        sql.run(
            "UPDATE step_runs SET status = :status, duration_ms = :duration_ms, "
            "attempts = :attempts, error = :error WHERE id = :id",
            {
                "id": step_run_id,
                "status": status,
                "duration_ms": duration_ms,
                "attempts": attempts,
                "error": error,
            },
        )
        sql.run_many(_INSERT_OUTPUT, _output_rows(step_run_id, outputs))
        if cache_key is not None and step is not None:
            sql.run("DELETE FROM step_cache WHERE cache_key = :key", {"key": cache_key})
            sql.run(
                "INSERT INTO step_cache (cache_key, step, step_run_id, created_at) "
                "VALUES (:key, :step, :step_run_id, :created_at)",
                {
                    "key": cache_key,
                    "step": step,
                    "step_run_id": step_run_id,
                    "created_at": _now_ms(),
                },
            )
        _insert_edges(sql, {step_run_id: (lineage or [], outputs)})

    def insert_finished_tx(self, sql: Sql, steps: Sequence[FinishedStep]) -> None:
        """Record whole step runs (with outputs and lineage) in the caller's transaction."""
        if not steps:
            return
        sql.run_many(
            _INSERT_STEP_RUN,
            [
                _step_row(
                    s.step_run_id,
                    s.pipeline_run_id,
                    s.node,
                    s.step,
                    s.cache_key,
                    s.code_hash,
                    s.key_parts,
                    status=s.status,
                    started_at=s.started_at,
                    duration_ms=s.duration_ms,
                    attempts=s.attempts,
                )
                for s in steps
            ],
        )
        sql.run_many(
            _INSERT_OUTPUT,
            [row for s in steps for row in _output_rows(s.step_run_id, s.outputs)],
        )
        _insert_edges(sql, {s.step_run_id: (s.lineage, s.outputs) for s in steps})

    # -- reading -------------------------------------------------------------------------------

    def cached(self, cache_key: str) -> StepRecord | None:
        """The step run a cache key points to, with its outputs (one read transaction)."""

        def read(sql: Sql) -> StepRecord | None:
            rows = sql.rows(
                f"SELECT {_COLUMNS} FROM step_cache AS c "
                "JOIN step_runs AS sr ON sr.id = c.step_run_id WHERE c.cache_key = :key",
                {"key": cache_key},
            )
            if not rows:
                return None
            return _record(rows[0], _outputs_of(sql, str(rows[0][0])))

        return self.db.read(read)

    def get(self, step_run_id: str) -> StepRecord | None:
        """One step run with its outputs."""

        def read(sql: Sql) -> StepRecord | None:
            rows = sql.rows(
                f"SELECT {_COLUMNS} FROM step_runs AS sr WHERE sr.id = :id", {"id": step_run_id}
            )
            if not rows:
                return None
            return _record(rows[0], _outputs_of(sql, step_run_id))

        return self.db.read(read)

    def for_pipeline_run(self, pipeline_run_id: str) -> list[StepRecord]:
        """Every step run of a pipeline run, in start order."""

        def read(sql: Sql) -> list[StepRecord]:
            by_run = {"run": pipeline_run_id}
            rows = sql.rows(
                f"SELECT {_COLUMNS} FROM step_runs AS sr WHERE sr.pipeline_run_id = :run "
                "ORDER BY sr.started_at, sr.id",
                by_run,
            )
            outputs: dict[str, list[OutputRecord]] = {}
            for step_run_id, *output in sql.rows(
                f"SELECT o.step_run_id, {_OUTPUTS} FROM step_outputs AS o "
                "JOIN step_runs AS sr ON sr.id = o.step_run_id "
                'WHERE sr.pipeline_run_id = :run ORDER BY o.step_run_id, o."position"',
                by_run,
            ):
                outputs.setdefault(str(step_run_id), []).append(OutputRecord(*output))
            return [_record(row, outputs.get(str(row[0]), [])) for row in rows]

        return self.db.read(read)

    def previous(self, step: str, node: str, before_pipeline_run: str | None) -> StepRecord | None:
        """The latest recorded run of the same step and node (to explain a cache miss)."""
        query = f"SELECT {_COLUMNS} FROM step_runs AS sr WHERE sr.step = :step AND sr.node = :node"
        params: dict[str, Any] = {"step": step, "node": node}
        if before_pipeline_run is not None:
            query += " AND sr.pipeline_run_id != :before"
            params["before"] = before_pipeline_run
        query += " ORDER BY sr.started_at DESC LIMIT 1"
        rows = self.db.read(lambda sql: sql.rows(query, params))
        return _record(rows[0], []) if rows else None

    def producers_of(self, digest: str) -> list[str]:
        """Step runs that output ``digest`` (oldest first)."""
        rows = self.db.read(
            lambda sql: sql.rows(
                "SELECT step_run_id FROM step_outputs WHERE digest = :digest ORDER BY step_run_id",
                {"digest": digest},
            )
        )
        return [str(ident) for (ident,) in rows]

    def sources_of(self, kind: str, ident: str) -> list[tuple[str, str, str]]:
        """Lineage edges into ``(kind, ident)``: ``(src_kind, src_id, role)``."""
        rows = self.db.read(
            lambda sql: sql.rows(
                "SELECT src_kind, src_id, role FROM lineage_edges "
                "WHERE dst_kind = :kind AND dst_id = :ident",
                {"kind": kind, "ident": ident},
            )
        )
        return [(str(k), str(i), str(r)) for k, i, r in rows]


def _step_row(
    step_run_id: str,
    pipeline_run_id: str,
    node: str,
    step: str,
    cache_key: str,
    code_hash: str,
    key_parts: dict[str, Any],
    *,
    status: str,
    started_at: int,
    duration_ms: int | None,
    attempts: int,
) -> dict[str, Any]:
    return {
        "id": step_run_id,
        "pipeline_run_id": pipeline_run_id,
        "node": node,
        "step": step,
        "cache_key": cache_key,
        "code_hash": code_hash,
        "key_parts": json.dumps(key_parts, sort_keys=True, default=str),
        "status": status,
        "started_at": started_at,
        "duration_ms": duration_ms,
        "attempts": attempts,
        "error": None,
    }


def _output_rows(step_run_id: str, outputs: Sequence[OutputRecord]) -> list[dict[str, Any]]:
    return [
        {
            "step_run_id": step_run_id,
            "position": position,
            "digest": out.digest,
            "materializer": out.materializer,
            "type_name": out.type_name,
        }
        for position, out in enumerate(outputs)
    ]


def _insert_edges(
    sql: Sql,
    by_step: dict[str, tuple[Sequence[tuple[str, str, str]], Sequence[OutputRecord]]],
) -> None:
    """Lineage edges of step runs: their inputs into them, and them into their outputs.

    Each edge is stored once: edges already recorded (every edge touches one of these step
    runs, so a lookup by step run finds them) and repeats within the batch are skipped.
    """
    edges: dict[tuple[str, str, str, str, str], None] = {}
    for step_run_id, (lineage, outputs) in by_step.items():
        for kind, ident, role in lineage:
            edges[(kind, ident, "step_run", step_run_id, role)] = None
        for index, out in enumerate(outputs):
            edges[("step_run", step_run_id, "object", out.digest, f"output {index}")] = None
    if not edges:
        return
    for chunk in _chunks(list(by_step)):
        ids, params = in_list("s", chunk)
        for existing in sql.rows(
            "SELECT src_kind, src_id, dst_kind, dst_id, role FROM lineage_edges "
            f"WHERE (dst_kind = 'step_run' AND dst_id IN ({ids})) "
            f"OR (src_kind = 'step_run' AND src_id IN ({ids}))",
            params,
        ):
            edges.pop(tuple(str(v) for v in existing), None)  # type: ignore[arg-type]
    sql.run_many(
        _INSERT_EDGE,
        [
            {"src_kind": a, "src_id": b, "dst_kind": c, "dst_id": d, "role": e}
            for a, b, c, d, e in edges
        ],
    )


def _outputs_of(sql: Sql, step_run_id: str) -> list[OutputRecord]:
    return [
        OutputRecord(*row)
        for row in sql.rows(
            f"SELECT {_OUTPUTS} FROM step_outputs AS o WHERE o.step_run_id = :id "
            'ORDER BY o."position"',
            {"id": step_run_id},
        )
    ]


def _record(row: Sequence[Any], outs: Sequence[OutputRecord]) -> StepRecord:
    (
        ident,
        pipeline_run_id,
        node,
        step,
        cache_key,
        code_hash,
        key_parts,
        status,
        started_at,
        duration_ms,
        attempts,
        error,
    ) = row
    return StepRecord(
        id=ident,
        pipeline_run_id=pipeline_run_id,
        node=node,
        step=step,
        cache_key=cache_key,
        code_hash=code_hash,
        key_parts=json.loads(key_parts),
        status=status,
        started_at=started_at,
        duration_ms=duration_ms,
        attempts=attempts,
        error=error,
        outputs=tuple(outs),
    )
