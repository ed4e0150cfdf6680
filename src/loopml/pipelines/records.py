"""Step runs, their outputs, the step cache and lineage edges in the metadata store."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from loopml.pipelines.model import OutputRecord, StepRecord
from loopml.store.metadata import MetadataStore
from loopml.store.metadata.schema import lineage_edges, step_cache, step_outputs, step_runs

__all__ = ["OutputRecord", "StepRecord", "StepRecords"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class StepRecords:
    """Reads and writes pipeline records."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

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
        self.metadata.run_write(
            lambda conn: conn.execute(
                insert(step_runs).values(
                    id=step_run_id,
                    pipeline_run_id=pipeline_run_id,
                    node=node,
                    step=step,
                    cache_key=cache_key,
                    code_hash=code_hash,
                    key_parts=json.dumps(key_parts, sort_keys=True, default=str),
                    status="running",
                    started_at=_now_ms(),
                    attempts=0,
                )
            )
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

        def write(conn: Connection) -> None:
            conn.execute(
                update(step_runs)
                .where(step_runs.c.id == step_run_id)
                .values(status=status, duration_ms=duration_ms, attempts=attempts, error=error)
            )
            if outputs:
                conn.execute(
                    insert(step_outputs),
                    [
                        {
                            "step_run_id": step_run_id,
                            "position": position,
                            "digest": out.digest,
                            "materializer": out.materializer,
                            "type_name": out.type_name,
                        }
                        for position, out in enumerate(outputs)
                    ],
                )
            if cache_key is not None and step is not None:
                conn.execute(delete(step_cache).where(step_cache.c.cache_key == cache_key))
                conn.execute(
                    insert(step_cache).values(
                        cache_key=cache_key,
                        step=step,
                        step_run_id=step_run_id,
                        created_at=_now_ms(),
                    )
                )
            edges = [
                {
                    "src_kind": kind,
                    "src_id": ident,
                    "dst_kind": "step_run",
                    "dst_id": step_run_id,
                    "role": role,
                }
                for kind, ident, role in (lineage or [])
            ]
            edges += [
                {
                    "src_kind": "step_run",
                    "src_id": step_run_id,
                    "dst_kind": "object",
                    "dst_id": out.digest,
                    "role": f"output {i}",
                }
                for i, out in enumerate(outputs)
            ]
            unique = {tuple(sorted(e.items())): e for e in edges}
            for edge in unique.values():
                exists = conn.execute(
                    select(lineage_edges.c.role).where(
                        *(lineage_edges.c[k] == v for k, v in edge.items())
                    )
                ).first()
                if exists is None:
                    conn.execute(insert(lineage_edges).values(**edge))

        self.metadata.run_write(write)

    def cached(self, cache_key: str) -> StepRecord | None:
        """The step run a cache key points to, if its outputs are recorded."""
        with self.metadata.read() as conn:
            row = conn.execute(
                select(step_cache.c.step_run_id).where(step_cache.c.cache_key == cache_key)
            ).first()
        if row is None:
            return None
        return self.get(row.step_run_id)

    def get(self, step_run_id: str) -> StepRecord | None:
        """One step run with its outputs."""
        with self.metadata.read() as conn:
            row = conn.execute(select(step_runs).where(step_runs.c.id == step_run_id)).first()
            if row is None:
                return None
            outs = conn.execute(
                select(step_outputs)
                .where(step_outputs.c.step_run_id == step_run_id)
                .order_by(step_outputs.c.position)
            ).all()
        return _record(row, list(outs))

    def for_pipeline_run(self, pipeline_run_id: str) -> list[StepRecord]:
        """Every step run of a pipeline run, in start order."""
        with self.metadata.read() as conn:
            rows = conn.execute(
                select(step_runs)
                .where(step_runs.c.pipeline_run_id == pipeline_run_id)
                .order_by(step_runs.c.started_at, step_runs.c.id)
            ).all()
            outs = conn.execute(
                select(step_outputs)
                .where(step_outputs.c.step_run_id.in_([r.id for r in rows]))
                .order_by(step_outputs.c.position)
            ).all()
        by_run: dict[str, list[Any]] = {}
        for out in outs:
            by_run.setdefault(out.step_run_id, []).append(out)
        return [_record(r, by_run.get(r.id, [])) for r in rows]

    def previous(self, step: str, node: str, before_pipeline_run: str | None) -> StepRecord | None:
        """The latest recorded run of the same step and node (to explain a cache miss)."""
        query = (
            select(step_runs)
            .where(step_runs.c.step == step, step_runs.c.node == node)
            .order_by(step_runs.c.started_at.desc())
            .limit(1)
        )
        if before_pipeline_run is not None:
            query = query.where(step_runs.c.pipeline_run_id != before_pipeline_run)
        with self.metadata.read() as conn:
            row = conn.execute(query).first()
        return _record(row, []) if row is not None else None

    def producers_of(self, digest: str) -> list[str]:
        """Step runs that output ``digest`` (oldest first)."""
        with self.metadata.read() as conn:
            return [
                str(r.step_run_id)
                for r in conn.execute(
                    select(step_outputs.c.step_run_id)
                    .where(step_outputs.c.digest == digest)
                    .order_by(step_outputs.c.step_run_id)
                )
            ]

    def sources_of(self, kind: str, ident: str) -> list[tuple[str, str, str]]:
        """Lineage edges into ``(kind, ident)``: ``(src_kind, src_id, role)``."""
        with self.metadata.read() as conn:
            return [
                (str(r.src_kind), str(r.src_id), str(r.role))
                for r in conn.execute(
                    select(lineage_edges).where(
                        lineage_edges.c.dst_kind == kind, lineage_edges.c.dst_id == ident
                    )
                )
            ]


def _record(row: Any, outs: list[Any]) -> StepRecord:
    return StepRecord(
        id=row.id,
        pipeline_run_id=row.pipeline_run_id,
        node=row.node,
        step=row.step,
        cache_key=row.cache_key,
        code_hash=row.code_hash,
        key_parts=json.loads(row.key_parts),
        status=row.status,
        started_at=row.started_at,
        duration_ms=row.duration_ms,
        attempts=row.attempts,
        error=row.error,
        outputs=tuple(OutputRecord(o.digest, o.materializer, o.type_name) for o in outs),
    )
