"""Value objects of experiment tracking."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["ArtifactRecord", "InputRecord", "Metric", "NewRun", "RunInfo", "RunStatus"]


class RunStatus(StrEnum):
    """The life of a run: running, then finished, failed, crashed or killed."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CRASHED = "crashed"
    KILLED = "killed"

    @property
    def terminal(self) -> bool:
        """Whether the run is over."""
        return self is not RunStatus.RUNNING


@dataclass(frozen=True, slots=True)
class Metric:
    """One point of a metric's history."""

    key: str
    value: float
    step: int
    timestamp: int  # epoch milliseconds


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """An artifact of a run: a file (a blob) or a folder (a tree) in the object store."""

    path: str
    digest: str
    size: int
    kind: str  # "file" or "tree"


@dataclass(frozen=True, slots=True)
class InputRecord:
    """A dataset version a run read."""

    dataset: str
    version: int
    hash: str


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Everything recorded about a run except its history of metric points."""

    id: str
    experiment: str
    name: str
    status: RunStatus
    start_time: int
    end_time: int | None
    parent_run_id: str | None
    user: str
    host: str
    pid: int
    heartbeat_at: int
    manifest_hash: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    deleted: bool = False
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: tuple[ArtifactRecord, ...] = ()
    inputs: tuple[InputRecord, ...] = ()

    @property
    def duration_ms(self) -> int | None:
        """Wall-clock duration, once ended."""
        return None if self.end_time is None else self.end_time - self.start_time


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run written whole, with its tags, params, metrics and inputs, in one transaction.

    Pipelines record a cached step this way: its run is born finished, never half-written.
    """

    id: str
    experiment_id: str
    name: str
    status: RunStatus
    start_time: int
    end_time: int | None
    parent_run_id: str | None
    user: str
    host: str
    pid: int
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: tuple[Metric, ...] = ()
    inputs: tuple[InputRecord, ...] = ()
