"""``@pipeline``: a function that composes steps; calling it traces the DAG, then runs it."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from loopml.pipelines.errors import PipelineDefinitionError
from loopml.pipelines.graph import Graph, OutputRef
from loopml.pipelines.runner import PipelineRun, PlannedStep, RunOptions, plan, run_graph
from loopml.pipelines.step import current_graph
from loopml.store.workspace import Workspace

__all__ = ["Pipeline", "pipeline"]

F = TypeVar("F", bound=Callable[..., Any])


class Pipeline:
    """A pipeline definition. ``pipe(**params)`` runs it and returns the ``PipelineRun``."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    @property
    def identity(self) -> str:
        """``module:qualname`` of the pipeline function."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    def bind(self, params: dict[str, Any]) -> dict[str, Any]:
        """The full parameter set: defaults plus ``params``; unknown names are an error."""
        try:
            bound = self.signature.bind(**params)
        except TypeError as exc:
            known = ", ".join(self.signature.parameters) or "none"
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: {exc} (its parameters: {known})"
            ) from None
        bound.apply_defaults()
        values = dict(bound.arguments)
        for key, value in values.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                if not isinstance(value, Path):
                    raise PipelineDefinitionError(
                        f"pipeline parameter {key!r} must be JSON-able or a Path"
                    ) from None
        return values

    def trace(self, params: dict[str, Any]) -> Graph:
        """Build the DAG by calling the function with step calls recorded, not run."""
        graph = Graph()
        token = current_graph.set(graph)
        try:
            returned = self.fn(**params)
        finally:
            current_graph.reset(token)
        if not graph.nodes:
            raise PipelineDefinitionError(f"pipeline {self.name!r} calls no @step functions")
        refs = returned if isinstance(returned, tuple) else (returned,)
        graph.outputs = [r for r in refs if isinstance(r, OutputRef)]
        if returned is not None and len(graph.outputs) != len(refs):
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} must return step outputs (or nothing)"
            )
        return graph

    def run(
        self,
        params: dict[str, Any] | None = None,
        *,
        workspace: Workspace | None = None,
        options: RunOptions | None = None,
    ) -> PipelineRun:
        """Trace and run with explicit options (the CLI's entry point)."""
        from loopml.tracking.fluent import session_workspace, start_run
        from loopml.tracking.model import RunStatus

        options = options or RunOptions()
        values = self.bind(params or {})
        graph = self.trace(values)
        workspace = session_workspace(workspace)
        run = start_run(
            experiment=self.name,
            name=f"{self.name}",
            tags={
                "loopml.kind": "pipeline",
                "loopml.pipeline": self.identity,
                "loopml.pipeline.file": inspect.getsourcefile(self.fn) or "",
                "loopml.pipeline.params": json.dumps(values, sort_keys=True, default=str),
                "loopml.executor": options.executor,
            },
            system_metrics=False,
            workspace=workspace,
        )
        run.log_params({k: v for k, v in values.items()})
        status = RunStatus.FINISHED
        failure = None
        try:
            results, failure = run_graph(graph, run, workspace, options)
        except BaseException as exc:
            run.end(RunStatus.FAILED, exc)
            raise
        if failure is not None:
            status = RunStatus.FAILED
        _roll_up_metrics(run, results)
        run.end(status, failure)
        _share_manifest(run, results)
        outputs = []
        by_name = {r.name: r for r in results}
        for ref in graph.outputs:
            produced = by_name.get(ref.node)
            if produced is not None and produced.outputs:
                outputs.append(produced.outputs[ref.position])
        result = PipelineRun(run.id, status.value, results, graph, workspace.root, _outputs=outputs)
        if failure is not None:
            failure.pipeline_run = result  # type: ignore[attr-defined]
            raise failure
        return result

    def plan(
        self,
        params: dict[str, Any] | None = None,
        *,
        workspace: Workspace | None = None,
        options: RunOptions | None = None,
    ) -> list[PlannedStep]:
        """What a run would do per step, and why (``--dry-run``)."""
        values = self.bind(params or {})
        graph = self.trace(values)
        with _workspace(workspace) as ws:
            return plan(graph, ws, options or RunOptions())

    def __call__(self, **params: Any) -> PipelineRun:
        return self.run(params)


class _workspace:  # noqa: N801 - used as a context manager name
    def __init__(self, given: Workspace | None) -> None:
        self.given = given
        self.opened: Workspace | None = None

    def __enter__(self) -> Workspace:
        if self.given is not None:
            return self.given
        self.opened = Workspace.open()
        return self.opened

    def __exit__(self, *exc: object) -> None:
        if self.opened is not None:
            self.opened.close()


def _roll_up_metrics(run: Any, results: list[Any]) -> None:
    """Copy each step's final metrics onto the pipeline run, so runs compare at a glance.

    A metric logged by one step keeps its name; one logged by several steps is prefixed
    with the step (``train/loss``). Step durations stay on the steps.
    """
    store = run._session.store
    finals: dict[str, list[tuple[str, float]]] = {}
    kept = [result for result in results if result.status != "failed"]
    latest = store.latest_metrics_of([result.run_id for result in kept])
    for result in kept:
        for key, value in latest.get(result.run_id, {}).items():
            if key != "duration_s" and not key.startswith("system/"):
                finals.setdefault(key, []).append((result.name, value))
    rolled = {}
    for key, values in finals.items():
        if len(values) == 1:
            rolled[key] = values[0][1]
        else:
            rolled.update({f"{node}/{key}": value for node, value in values})
    if rolled:
        run.log_metrics(rolled)


def _share_manifest(run: Any, results: list[Any]) -> None:
    """Step runs share the pipeline run's manifest (they are light child runs)."""
    store = run._session.store
    store.share_manifest(run.id, [result.run_id for result in results])


def pipeline(fn: F | None = None, *, name: str | None = None) -> Any:
    """Make a function a pipeline: ``@pipeline`` or ``@pipeline(name="churn")``."""
    if fn is not None:
        return Pipeline(fn)

    def wrap(inner: F) -> Pipeline:
        return Pipeline(inner, name=name)

    return wrap
