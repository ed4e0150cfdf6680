"""Gate results: a promotion gate's verdict on a candidate version, which allows an alias move.

The gate runner (built on top of the registry) records one with :meth:`GateResults.add`; a move of
a protected alias then names it (``move_alias(..., gate_result_id=...)``), and the alias event
keeps that id.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import insert, select

from loopml.ids import new_id
from loopml.registry.errors import RegistryError
from loopml.registry.model import GateResult
from loopml.store.metadata import MetadataStore
from loopml.store.metadata.schema import gate_results

__all__ = ["GateResults"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class GateResults:
    """Reads and writes gate results."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def add(
        self,
        *,
        model_version_id: str,
        gate_file_hash: str,
        data_hash: str,
        champion_version_id: str | None,
        passed: bool,
        report: str,
        user: str,
    ) -> GateResult:
        """Record a gate's verdict on a candidate version."""
        result = GateResult(
            id=new_id(),
            model_version_id=model_version_id,
            gate_file_hash=gate_file_hash,
            data_hash=data_hash,
            champion_version_id=champion_version_id,
            passed=passed,
            report=report,
            created_at=_now_ms(),
            user=user,
        )
        self.metadata.run_write(
            lambda conn: conn.execute(
                insert(gate_results).values(
                    id=result.id,
                    model_version_id=model_version_id,
                    gate_file_hash=gate_file_hash,
                    data_hash=data_hash,
                    champion_version_id=champion_version_id,
                    passed=passed,
                    report=report,
                    created_at=result.created_at,
                    user=user,
                )
            )
        )
        return result

    def get(self, gate_result_id: str) -> GateResult:
        """One gate result."""
        with self.metadata.read() as conn:
            row = conn.execute(
                select(gate_results).where(gate_results.c.id == gate_result_id)
            ).first()
        if row is None:
            raise RegistryError(f"no gate result {gate_result_id}")
        return _result(row)

    def for_version(self, model_version_id: str) -> list[GateResult]:
        """Every gate result of one version, newest first."""
        with self.metadata.read() as conn:
            rows = conn.execute(
                select(gate_results)
                .where(gate_results.c.model_version_id == model_version_id)
                .order_by(gate_results.c.created_at.desc(), gate_results.c.id.desc())
            ).all()
        return [_result(row) for row in rows]

    def applicable(
        self,
        *,
        model_version_id: str,
        gate_file_hash: str,
        data_hash: str,
        champion_version_id: str | None,
    ) -> GateResult | None:
        """The newest result of this gate file on this data against this champion, if any."""
        query = (
            select(gate_results)
            .where(
                gate_results.c.model_version_id == model_version_id,
                gate_results.c.gate_file_hash == gate_file_hash,
                gate_results.c.data_hash == data_hash,
            )
            .order_by(gate_results.c.created_at.desc(), gate_results.c.id.desc())
            .limit(1)
        )
        if champion_version_id is None:
            query = query.where(gate_results.c.champion_version_id.is_(None))
        else:
            query = query.where(gate_results.c.champion_version_id == champion_version_id)
        with self.metadata.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _result(row)


def _result(row: Any) -> GateResult:
    return GateResult(
        id=row.id,
        model_version_id=row.model_version_id,
        gate_file_hash=row.gate_file_hash,
        data_hash=row.data_hash,
        champion_version_id=row.champion_version_id,
        passed=bool(row.passed),
        report=row.report,
        created_at=row.created_at,
        user=row.user,
    )
