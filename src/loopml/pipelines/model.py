"""Value objects of pipeline records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["OutputRecord", "StepRecord"]


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One stored output: its digest and how to load it."""

    digest: str
    materializer: str
    type_name: str


@dataclass(frozen=True, slots=True)
class StepRecord:
    """A recorded step run."""

    id: str
    pipeline_run_id: str
    node: str
    step: str
    cache_key: str
    code_hash: str
    key_parts: dict[str, Any]
    status: str
    started_at: int
    duration_ms: int | None
    attempts: int
    error: str | None
    outputs: tuple[OutputRecord, ...] = ()
