"""Running one step: load its inputs, call it with retries and a timeout, store its outputs.

The same function serves every executor. Local runs call it in process (or in a worker
process); Ray runs it as a task. A task carries only hashes and literal values — inputs and
outputs travel through the object store, never pickled through the executor.
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from loopml.pipelines.errors import PipelineError, StepTimeoutError
from loopml.pipelines.model import OutputRecord

__all__ = ["ArgSpec", "StepTask", "TaskResult", "load_step", "run_task"]


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One argument as it travels to a worker: a literal, a path, a dataset ref, or an object."""

    name: str
    kind: str  # "value", "path", "data", "output"
    value: Any = None
    digest: str | None = None
    materializer: str | None = None


@dataclass(frozen=True)
class StepTask:
    """Everything a worker needs to run one step, by value (small) and by hash (data)."""

    workspace_root: str
    step_identity: str
    node: str
    step_run_id: str
    arguments: tuple[ArgSpec, ...]
    sys_path: tuple[str, ...] = ()
    allow_pickle: bool = False
    timeout: float | None = None
    retries: int = 0
    retry_delay: float = 1.0
    settings_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskResult:
    """What came back: outputs on success, or the error and the user's traceback."""

    outputs: tuple[OutputRecord, ...]
    attempts: int
    duration_ms: int
    error: str | None = None
    user_traceback: str | None = None


def load_step(identity: str) -> Any:
    """Import ``module:qualname`` and return the step (or plain function) it names."""
    module_name, _, qualname = identity.partition(":")
    module = importlib.import_module(module_name)
    value: Any = module
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


class _Alarm:
    """A timeout through SIGALRM, usable only on the main thread (else no timeout is set)."""

    def __init__(self, seconds: float | None, node: str) -> None:
        self.seconds = seconds
        self.node = node
        self.armed = False

    def _fire(self, _signum: int, _frame: Any) -> None:
        raise StepTimeoutError(
            f"step {self.node!r} ran longer than its timeout of {self.seconds:g} s"
        )

    def __enter__(self) -> _Alarm:
        if self.seconds and threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            self.armed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)


_LOOPML_DIR = Path(__file__).resolve().parent.parent  # the installed loopml package


def _is_internal(filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(_LOOPML_DIR)
    except (OSError, ValueError):
        return False


def _user_traceback(exc: BaseException) -> str:
    """The traceback without loopml's own frames, so the user sees their code."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not _is_internal(frame.filename)
    ]
    lines = traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


@contextlib.contextmanager
def _on_path(paths: tuple[str, ...]) -> Iterator[None]:
    added = [p for p in paths if p not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for path in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(path)


def _load_arguments(task: StepTask, workspace: Any) -> dict[str, Any]:
    from loopml.artifacts import materializer_by_name

    values: dict[str, Any] = {}
    for arg in task.arguments:
        if arg.kind == "value":
            values[arg.name] = arg.value
        elif arg.kind == "path":
            values[arg.name] = Path(arg.value)
        elif arg.kind == "data":
            from loopml.data.api import get

            values[arg.name] = get(arg.value, workspace=workspace)
        else:
            assert arg.digest is not None and arg.materializer is not None
            materializer = materializer_by_name(arg.materializer, workspace_dir=workspace.dir)
            if hasattr(materializer, "cache_dir"):
                materializer.cache_dir = workspace.cache_dir("outputs")
            values[arg.name] = materializer.load(arg.digest, workspace.objects)
    return values


def _save_outputs(result: Any, step: Any, task: StepTask, workspace: Any) -> list[OutputRecord]:
    from loopml.artifacts import materializer_for

    count = getattr(step, "outputs", 1)
    if count == 1:
        values = [result]
    else:
        if not isinstance(result, tuple | list) or len(result) != count:
            raise PipelineError(
                f"step {task.node!r} is annotated to return {count} outputs but returned "
                f"{type(result).__name__}"
            )
        values = list(result)
    outputs = []
    for value in values:
        materializer = materializer_for(
            value, allow_pickle=task.allow_pickle, workspace_dir=workspace.dir
        )
        digest = materializer.save(value, workspace.objects)
        type_name = f"{type(value).__module__}.{type(value).__qualname__}"
        outputs.append(OutputRecord(digest, materializer.name, type_name))
    return outputs


def run_task(task: StepTask, *, step: Any = None, workspace: Any = None) -> TaskResult:
    """Run a step with retries (exponential backoff) and a timeout; never raises for its errors."""
    from loopml.store.workspace import Workspace
    from loopml.tracking.fluent import attached_run
    from loopml.validation import ContractViolationError, check_inputs, check_outputs

    own_workspace = workspace is None
    if workspace is None:
        workspace = Workspace.open(Path(task.workspace_root), **task.settings_overrides)
    started = time.perf_counter()
    attempts = 0
    try:
        with _on_path(task.sys_path):
            if step is None:
                step = load_step(task.step_identity)
            fn = getattr(step, "fn", step)
            while True:
                attempts += 1
                try:
                    with attached_run(task.step_run_id, workspace):
                        # Loaded inside the step's run, so dataset reads are its inputs.
                        arguments = _load_arguments(task, workspace)
                        check_inputs(getattr(step, "input_contract", None), arguments, task.node)
                        with _Alarm(task.timeout, task.node):
                            result = fn(**arguments)
                        check_outputs(
                            getattr(step, "output_contract", None),
                            result,
                            task.node,
                            outputs=getattr(step, "outputs", 1),
                        )
                    outputs = _save_outputs(result, step, task, workspace)
                    return TaskResult(tuple(outputs), attempts, _ms(started))
                except Exception as exc:
                    # A contract violation would fail the same way again: no retry.
                    if attempts <= task.retries and not isinstance(exc, ContractViolationError):
                        time.sleep(min(task.retry_delay * 2 ** (attempts - 1), 60.0))
                        continue
                    return TaskResult(
                        (),
                        attempts,
                        _ms(started),
                        f"{type(exc).__name__}: {exc}",
                        _user_traceback(exc),
                    )
    finally:
        if own_workspace:
            workspace.close()


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
