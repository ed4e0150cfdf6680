"""The tracking API users call: ``start_run``, ``log_metric``, ``log_params``, ``seed`` …

One tracking session per process and workspace holds the store, the background writer and the
manifest capture. Active runs are kept per thread (a stack, for nested runs). At interpreter
exit every run still active is ended — ``finished``, or ``failed`` when an uncaught exception is
ending the program — and the writer is flushed and joined, so nothing prints at shutdown.
"""

from __future__ import annotations

import atexit
import contextlib
import numbers
import os
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from loopml.store.workspace import Workspace
from loopml.tracking.errors import InvalidValueError, NoActiveRunError, TrackingError
from loopml.tracking.manifest import ManifestCapture, canonical_json
from loopml.tracking.model import ArtifactRecord, InputRecord, Metric, RunInfo, RunStatus
from loopml.tracking.writer import BackgroundWriter

__all__ = [
    "ActiveRun",
    "active_run",
    "attached_run",
    "end_run",
    "log_artifact",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "seed",
    "session_workspace",
    "set_tag",
    "set_tags",
    "start_run",
]

_KEY_RE = re.compile(r"^[A-Za-z0-9_\-./ :]{1,250}$")
_MAX_PARAM_CHARS = 6000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _check_key(key: str, what: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise InvalidValueError(
            f"invalid {what} name {key!r}: use 1-250 letters, digits, spaces and _ - . / :"
        )
    return key


def _metric_value(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidValueError(
            f"metric {key!r} must be a number, got {type(value).__name__} {value!r}"
        )
    return float(value)


class _Session:
    """Store, writer and manifest capture of one workspace in this process."""

    def __init__(self, workspace: Workspace) -> None:
        from loopml.tracking.sql_store import SqlTrackingStore

        self.workspace = workspace
        self.store = SqlTrackingStore(workspace=workspace)
        # Opened here, before the writer's thread starts: the database (and any error opening
        # it) is this call's, and the threads never race to open it.
        self.store.db  # noqa: B018
        self.writer = BackgroundWriter(self.store)
        self.capture = ManifestCapture(cwd=Path.cwd())

    def close(self) -> None:
        self.writer.close()
        self.workspace.close()


_sessions: dict[Path, _Session] = {}
_sessions_lock = threading.Lock()
_local = threading.local()
_all_active: list[ActiveRun] = []
_atexit_registered = False
# Seeds set by ``seed`` in this process, before or during a run: every later run records them.
_process_seeds: dict[str, int] = {}


def _session(workspace: Workspace | None) -> _Session:
    global _atexit_registered
    root = workspace.root if workspace is not None else None
    with _sessions_lock:
        if root is not None and root in _sessions:
            return _sessions[root]
        opened = workspace or Workspace.open()
        existing = _sessions.get(opened.root)
        if existing is not None:
            if workspace is None:
                opened.close()
            return existing
        session = _sessions[opened.root] = _Session(opened)
        if not _atexit_registered:
            atexit.register(_shutdown)
            _atexit_registered = True
        return session


def _stack() -> list[ActiveRun]:
    stack: list[ActiveRun] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


class ActiveRun:
    """A run in progress; also a context manager that ends it."""

    def __init__(self, session: _Session, info: RunInfo, system_metrics: bool, interval: float):
        self._session = session
        self.info = info
        self.id = info.id
        self._params: dict[str, str] = {}
        self._steps: dict[str, int] = {}
        self._inputs: dict[tuple[str, int], InputRecord] = {}
        self._seeds: dict[str, int] = dict(_process_seeds)
        self._ended = False
        self._lock = threading.Lock()
        self._unsubscribe = self._follow_data_reads()
        self._sampler = None
        if system_metrics:
            from loopml.tracking.system_metrics import SystemSampler

            self._sampler = SystemSampler(
                lambda points: session.writer.add(self.id, metrics=points), interval
            )
            self._sampler.start()

    def _follow_data_reads(self) -> Any:
        from loopml.data.reads import on_read

        def noted(name: str, version: Any) -> None:
            with self._lock:
                self._inputs[(name, version.number)] = InputRecord(
                    name, version.number, version.hash
                )

        return on_read(noted)

    # -- logging -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._ended:
            raise TrackingError(f"run {self.id[:8]} has ended; start a new run to log more")

    def log_param(self, key: str, value: object) -> None:
        """Record a parameter (stored as a string, as MLflow does); it may not change later."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, object]) -> None:
        """Record several parameters at once."""
        self._check_open()
        items = []
        for key, value in params.items():
            _check_key(key, "param")
            text = str(value)
            if len(text) > _MAX_PARAM_CHARS:
                raise InvalidValueError(
                    f"param {key!r} is {len(text)} characters; the limit is {_MAX_PARAM_CHARS}"
                )
            previous = self._params.get(key)
            if previous is not None and previous != text:
                raise InvalidValueError(
                    f"param {key!r} was already logged as {previous!r}; params do not change "
                    "within a run (log a metric or a tag instead)"
                )
            items.append((key, text))
        # Only a batch that is valid as a whole is remembered (and written).
        self._params.update(items)
        self._session.writer.add(self.id, params=items)

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Record one point; returns at once (written in the background)."""
        if self._ended:
            self._check_open()
        number = _metric_value(key, value)
        if key not in self._steps:
            _check_key(key, "metric")
        if step is None:
            step = self._steps.get(key, -1) + 1
        self._steps[key] = step
        self._session.writer.add_metric(
            self.id, Metric(key, number, int(step), timestamp or time.time_ns() // 1_000_000)
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record several metrics at one step."""
        self._check_open()
        stamp = _now_ms()
        points = []
        for key, value in metrics.items():
            _check_key(key, "metric")
            number = _metric_value(key, value)
            at = self._steps.get(key, -1) + 1 if step is None else step
            points.append(Metric(key, number, int(at), stamp))
        # Only a batch that is valid as a whole advances the steps (and is written).
        self._steps.update((point.key, point.step) for point in points)
        self._session.writer.add(self.id, metrics=points)

    def set_tag(self, key: str, value: object) -> None:
        """Set a tag (tags may change)."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, object]) -> None:
        """Set several tags."""
        self._check_open()
        items = [(_check_key(k, "tag"), str(v)) for k, v in tags.items()]
        self._session.writer.add(self.id, tags=items)

    def _record_artifact(self, record: ArtifactRecord) -> ArtifactRecord:
        self._session.store.log_artifacts(self.id, [record])
        return record

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> ArtifactRecord:
        """Store a file or folder in the object store (deduplicated) as an artifact."""
        from loopml.tracking.artifacts import store_path

        self._check_open()
        return self._record_artifact(store_path(self._session.workspace, Path(path), name))

    def log_dict(self, value: Any, name: str) -> ArtifactRecord:
        """Store a dict or list as JSON or YAML."""
        from loopml.tracking.artifacts import store_dict

        self._check_open()
        return self._record_artifact(store_dict(self._session.workspace, value, name))

    def log_figure(self, figure: Any, name: str) -> ArtifactRecord:
        """Store a matplotlib (PNG/SVG/PDF) or plotly (HTML) figure."""
        from loopml.tracking.artifacts import store_figure

        self._check_open()
        return self._record_artifact(store_figure(self._session.workspace, figure, name))

    def log_table(self, table: Any, name: str) -> ArtifactRecord:
        """Store a DataFrame as Parquet."""
        from loopml.tracking.artifacts import store_table

        self._check_open()
        return self._record_artifact(store_table(self._session.workspace, table, name))

    def note_seed(self, name: str, value: int) -> None:
        """Record a seed in the run's manifest."""
        with self._lock:
            self._seeds[name] = value

    # -- ending --------------------------------------------------------------------------------

    def end(
        self,
        status: RunStatus = RunStatus.FINISHED,
        error: BaseException | None = None,
    ) -> None:
        """Flush, write the manifest, and set the final status (idempotent)."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        if self._sampler is not None:
            self._sampler.stop()
        self._unsubscribe()
        session = self._session
        try:
            session.writer.flush(self.id)
            self._write_manifest()
        finally:
            session.writer.deactivate(self.id)
            session.store.set_status(
                self.id,
                status,
                error_type=type(error).__name__ if error is not None else None,
                error_message=str(error)[:4000] if error is not None else None,
            )
            stack = _stack()
            if self in stack:
                stack.remove(self)
            if self in _all_active:
                _all_active.remove(self)

    def _write_manifest(self) -> None:
        session = self._session
        objects = session.workspace.objects
        environment_digest = objects.add_bytes(canonical_json(session.capture.environment()))
        with self._lock:
            inputs = sorted(self._inputs.values(), key=lambda i: (i.dataset, i.version))
            seeds = dict(self._seeds)
        git = session.capture.git()
        document = {
            "format": "loopml-manifest/1",
            "run_id": self.id,
            "environment": environment_digest,
            "git": git.as_dict(),
            "command": list(sys.argv),
            "cwd": str(Path.cwd()),
            "seeds": seeds,
            "inputs": [
                {"dataset": i.dataset, "version": i.version, "hash": i.hash} for i in inputs
            ],
            "params": dict(self._params),
        }
        digest = objects.add_bytes(canonical_json(document))
        session.store.log_inputs(self.id, inputs)
        session.store.set_manifest(self.id, digest, environment_digest)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            self.end(RunStatus.FINISHED)
        elif isinstance(exc, KeyboardInterrupt):
            self.end(RunStatus.KILLED, exc)
        else:
            self.end(RunStatus.FAILED, exc)


def start_run(
    experiment: str | None = None,
    name: str | None = None,
    *,
    nested: bool = False,
    tags: Mapping[str, object] | None = None,
    system_metrics: bool = True,
    system_metrics_interval: float = 10.0,
    workspace: Workspace | None = None,
) -> ActiveRun:
    """Start a run (use it as a context manager); it becomes the active run of this thread.

    With a run already active, pass ``nested=True`` to start a child run of it.
    """
    from loopml.refs import validate_name

    experiment = validate_name(
        experiment or os.environ.get("LOOPML_EXPERIMENT", "default"), "experiment name"
    )
    stack = _stack()
    parent = stack[-1] if stack else None
    if parent is not None and not nested:
        raise TrackingError(
            f"run {parent.id[:8]} is already active; end it first or pass nested=True"
        )
    session = _session(workspace)
    session.capture.start()
    from loopml.ids import new_id

    info = session.store.create_run(
        experiment=experiment,
        name=name or f"{experiment}-{new_id()[-6:]}",
        parent_run_id=parent.id if parent is not None else None,
        user=session.workspace.settings.user,
        host=socket.gethostname(),
        pid=os.getpid(),
        tags={_check_key(k, "tag"): str(v) for k, v in (tags or {}).items()},
    )
    run = ActiveRun(session, info, system_metrics, system_metrics_interval)
    session.writer.activate(run.id)
    stack.append(run)
    _all_active.append(run)
    return run


@contextlib.contextmanager
def attached_run(run_id: str, workspace: Workspace | None = None) -> Iterator[ActiveRun]:
    """Make an existing run the active one for a block (``log_*`` calls go to it).

    The run is flushed at the end of the block but not ended: whoever created it sets its
    status. Pipelines use this so that a step's ``log_metric`` lands in the step's run.
    """
    session = _session(workspace)
    info = session.store.run_header(run_id)
    run = ActiveRun(session, info, system_metrics=False, interval=0.0)
    stack = _stack()
    stack.append(run)
    try:
        yield run
    finally:
        run._unsubscribe()
        if run in stack:
            stack.remove(run)
        session.writer.flush(run.id)
        with run._lock:
            inputs = list(run._inputs.values())
        session.store.log_inputs(run.id, inputs)


def session_workspace(workspace: Workspace | None = None) -> Workspace:
    """The workspace of this process's tracking session (found from the current folder).

    The session keeps its workspace open until the process exits; code that runs pipelines
    uses that same workspace, so nothing is opened twice or left open.
    """
    return _session(workspace).workspace


def active_run() -> ActiveRun | None:
    """The innermost active run of this thread, if any."""
    stack = _stack()
    return stack[-1] if stack else None


def _current() -> ActiveRun:
    run = active_run()
    if run is None:
        raise NoActiveRunError("no active run; wrap the code in `with loopml.start_run():`")
    return run


def end_run(status: str = "finished") -> None:
    """End the active run."""
    _current().end(RunStatus(status))


def log_param(key: str, value: object) -> None:
    """Record a parameter of the active run."""
    _current().log_param(key, value)


def log_params(params: Mapping[str, object]) -> None:
    """Record parameters of the active run."""
    _current().log_params(params)


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: int | None = None
) -> None:
    """Record a metric point of the active run (returns at once)."""
    _current().log_metric(key, value, step, timestamp)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Record metric points of the active run."""
    _current().log_metrics(metrics, step)


def set_tag(key: str, value: object) -> None:
    """Set a tag of the active run."""
    _current().set_tag(key, value)


def set_tags(tags: Mapping[str, object]) -> None:
    """Set tags of the active run."""
    _current().set_tags(tags)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> ArtifactRecord:
    """Store a file or folder as an artifact of the active run."""
    return _current().log_artifact(path, name)


def log_dict(value: Any, name: str) -> ArtifactRecord:
    """Store a dict or list as a JSON/YAML artifact of the active run."""
    return _current().log_dict(value, name)


def log_figure(figure: Any, name: str) -> ArtifactRecord:
    """Store a figure as an artifact of the active run."""
    return _current().log_figure(figure, name)


def log_table(table: Any, name: str) -> ArtifactRecord:
    """Store a DataFrame as a Parquet artifact of the active run."""
    return _current().log_table(table, name)


def seed(value: int) -> int:
    """Seed ``random``, NumPy and (when installed) PyTorch; recorded in the run's manifest."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise InvalidValueError(f"seed must be a whole number from 0 to 2**32-1, got {value!r}")
    random.seed(value)
    seeded = {"random": value}
    try:
        import numpy as np

        np.random.seed(value)
        seeded["numpy"] = value
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(value)
        seeded["torch"] = value
    _process_seeds.update(seeded)
    run = active_run()
    if run is not None:
        for name, number in seeded.items():
            run.note_seed(name, number)
    return value


def _shutdown() -> None:
    failing = getattr(sys, "last_value", None)
    for run in list(reversed(_all_active)):
        try:
            if failing is not None:
                run.end(RunStatus.FAILED, failing)
            else:
                run.end(RunStatus.FINISHED)
        except Exception:
            pass
    for session in list(_sessions.values()):
        try:
            session.close()
        except Exception:
            pass
    _sessions.clear()
