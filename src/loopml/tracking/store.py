"""The batch-shaped Protocol between the tracking API and where runs are stored.

Everything a run does arrives as a few calls with many items each (a batch of params, metrics
and tags; a heartbeat; a status change), so the local SQL store and a later HTTP client for the
team server can both serve it without a round trip per metric point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from loopml.tracking.model import ArtifactRecord, InputRecord, Metric, RunInfo, RunStatus

__all__ = ["TrackingStore"]


class TrackingStore(Protocol):
    """Where runs live."""

    def experiment_id(self, name: str, *, create: bool = True) -> str:
        """The id of experiment ``name`` (created on first use when ``create``)."""
        ...

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
        ...

    def log_batch(
        self,
        run_id: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        metrics: Sequence[Metric] = (),
        tags: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Record many params, metric points and tags in one transaction."""
        ...

    def heartbeat(self, run_ids: Sequence[str]) -> None:
        """Mark these runs alive now."""
        ...

    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> None:
        """End (or re-open) a run."""
        ...

    def set_manifest(self, run_id: str, digest: str, environment_digest: str) -> None:
        """Point the run at its manifest object and the environment object it names."""
        ...

    def log_artifacts(self, run_id: str, artifacts: Sequence[ArtifactRecord]) -> None:
        """Record artifacts already written to the object store."""
        ...

    def log_inputs(self, run_id: str, inputs: Sequence[InputRecord]) -> None:
        """Record dataset versions the run read."""
        ...

    def get_run(self, run_id_or_prefix: str) -> RunInfo:
        """A run with its params, latest metrics, tags, artifacts and inputs."""
        ...

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of one metric, in step order."""
        ...
