"""Helpers shared by the tracking tests (a plain module: ``conftest`` is not importable by name)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from loopml.store.metadata import MetadataStore
from loopml.store.metadata.schema import run_metrics, runs
from loopml.store.workspace import Workspace
from loopml.tracking.model import ArtifactRecord, InputRecord, Metric, RunInfo, RunStatus
from loopml.tracking.store import TrackingStore

# Read at import: the suite's autouse fixture clears every LOOPML_* variable before each test.


def close_tracking() -> None:
    """End every run still active in this process, close every tracking session, forget seeds."""
    from loopml.tracking import fluent

    workspaces = [session.workspace for session in fluent._sessions.values()]
    fluent._shutdown()
    for workspace in workspaces:
        workspace.close()
    fluent._stack().clear()
    fluent._process_seeds.clear()
    assert not fluent._all_active and not fluent._sessions


@contextmanager
def other_connection(workspace: Workspace) -> Iterator[MetadataStore]:
    """The workspace's database through an engine of its own (as another process sees it)."""
    database = MetadataStore.open(workspace.settings.database_url, migrate=False)
    try:
        yield database
    finally:
        database.close()


def stored_points(database: MetadataStore, run_id: str) -> int:
    """How many metric points of ``run_id`` are in the database."""
    query = select(func.count()).select_from(run_metrics).where(run_metrics.c.run_id == run_id)
    with database.read() as conn:
        return int(conn.execute(query).scalar_one())


def stored_status(database: MetadataStore, run_id: str) -> str:
    """The status column of a run, read without reaping crashed runs."""
    with database.read() as conn:
        return str(conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar_one())


def write_script(path: Path, code: str) -> Path:
    """Write a Python script (dedented) and return its path."""
    path.write_text(textwrap.dedent(code))
    return path


def python(
    script: Path, *args: str, cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with this interpreter in ``cwd`` (environment inherited)."""
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_python(script: Path, *args: str, cwd: Path) -> subprocess.Popen[str]:
    """Start ``script`` with this interpreter in ``cwd``, its output piped."""
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class CountingStore:
    """A thin wrapper around a real store that records the batches it is sent.

    ``delay`` makes every ``log_batch`` slow, to exercise the writer's bounded buffer.
    """

    def __init__(self, inner: TrackingStore, *, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.batches: list[tuple[str, int, int, int]] = []  # run, params, metrics, tags

    def experiment_id(self, name: str, *, create: bool = True) -> str:
        return self.inner.experiment_id(name, create=create)

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
        return self.inner.create_run(
            experiment=experiment,
            name=name,
            parent_run_id=parent_run_id,
            user=user,
            host=host,
            pid=pid,
            tags=tags,
        )

    def log_batch(
        self,
        run_id: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        metrics: Sequence[Metric] = (),
        tags: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.batches.append((run_id, len(params), len(metrics), len(tags)))
        if self.delay:
            time.sleep(self.delay)
        self.inner.log_batch(run_id, params=params, metrics=metrics, tags=tags)

    def heartbeat(self, run_ids: Sequence[str]) -> None:
        self.inner.heartbeat(run_ids)

    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> None:
        self.inner.set_status(run_id, status, error_type=error_type, error_message=error_message)

    def set_manifest(self, run_id: str, digest: str, environment_digest: str) -> None:
        self.inner.set_manifest(run_id, digest, environment_digest)

    def log_artifacts(self, run_id: str, artifacts: Sequence[ArtifactRecord]) -> None:
        self.inner.log_artifacts(run_id, artifacts)

    def log_inputs(self, run_id: str, inputs: Sequence[InputRecord]) -> None:
        self.inner.log_inputs(run_id, inputs)

    def get_run(self, run_id_or_prefix: str) -> RunInfo:
        return self.inner.get_run(run_id_or_prefix)

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self.inner.metric_history(run_id, key)
