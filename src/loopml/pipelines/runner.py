"""Running a traced pipeline: cache lookups, scheduling, recording, failure handling."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.pipelines.errors import PipelineDefinitionError, StepFailedError
from loopml.pipelines.execute import ArgSpec, StepTask, TaskResult, run_task
from loopml.pipelines.graph import Graph, Node
from loopml.pipelines.keys import cache_key, explain_miss, package_versions, step_code_hash
from loopml.pipelines.model import OutputRecord, StepRecord
from loopml.store.workspace import Workspace

if TYPE_CHECKING:
    from concurrent.futures import Future

    from loopml.pipelines.ray_executor import RayPool
    from loopml.pipelines.records import FinishedStep
    from loopml.tracking.fluent import ActiveRun
    from loopml.tracking.model import NewRun, RunStatus

__all__ = ["PipelineRun", "RunOptions", "StepResult", "plan", "run_graph"]


@dataclass(frozen=True)
class StepResult:
    """How one step went."""

    name: str
    status: str  # "ran", "cached" or "failed"
    duration: float  # seconds
    run_id: str
    outputs: tuple[OutputRecord, ...] = ()
    error: str | None = None
    reason: str = ""


@dataclass
class RunOptions:
    """How to run: executor, workers, cache, partial runs, resume."""

    executor: str = "local"
    workers: int = 1
    cache: bool = True
    only: str | None = None
    start_from: str | None = None
    resume_run_id: str | None = None
    ray_address: str | None = None
    on_step: Callable[[StepResult], None] | None = None


@dataclass
class PipelineRun:
    """The outcome of a pipeline run: ``id``, ``steps`` and the pipeline's ``outputs``."""

    id: str
    status: str
    steps: list[StepResult]
    graph: Graph
    workspace_root: Path
    _outputs: list[OutputRecord] = field(default_factory=list)
    _loaded: Any = None

    @property
    def outputs(self) -> Any:
        """The pipeline's return value, loaded from the store (a tuple for several)."""
        if self._loaded is None and self._outputs:
            from loopml.artifacts import materializer_by_name

            with Workspace.open(self.workspace_root) as workspace:
                values = []
                for out in self._outputs:
                    materializer = materializer_by_name(
                        out.materializer, workspace_dir=workspace.dir
                    )
                    if hasattr(materializer, "cache_dir"):
                        materializer.cache_dir = workspace.cache_dir("outputs")
                    values.append(materializer.load(out.digest, workspace.objects))
            self._loaded = values[0] if len(values) == 1 else tuple(values)
        return self._loaded

    def step(self, name: str) -> StepResult:
        """The result of one step by node name."""
        for result in self.steps:
            if result.name == name:
                return result
        raise KeyError(name)


@dataclass(frozen=True)
class PlannedStep:
    """What a dry run predicts for one step."""

    name: str
    action: str  # "cached" or "run"
    reason: str


def _input_part(
    node: Node, item: Any, done: dict[str, StepResult], workspace: Workspace
) -> tuple[dict[str, Any], ArgSpec, tuple[str, str, str] | None]:
    """The key part, the worker argument and the lineage edge of one input."""
    if item.kind == "output":
        out = done[item.node].outputs[item.position]
        part = {"kind": "output", "hash": out.digest}
        spec = ArgSpec(item.name, "output", digest=out.digest, materializer=out.materializer)
        return part, spec, ("object", out.digest, item.name)
    if item.kind == "data":
        from loopml.data.versioning import resolve

        _, version = resolve(workspace, item.value)
        part = {"kind": "data", "ref": item.value, "version": version.number, "hash": version.hash}
        edge = ("dataset_version", f"{version.dataset}@v{version.number}", item.name)
        return part, ArgSpec(item.name, "data", value=f"{version.dataset}@v{version.number}"), edge
    if item.kind == "path":
        digest = _path_hash(Path(item.value), workspace)
        return {"kind": "path", "hash": digest}, ArgSpec(item.name, "path", value=item.value), None
    return (
        {"kind": "value", "value": item.value},
        ArgSpec(item.name, "value", value=item.value),
        None,
    )


def _path_hash(path: Path, workspace: Workspace) -> str:
    from loopml.data.scan import scan_path
    from loopml.data.working import hash_working_files, stat_cache_for

    target = path if path.is_absolute() else Path.cwd() / path
    if not target.exists():
        raise PipelineDefinitionError(f"input path {path} does not exist")
    _, files = scan_path(target, shown=str(path))
    cache = stat_cache_for(workspace)
    hashed = hash_working_files(workspace, files, shown_root=str(path), cache=cache)
    hashed.remember(cache)
    return hashed.tree.digest


class _Context:
    """State shared while one pipeline run executes."""

    def __init__(self, workspace: Workspace, graph: Graph, run: ActiveRun, options: RunOptions):
        self.workspace = workspace
        self.graph = graph
        self.run = run
        self.options = options
        from loopml.pipelines.records import StepRecords

        self.records = StepRecords(workspace.sql)
        self.store = run._session.store
        self.done: dict[str, StepResult] = {}
        # Cached steps waiting to be recorded: written together, in one transaction, before
        # the next step runs and when the run ends (see ``flush``).
        self.pending: list[tuple[FinishedStep, str, NewRun]] = []
        self.sys_path = tuple(p for p in sys.path if p)
        self.previous: dict[str, StepRecord] = {}
        if options.resume_run_id is not None:
            for record in self.records.for_pipeline_run(options.resume_run_id):
                if record.status in ("ran", "cached") and record.outputs:
                    self.previous[record.node] = record

    def key_for(self, node: Node) -> tuple[str, dict[str, Any], list[ArgSpec], list[Any]]:
        parts: dict[str, Any] = {"inputs": {}}
        specs: list[ArgSpec] = []
        edges = []
        for item in node.inputs:
            part, spec, edge = _input_part(node, item, self.done, self.workspace)
            parts["inputs"][item.name] = part
            specs.append(spec)
            if edge is not None:
                edges.append(edge)
        parts["step"] = node.step.identity
        parts["code"] = step_code_hash(node.step.fn, self.workspace.root)
        parts["packages"] = package_versions(node.step.packages)
        parts["outputs"] = node.outputs
        if node.step.input_contract is not None or node.step.output_contract is not None:
            from loopml.validation import contract_fingerprint

            parts["contracts"] = [
                contract_fingerprint(node.step.input_contract),
                contract_fingerprint(node.step.output_contract),
            ]
        return cache_key(parts), parts, specs, edges

    def forced(self, node: Node) -> bool:
        if not self.options.cache or not node.step.cache:
            return True
        start = self.options.start_from
        return start is not None and node.name in self.graph.downstream_of(start)

    def _new_run(self, node: Node, parts: dict[str, Any], status: RunStatus, now: int) -> NewRun:
        """The tracking run of a step: a child of the pipeline's run, in its experiment."""
        from loopml.ids import new_id
        from loopml.tracking.model import NewRun, RunStatus

        info = self.run.info
        return NewRun(
            id=new_id(),
            experiment_id=self.store.experiment_id(info.experiment),
            name=node.name,
            status=status,
            start_time=now,
            end_time=None if status is RunStatus.RUNNING else now,
            parent_run_id=self.run.id,
            user=info.user,
            host=info.host,
            pid=info.pid,
            tags={"loopml.step": node.step.identity, "loopml.kind": "step"},
            params={i.name: str(i.value) for i in node.inputs if i.kind == "value"},
            inputs=_data_inputs(parts),
        )

    def begin(self, node: Node, key: str, parts: dict[str, Any]) -> str:
        """Record a step as running: its tracking run and its step record, in one commit."""
        from loopml.tracking.model import RunStatus
        from loopml.tracking.sql_store import now_ms

        self.flush()
        run = self._new_run(node, parts, RunStatus.RUNNING, now_ms())

        def write(sql: Any) -> None:
            self.store.insert_runs_tx(sql, [run])
            # Dataset versions read as inputs belong to the step's run and to the pipeline's
            # run, whether the step runs or comes from the cache.
            self.store.log_inputs_tx(sql, self.run.id, run.inputs)
            self.records.start_tx(
                sql,
                step_run_id=run.id,
                pipeline_run_id=self.run.id,
                node=node.name,
                step=node.step.identity,
                cache_key=key,
                code_hash=parts["code"],
                key_parts=parts,
            )

        self.store.db.write(write)
        return str(run.id)

    def reuse(
        self, node: Node, key: str, parts: dict[str, Any], edges: list[Any]
    ) -> StepResult | None:
        """A cached (or, when resuming, previously completed) result, if its outputs exist.

        Its records are not written at once but queued (see :meth:`flush`): a cached step's
        run is born finished, with its step record, outputs and lineage, in one commit.
        """
        from loopml.pipelines.records import FinishedStep
        from loopml.tracking.model import RunStatus
        from loopml.tracking.sql_store import now_ms

        source: StepRecord | None = None
        reason = ""
        if node.name in self.previous:
            source, reason = self.previous[node.name], "completed in the resumed run"
        elif not self.forced(node):
            source, reason = self.records.cached(key), "cache hit"
        if source is None or not source.outputs:
            return None
        if self.workspace.objects.missing({o.digest for o in source.outputs}):
            return None
        if node.name in self.previous and source.pipeline_run_id == self.run.id:
            # Resuming in place: the step's record in this very run stands as it is.
            return StepResult(node.name, "cached", 0.0, source.id, source.outputs, reason=reason)
        now = now_ms()
        run = self._new_run(node, parts, RunStatus.FINISHED, now)
        step = FinishedStep(
            step_run_id=run.id,
            pipeline_run_id=self.run.id,
            node=node.name,
            step=node.step.identity,
            cache_key=key,
            code_hash=parts["code"],
            key_parts=parts,
            status="cached",
            started_at=now,
            duration_ms=0,
            attempts=0,
            outputs=tuple(source.outputs),
            lineage=tuple(edges),
        )
        self.pending.append((step, source.id, run))
        return StepResult(node.name, "cached", 0.0, run.id, source.outputs, reason=reason)

    def flush(self) -> None:
        """Record the queued cached steps, all in one transaction.

        Each gets its finished tracking run (tags, params, dataset inputs, and the metrics of
        the run that computed its outputs), its step record, outputs and lineage edges; the
        pipeline's run gets the dataset versions they read.
        """
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        from dataclasses import replace

        from loopml.tracking.model import Metric

        def write(sql: Any) -> None:
            carried = self.store.latest_metrics_tx(sql, [source for _, source, _ in pending])
            runs = []
            for step, source, run in pending:
                # A cached step has the metrics of the run that computed its outputs.
                metrics = tuple(
                    Metric(name, value, 0, step.started_at)
                    for name, value in carried.get(source, {}).items()
                    if name != "duration_s" and not name.startswith("system/")
                )
                runs.append(
                    replace(run, metrics=metrics, tags={**run.tags, "loopml.step.status": "cached"})
                )
            self.store.insert_runs_tx(sql, runs)
            self.store.log_inputs_tx(sql, self.run.id, [i for run in runs for i in run.inputs])
            self.records.insert_finished_tx(sql, [step for step, _, _ in pending])

        self.store.db.write(write)

    def task(self, node: Node, run_id: str, specs: list[ArgSpec]) -> StepTask:
        return StepTask(
            workspace_root=str(self.workspace.root),
            step_identity=node.step.identity,
            node=node.name,
            step_run_id=run_id,
            arguments=tuple(specs),
            sys_path=self.sys_path,
            allow_pickle=node.step.pickle,
            timeout=node.step.timeout,
            retries=node.step.retries,
            retry_delay=node.step.retry_delay,
        )

    def complete(
        self, node: Node, run_id: str, key: str, result: TaskResult, edges: list[Any]
    ) -> StepResult:
        """Record how a step that ran went: its step record and its run, in one commit."""
        from loopml.tracking.model import Metric, RunStatus

        if result.error is None:

            def succeeded(sql: Any) -> None:
                self.records.finish_tx(
                    sql,
                    run_id,
                    status="ran",
                    duration_ms=result.duration_ms,
                    attempts=result.attempts,
                    outputs=list(result.outputs),
                    cache_key=key if node.step.cache else None,
                    step=node.step.identity,
                    lineage=edges,
                )
                self.store.log_batch_tx(
                    sql,
                    run_id,
                    metrics=[
                        Metric("duration_s", result.duration_ms / 1000, 0, int(time.time() * 1000))
                    ],
                    tags=[("loopml.step.status", "ran")],
                )
                self.store.set_status_tx(sql, run_id, RunStatus.FINISHED)

            self.store.db.write(succeeded)
            return StepResult(node.name, "ran", result.duration_ms / 1000, run_id, result.outputs)
        message = f"{result.error}\n{result.user_traceback or ''}"
        error_type, _, error_text = (result.error or "").partition(": ")

        def failed(sql: Any) -> None:
            self.records.finish_tx(
                sql,
                run_id,
                status="failed",
                duration_ms=result.duration_ms,
                attempts=result.attempts,
                outputs=[],
                error=message,
            )
            self.store.log_batch_tx(sql, run_id, tags=[("loopml.step.status", "failed")])
            self.store.set_status_tx(
                sql, run_id, RunStatus.FAILED, error_type=error_type, error_message=error_text
            )

        self.store.db.write(failed)
        return StepResult(node.name, "failed", result.duration_ms / 1000, run_id, (), error=message)


def _data_inputs(parts: dict[str, Any]) -> tuple[Any, ...]:
    """The dataset versions among a step's key parts, as tracking inputs."""
    from loopml.tracking.model import InputRecord

    return tuple(
        InputRecord(p["ref"].partition("@")[0], int(p["version"]), p["hash"])
        for p in parts["inputs"].values()
        if p.get("kind") == "data"
    )


def _selected_nodes(graph: Graph, options: RunOptions) -> list[str]:
    for name in (options.only, options.start_from):
        if name is not None and name not in graph.nodes:
            known = ", ".join(graph.nodes)
            raise PipelineDefinitionError(
                f"no step named {name!r} in this pipeline; steps: {known}"
            )
    if options.only is not None:
        return sorted(graph.upstream_of(options.only), key=list(graph.nodes).index)
    return list(graph.nodes)


def run_graph(
    graph: Graph, run: ActiveRun, workspace: Workspace, options: RunOptions
) -> tuple[list[StepResult], StepFailedError | None]:
    """Execute the graph in the pipeline's tracking run; returns results and the first failure."""
    context = _Context(workspace, graph, run, options)
    wanted = _selected_nodes(graph, options)
    results: list[StepResult] = []
    failure: StepFailedError | None = None
    pending = list(wanted)
    running: dict[Future[TaskResult], tuple[Node, str, str, list[Any]]] = {}
    pool = (
        _make_pool(options, workspace) if options.workers > 1 or options.executor == "ray" else None
    )

    def finish(result: StepResult) -> None:
        nonlocal failure
        context.done[result.name] = result
        results.append(result)
        if options.on_step is not None:
            options.on_step(result)
        if result.status == "failed" and failure is None:
            failure = StepFailedError(
                result.name, (result.error or "").split("\n", 1)[0], result.error or ""
            )

    try:
        while pending or running:
            ready = [
                n
                for n in pending
                if all(
                    up in context.done and context.done[up].status != "failed"
                    for up in graph.nodes[n].upstream
                )
            ]
            blocked = [
                n
                for n in pending
                if any(
                    up in context.done and context.done[up].status == "failed"
                    for up in graph.nodes[n].upstream
                )
            ]
            for name in blocked:
                pending.remove(name)
            for name in ready:
                if failure is not None:
                    break
                if options.only is not None and name != options.only and name not in context.done:
                    node = graph.nodes[name]
                    key, parts, _specs, edges = context.key_for(node)
                    reused = context.reuse(node, key, parts, edges)
                    if reused is None:
                        raise PipelineDefinitionError(
                            f"--only {options.only} needs the outputs of {name!r}, which has "
                            "not run with these inputs; run the pipeline without --only first"
                        )
                    pending.remove(name)
                    finish(reused)
                    continue
                pending.remove(name)
                node = graph.nodes[name]
                key, parts, specs, edges = context.key_for(node)
                reused = context.reuse(node, key, parts, edges)
                if reused is not None:
                    finish(reused)
                    continue
                run_id = context.begin(node, key, parts)
                task = context.task(node, run_id, specs)
                if pool is None:
                    finish(
                        context.complete(
                            node,
                            run_id,
                            key,
                            run_task(task, step=node.step, workspace=workspace),
                            edges,
                        )
                    )
                else:
                    running[pool.submit(task)] = (node, run_id, key, edges)
            if running:
                from concurrent.futures import FIRST_COMPLETED, wait

                context.flush()  # cached steps are recorded before waiting on workers
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    node, run_id, key, edges = running.pop(future)
                    finish(context.complete(node, run_id, key, _result_of(future, node), edges))
            elif failure is not None:
                break
            elif pending and not ready:
                break  # everything left depends on a failed step
    finally:
        try:
            context.flush()
        finally:
            if pool is not None:
                pool.shutdown()
    return results, failure


def _result_of(future: Future[TaskResult], node: Node) -> TaskResult:
    try:
        return future.result()
    except Exception as exc:
        return TaskResult(
            (),
            1,
            0,
            f"{type(exc).__name__}: {exc}",
            f"the worker running {node.name!r} failed: {exc}",
        )


class _Pool:
    def submit(self, task: StepTask) -> Future[TaskResult]:
        raise NotImplementedError

    def shutdown(self) -> None:
        raise NotImplementedError


class _ProcessPool(_Pool):
    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        )

    def submit(self, task: StepTask) -> Future[TaskResult]:
        return self.pool.submit(run_task, task)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _make_pool(options: RunOptions, workspace: Workspace) -> _Pool | RayPool:
    if options.executor == "ray":
        from loopml.pipelines.ray_executor import RayPool

        return RayPool(workspace, options.ray_address)
    if options.executor != "local":
        raise PipelineDefinitionError(f"unknown executor {options.executor!r}; use local or ray")
    return _ProcessPool(options.workers)


def plan(graph: Graph, workspace: Workspace, options: RunOptions) -> list[PlannedStep]:
    """What a run would do, per step, and why — without running anything."""
    from loopml.pipelines.records import StepRecords

    records = StepRecords(workspace.sql)
    done: dict[str, StepResult] = {}
    planned: list[PlannedStep] = []
    for name in _selected_nodes(graph, options):
        node = graph.nodes[name]
        unknown = [up for up in node.upstream if up not in done]
        if unknown:
            planned.append(PlannedStep(name, "run", f"upstream {unknown[0]} runs"))
            continue
        parts: dict[str, Any] = {"inputs": {}}
        for item in node.inputs:
            part, _spec, _edge = _input_part(node, item, done, workspace)
            parts["inputs"][item.name] = part
        parts["step"] = node.step.identity
        parts["code"] = step_code_hash(node.step.fn, workspace.root)
        parts["packages"] = package_versions(node.step.packages)
        parts["outputs"] = node.outputs
        if node.step.input_contract is not None or node.step.output_contract is not None:
            from loopml.validation import contract_fingerprint

            parts["contracts"] = [
                contract_fingerprint(node.step.input_contract),
                contract_fingerprint(node.step.output_contract),
            ]
        key = cache_key(parts)
        forced = (
            not options.cache
            or not node.step.cache
            or (options.start_from is not None and name in graph.downstream_of(options.start_from))
        )
        hit = None if forced else records.cached(key)
        if (
            hit is not None
            and hit.outputs
            and not workspace.objects.missing({o.digest for o in hit.outputs})
        ):
            planned.append(PlannedStep(name, "cached", "same code, inputs and parameters"))
            done[name] = StepResult(name, "cached", 0.0, hit.id, hit.outputs)
            continue
        if forced:
            reason = (
                "cache off for this step"
                if not node.step.cache
                else "forced (--no-cache or --from)"
            )
        else:
            previous = records.previous(node.step.identity, name, None)
            reason = explain_miss(parts, previous.key_parts if previous else None)
        planned.append(PlannedStep(name, "run", reason))
    return planned


def params_json(params: dict[str, Any]) -> str:
    """Pipeline parameters as stored on the run (for resume and reproduce)."""
    return json.dumps(params, sort_keys=True, default=str)
