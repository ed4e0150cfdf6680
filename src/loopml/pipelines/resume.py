"""Reopening a recorded pipeline run: load its pipeline again, and resume it after a failure.

A pipeline run is a tracking run tagged ``loopml.kind=pipeline``; its tags name the pipeline
(``loopml.pipeline`` = ``module:qualname``, ``loopml.pipeline.file``) and its parameters
(``loopml.pipeline.params``, canonical JSON). That is enough to trace the same DAG again, which
``resume``, ``reproduce`` and ``runs dag`` do.

Resume continues the *same* tracking run rather than starting a linked one, so that one run id
names one attempt at one result, however many times it had to be resumed:

- the run goes back to ``running`` (owned by this process: its pid, host and heartbeat);
- the step-run records of the steps that failed (or were left ``running`` by a crash) are
  removed from ``step_runs`` — they hold no outputs, cache entries or lineage — while their child
  tracking runs stay, ``failed``, as the history of the earlier attempt (tagged
  ``loopml.step.superseded=true``);
- every step that completed keeps its record and is reused as it is (even a ``cache=False`` step,
  and even if its code changed since: resuming finishes a run, it does not start a new one);
- the failed step and whatever follows it run again, recorded under the same run;
- the run ends ``finished`` or ``failed`` again, and its tag ``loopml.resumes`` counts the
  resumes. Its manifest is the one written when the run first ended.
"""

from __future__ import annotations

import json
import os
import socket
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import UserInputError
from loopml.pipelines.errors import PipelineError, StepFailedError
from loopml.pipelines.pipeline import Pipeline
from loopml.pipelines.runner import PipelineRun, RunOptions, StepResult

if TYPE_CHECKING:
    from loopml.store.workspace import Workspace
    from loopml.tracking.model import RunInfo
    from loopml.tracking.sql_store import SqlTrackingStore

__all__ = [
    "RecordedPipelineRun",
    "load_pipeline",
    "pipeline_params",
    "recorded_pipeline_run",
    "reload_pipeline",
    "resume_run",
    "session_workspace",
]

KIND_TAG = "loopml.kind"
PIPELINE_TAG = "loopml.pipeline"
FILE_TAG = "loopml.pipeline.file"
PARAMS_TAG = "loopml.pipeline.params"
EXECUTOR_TAG = "loopml.executor"
RESUMES_TAG = "loopml.resumes"


def load_pipeline(target: str) -> Pipeline:
    """The ``@pipeline`` named by ``path/to/flow.py:name`` (or ``module:name``)."""
    from loopml.pipelines.loader import load_target

    try:
        value = load_target(target)
    except SyntaxError as exc:
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else target
        raise UserInputError(f"{where}: syntax error: {exc.msg}") from None
    if not isinstance(value, Pipeline):
        name = type(value).__name__
        kind = (
            "a @step"
            if hasattr(value, "identity")
            else f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
        )
        raise UserInputError(
            f"{target} is {kind}, not a pipeline; decorate the function with @loopml.pipeline"
        )
    return value


@dataclass(frozen=True)
class RecordedPipelineRun:
    """A pipeline run as its tracking run recorded it."""

    info: RunInfo
    identity: str  # module:qualname
    file: str
    params: dict[str, Any]
    executor: str

    @property
    def id(self) -> str:
        """The run id."""
        return self.info.id


def recorded_pipeline_run(store: SqlTrackingStore, reference: str) -> RecordedPipelineRun:
    """The pipeline run named by an id or id prefix (a step's run names its pipeline's run)."""
    info = store.get_run(reference)
    if info.tags.get(KIND_TAG) == "step" and info.parent_run_id is not None:
        info = store.get_run(info.parent_run_id)
    if info.tags.get(KIND_TAG) != "pipeline" or PIPELINE_TAG not in info.tags:
        raise UserInputError(
            f"run {reference} is not a pipeline run; `loopml runs ls` lists runs, and "
            "`loopml run FILE.py:PIPELINE` makes one"
        )
    try:
        params = json.loads(info.tags.get(PARAMS_TAG, "{}"))
    except json.JSONDecodeError:
        raise PipelineError(f"run {reference} has unreadable parameters in its tags") from None
    return RecordedPipelineRun(
        info=info,
        identity=info.tags[PIPELINE_TAG],
        file=info.tags.get(FILE_TAG, ""),
        params=params if isinstance(params, dict) else {},
        executor=info.tags.get(EXECUTOR_TAG, "local"),
    )


def reload_pipeline(recorded: RecordedPipelineRun) -> Pipeline:
    """Import the recorded pipeline again, from its file (or its module when the file moved)."""
    _module, _, qualname = recorded.identity.partition(":")
    if recorded.file and Path(recorded.file).is_file():
        pipe = load_pipeline(f"{recorded.file}:{qualname}")
    else:
        try:
            pipe = load_pipeline(recorded.identity)
        except UserInputError:
            raise UserInputError(
                f"the pipeline of run {recorded.id[:8]} ({recorded.identity}) was defined in "
                f"{recorded.file or 'an unknown file'}, which no longer exists"
            ) from None
    if pipe.identity != recorded.identity:
        raise UserInputError(
            f"run {recorded.id[:8]} ran pipeline {recorded.identity}, but {recorded.file} now "
            f"defines it as {pipe.identity}; run it from where it was run"
        )
    return pipe


def pipeline_params(pipe: Pipeline, recorded: RecordedPipelineRun) -> dict[str, Any]:
    """The recorded parameters, with ``Path`` parameters turned back into paths."""
    try:
        hints = typing.get_type_hints(pipe.fn)
    except Exception:
        hints = {}
    values = dict(recorded.params)
    for name, parameter in pipe.signature.parameters.items():
        if name not in values or not isinstance(values[name], str):
            continue
        annotation = hints.get(name, parameter.annotation)
        if annotation is Path or isinstance(parameter.default, Path):
            values[name] = Path(values[name])
    return {k: v for k, v in values.items() if k in pipe.signature.parameters}


def _reopen(store: SqlTrackingStore, recorded: RecordedPipelineRun) -> None:
    """Take the run over: running again, owned by this process; failed step records dropped."""
    from sqlalchemy import delete, or_, select, update

    from loopml.store.metadata.schema import lineage_edges, runs, step_outputs, step_runs
    from loopml.tracking.sql_store import now_ms

    run_id = recorded.id

    def write(conn: Any) -> list[str]:
        # Compare and set: of two resumes started at once, one takes the run over.
        taken = conn.execute(
            update(runs)
            .where(runs.c.id == run_id, runs.c.status.in_(("failed", "crashed", "killed")))
            .values(
                status="running",
                end_time=None,
                error_type=None,
                error_message=None,
                pid=os.getpid(),
                host=socket.gethostname(),
                heartbeat_at=now_ms(),
            )
        )
        if taken.rowcount != 1:
            raise UserInputError(f"run {recorded.id[:8]} is already being resumed or has finished")
        dropped = [
            str(r.id)
            for r in conn.execute(
                select(step_runs.c.id).where(
                    step_runs.c.pipeline_run_id == run_id,
                    step_runs.c.status.in_(("failed", "running")),
                )
            )
        ]
        if dropped:
            conn.execute(delete(step_outputs).where(step_outputs.c.step_run_id.in_(dropped)))
            conn.execute(
                delete(lineage_edges).where(
                    or_(
                        (lineage_edges.c.dst_kind == "step_run")
                        & lineage_edges.c.dst_id.in_(dropped),
                        (lineage_edges.c.src_kind == "step_run")
                        & lineage_edges.c.src_id.in_(dropped),
                    )
                )
            )
            conn.execute(delete(step_runs).where(step_runs.c.id.in_(dropped)))
        return dropped

    dropped: list[str] = store.metadata.run_write(write)
    for step_run_id in dropped:
        store.log_batch(step_run_id, tags=[("loopml.step.superseded", "true")])
        info = store.get_run(step_run_id)  # a step left running by a crash is reaped here
        if not info.status.terminal:
            from loopml.tracking.model import RunStatus

            store.set_status(step_run_id, RunStatus.KILLED, error_message="superseded by resume")


def resume_run(
    reference: str,
    *,
    workspace: Workspace,
    executor: str | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> PipelineRun:
    """Resume a failed pipeline run in place; raises ``StepFailedError`` if a step fails again.

    The executor defaults to the one the run used; the steps that run again use the cache as
    in a normal run.
    """
    from loopml.pipelines.pipeline import _share_manifest
    from loopml.pipelines.runner import run_graph
    from loopml.tracking.fluent import attached_run
    from loopml.tracking.model import RunStatus
    from loopml.tracking.sql_store import SqlTrackingStore

    store = SqlTrackingStore(workspace=workspace)
    recorded = recorded_pipeline_run(store, reference)
    status = recorded.info.status
    if status is RunStatus.RUNNING:
        raise UserInputError(f"run {reference} is still running; wait for it, or stop it first")
    if status is RunStatus.FINISHED:
        raise UserInputError(
            f"run {reference} finished; there is nothing to resume (`loopml run` runs it again)"
        )
    pipe = reload_pipeline(recorded)
    values = pipe.bind(pipeline_params(pipe, recorded))
    graph = pipe.trace(values)
    options = RunOptions(
        executor=executor or recorded.executor,
        workers=workers,
        resume_run_id=recorded.id,
        ray_address=ray_address,
        on_step=on_step,
    )

    _reopen(store, recorded)
    resumes = int(recorded.info.tags.get(RESUMES_TAG, "0") or 0) + 1
    store.log_batch(recorded.id, tags=[(RESUMES_TAG, str(resumes))])
    with attached_run(recorded.id, workspace) as active:
        writer = active._session.writer
        writer.activate(recorded.id)
        try:
            results, failure = run_graph(graph, active, workspace, options)
        except KeyboardInterrupt as exc:
            store.set_status(recorded.id, RunStatus.KILLED, error_type=type(exc).__name__)
            raise
        except BaseException as exc:
            store.set_status(
                recorded.id,
                RunStatus.FAILED,
                error_type=type(exc).__name__,
                error_message=str(exc)[:4000],
            )
            raise
        finally:
            writer.deactivate(recorded.id)
    final = RunStatus.FAILED if failure is not None else RunStatus.FINISHED
    store.set_status(
        recorded.id,
        final,
        error_type=type(failure).__name__ if failure is not None else None,
        error_message=str(failure)[:4000] if failure is not None else None,
    )
    _share_manifest(active, results)
    return _finish(graph, recorded.id, final.value, results, workspace, failure)


def _finish(
    graph: Any,
    run_id: str,
    status: str,
    results: list[StepResult],
    workspace: Workspace,
    failure: StepFailedError | None,
) -> PipelineRun:
    by_name = {r.name: r for r in results}
    outputs = [
        by_name[ref.node].outputs[ref.position]
        for ref in graph.outputs
        if ref.node in by_name and by_name[ref.node].outputs
    ]
    result = PipelineRun(run_id, status, results, graph, workspace.root, _outputs=outputs)
    if failure is not None:
        failure.pipeline_run = result  # type: ignore[attr-defined]
        raise failure
    return result


def session_workspace() -> Workspace:
    """The workspace of this process's tracking session (see ``tracking.session_workspace``)."""
    from loopml.tracking.fluent import session_workspace as tracked

    return tracked()
