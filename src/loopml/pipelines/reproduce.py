"""``reproduce``: run a recorded pipeline run again, cache off, and compare every output.

The pipeline is loaded from the run's tags with the run's parameters; dataset inputs are pinned
to the exact versions the run read (``sales@latest`` may name a newer version today). The step
code must still hash as recorded — otherwise the reproduction would prove nothing — unless the
caller forces it. Every output of every recorded node is then compared by digest and, where
they differ, by content: DataFrames (shape, columns, dtypes, differing cells), JSON values
(changed keys and values), arrays, and scikit-learn models (parameters, learned state).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.pipelines.errors import PipelineError
from loopml.pipelines.pipeline import Pipeline
from loopml.pipelines.records import StepRecords

if TYPE_CHECKING:
    from loopml.pipelines.graph import Graph
    from loopml.pipelines.model import StepRecord
    from loopml.pipelines.runner import StepResult
    from loopml.store.workspace import Workspace
    from loopml.tracking.sql_store import SqlTrackingStore

__all__ = [
    "CodeChange",
    "CodeChangedError",
    "MetricsComparison",
    "OutputComparison",
    "Reproduction",
    "describe_difference",
    "reproduce_run",
]

REPRODUCTION_TAG = "loopml.reproduction_of"
_MAX_LINES = 8


class CodeChangedError(PipelineError):
    """The code of the recorded steps changed since the run; reproducing would prove nothing."""


@dataclass(frozen=True)
class CodeChange:
    """A node whose step code (or identity) is not what the run recorded."""

    node: str
    recorded: str | None  # code hash, None: the node is new
    current: str | None  # code hash, None: the node is gone
    what: str  # "code changed", "step removed", "step is now …"


@dataclass(frozen=True)
class OutputComparison:
    """One output of one node, original against reproduced."""

    node: str
    position: int
    materializer: str
    original: str
    reproduced: str | None
    details: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        """Byte for byte the same object."""
        return self.original == self.reproduced


@dataclass(frozen=True)
class MetricsComparison:
    """The metrics a step logged, original against reproduced (``duration_s`` left out)."""

    node: str
    original: dict[str, float]
    reproduced: dict[str, float]
    details: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        """The same metrics with the same values."""
        return not self.details


@dataclass(frozen=True)
class Reproduction:
    """What ``reproduce`` did and found."""

    original_id: str
    reproduced_id: str
    code_changes: tuple[CodeChange, ...]
    notes: tuple[str, ...]
    outputs: tuple[OutputComparison, ...]
    metrics: tuple[MetricsComparison, ...] = ()

    @property
    def identical(self) -> bool:
        """Every output reproduced byte for byte, and every logged metric exactly."""
        return all(o.identical for o in self.outputs) and all(m.identical for m in self.metrics)


class _PinnedPipeline(Pipeline):
    """The recorded pipeline with its dataset inputs pinned to the versions the run read."""

    def __init__(self, base: Pipeline, pins: dict[tuple[str, str], str]) -> None:
        super().__init__(base.fn, name=base.name)
        self.pins = pins

    def trace(self, params: dict[str, Any]) -> Graph:
        graph = super().trace(params)
        for node in graph.nodes.values():
            node.inputs = [
                dataclasses.replace(item, value=self.pins[(node.name, item.name)])
                if item.kind == "data" and (node.name, item.name) in self.pins
                else item
                for item in node.inputs
            ]
        return graph


def check_code(graph: Graph, records: list[StepRecord], project_root: Any) -> list[CodeChange]:
    """Recorded nodes whose step is gone, renamed, or hashes differently now."""
    from loopml.pipelines.keys import step_code_hash

    changes = []
    for record in records:
        node = graph.nodes.get(record.node)
        if node is None:
            changes.append(CodeChange(record.node, record.code_hash, None, "step removed"))
            continue
        if node.step.identity != record.step:
            changes.append(
                CodeChange(record.node, record.code_hash, None, f"now runs {node.step.identity}")
            )
            continue
        current = step_code_hash(node.step.fn, project_root)
        if current != record.code_hash:
            changes.append(CodeChange(record.node, record.code_hash, current, "code changed"))
    return changes


def _pins(workspace: Workspace, records: list[StepRecord]) -> dict[tuple[str, str], str]:
    """``(node, input) → NAME@vN`` of every dataset version the run read."""
    store = StepRecords(workspace.sql)
    pins = {}
    for record in records:
        for kind, ident, role in store.sources_of("step_run", record.id):
            if kind == "dataset_version":
                pins[(record.node, role)] = ident
    return pins


def reproduce_run(
    reference: str,
    *,
    workspace: Workspace,
    force: bool = False,
    executor: str = "local",
    workers: int = 1,
    on_step: Callable[[StepResult], None] | None = None,
    on_code_change: Callable[[list[CodeChange]], None] | None = None,
) -> Reproduction:
    """Re-execute a pipeline run into a new run with the cache off; compare every output.

    Raises ``CodeChangedError`` when the code of a recorded step changed, unless ``force``
    (then ``on_code_change`` hears of it before anything runs).
    """
    from loopml.pipelines.resume import pipeline_params, recorded_pipeline_run, reload_pipeline
    from loopml.pipelines.runner import RunOptions
    from loopml.tracking.sql_store import SqlTrackingStore

    store = SqlTrackingStore(workspace=workspace)
    recorded = recorded_pipeline_run(store, reference)
    records = StepRecords(workspace.sql).for_pipeline_run(recorded.id)
    if not records:
        raise PipelineError(f"run {reference} recorded no steps; there is nothing to reproduce")
    base = reload_pipeline(recorded)
    pipe = _PinnedPipeline(base, _pins(workspace, records))
    params = pipe.bind(pipeline_params(pipe, recorded))
    changes = check_code(pipe.trace(params), records, workspace.root)
    if changes and not force:
        listed = ", ".join(f"{c.node} ({c.what})" for c in changes)
        raise CodeChangedError(
            f"the code differs from run {reference}: {listed}; check out the code the run used, "
            "or pass --force to run the current code anyway"
        )
    if changes and on_code_change is not None:
        on_code_change(changes)
    options = RunOptions(executor=executor, workers=workers, cache=False, on_step=on_step)
    from loopml.pipelines.errors import StepFailedError

    try:
        result = pipe.run(params, workspace=workspace, options=options)
    except StepFailedError as exc:
        failed_run = getattr(exc, "pipeline_run", None)
        if failed_run is not None:
            store.log_batch(failed_run.id, tags=[(REPRODUCTION_TAG, recorded.id)])
        raise
    store.log_batch(result.id, tags=[(REPRODUCTION_TAG, recorded.id)])
    fresh = StepRecords(workspace.sql).for_pipeline_run(result.id)
    outputs = compare_outputs(workspace, records, fresh)
    metrics = compare_metrics(store, records, fresh)
    return Reproduction(
        recorded.id,
        result.id,
        tuple(changes),
        tuple(_notes(records, fresh)),
        tuple(outputs),
        tuple(metrics),
    )


def _notes(original: list[StepRecord], fresh: list[StepRecord]) -> list[str]:
    """Differences in what went in (files on disk, package versions) that explain outputs."""
    notes = []
    by_node = {r.node: r for r in fresh}
    for record in original:
        other = by_node.get(record.node)
        if other is None:
            continue
        old_inputs = record.key_parts.get("inputs", {})
        for name, part in other.key_parts.get("inputs", {}).items():
            if not isinstance(part, dict) or part.get("kind") not in ("path", "data"):
                continue
            before = old_inputs.get(name, {})
            if isinstance(before, dict) and before.get("hash") != part.get("hash"):
                what = "the file or folder" if part["kind"] == "path" else "the dataset version"
                notes.append(f"{record.node}: input {name}: {what} it read has changed since")
        old_packages = record.key_parts.get("packages", {})
        for name, version in other.key_parts.get("packages", {}).items():
            if old_packages.get(name) != version:
                notes.append(
                    f"{record.node}: package {name} {old_packages.get(name, 'missing')} → {version}"
                )
    return notes


def compare_outputs(
    workspace: Workspace, original: list[StepRecord], fresh: list[StepRecord]
) -> list[OutputComparison]:
    """Each output of each original node against the reproduction's, node by node."""
    by_node = {r.node: r for r in fresh}
    compared = []
    for record in original:
        other = by_node.get(record.node)
        for position, out in enumerate(record.outputs):
            new = (
                other.outputs[position]
                if other is not None and position < len(other.outputs)
                else None
            )
            if new is None:
                details: tuple[str, ...] = ("not produced by the reproduction",)
            elif new.digest == out.digest:
                details = ()
            else:
                details = tuple(
                    describe_difference(workspace, out.materializer, out.digest, new.digest)
                )
            compared.append(
                OutputComparison(
                    record.node,
                    position,
                    out.materializer,
                    out.digest,
                    new.digest if new is not None else None,
                    details,
                )
            )
    return compared


def compare_metrics(
    store: SqlTrackingStore, original: list[StepRecord], fresh: list[StepRecord]
) -> list[MetricsComparison]:
    """The latest metrics each step logged, for the steps that ran in the original run.

    A step the original run took from the cache logged nothing there, so it is not compared.
    """
    by_node = {r.node: r for r in fresh}
    compared = []
    for record in original:
        other = by_node.get(record.node)
        if record.status != "ran" or other is None or other.status != "ran":
            continue
        before = _logged(store, record.id)
        after = _logged(store, other.id)
        if not before and not after:
            continue
        details = [
            f"{key}: {_short(before.get(key))} → {_short(after.get(key))}"
            for key in sorted(set(before) | set(after))
            if not _same_number(before.get(key), after.get(key))
        ]
        compared.append(MetricsComparison(record.node, before, after, tuple(_limited(details))))
    return compared


def _logged(store: SqlTrackingStore, step_run_id: str) -> dict[str, float]:
    metrics = store.get_run(step_run_id).metrics
    return {k: v for k, v in metrics.items() if k != "duration_s"}


def _same_number(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


# -- how two stored values differ -----------------------------------------------------------


def describe_difference(
    workspace: Workspace, materializer_name: str, original: str, reproduced: str
) -> list[str]:
    """Lines that say how two stored outputs of one materializer differ."""
    from loopml.artifacts import materializer_by_name

    describe = _DESCRIBERS.get(materializer_name)
    if describe is None:
        return [_sizes(workspace, original, reproduced)]
    try:
        materializer = materializer_by_name(materializer_name, workspace_dir=workspace.dir)
        before = materializer.load(original, workspace.objects)
        after = materializer.load(reproduced, workspace.objects)
    except Exception as exc:  # an unreadable object: say so instead of failing the report
        return [f"cannot load to compare: {type(exc).__name__}: {exc}"]
    lines = describe(before, after)
    return _limited(lines) or ["same values; the stored bytes differ (metadata or order)"]


def _sizes(workspace: Workspace, original: str, reproduced: str) -> str:
    try:
        before = len(workspace.objects.read_bytes(original))
        after = len(workspace.objects.read_bytes(reproduced))
    except Exception:
        return "content differs"
    return f"content differs ({before} bytes → {after} bytes)"


def _limited(lines: list[str]) -> list[str]:
    if len(lines) <= _MAX_LINES:
        return lines
    return [*lines[:_MAX_LINES], f"… and {len(lines) - _MAX_LINES} more differences"]


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _frame_differences(before: Any, after: Any) -> list[str]:
    lines = []
    if before.shape != after.shape:
        lines.append(
            f"shape {before.shape[0]}x{before.shape[1]} → {after.shape[0]}x{after.shape[1]}"
        )
    old_columns, new_columns = list(before.columns), list(after.columns)
    removed = [c for c in old_columns if c not in new_columns]
    added = [c for c in new_columns if c not in old_columns]
    if removed:
        lines.append("columns removed: " + ", ".join(map(str, removed)))
    if added:
        lines.append("columns added: " + ", ".join(map(str, added)))
    common = [c for c in old_columns if c in new_columns]
    if not removed and not added and old_columns != new_columns:
        lines.append("column order changed")
    for column in common:
        if before[column].dtype != after[column].dtype:
            lines.append(f"column {column}: dtype {before[column].dtype} → {after[column].dtype}")
    if len(before) != len(after):
        return lines
    if not before.index.equals(after.index):
        lines.append("index differs")
    counts = {}
    for column in common:
        left = before[column].reset_index(drop=True)
        right = after[column].reset_index(drop=True)
        try:
            same = (left == right) | (left.isna() & right.isna())
            differing = int((~same.astype(bool)).sum())
        except (TypeError, ValueError):
            differing = int(sum(a != b for a, b in zip(left, right, strict=True)))
        if differing:
            counts[column] = differing
    if counts:
        cells = len(before) * len(common)
        per_column = ", ".join(f"{c}: {n}" for c, n in counts.items())
        lines.append(f"{sum(counts.values())} of {cells} cells differ ({per_column})")
        for column in list(counts)[:3]:
            left, right = before[column], after[column]
            try:
                delta = (left.reset_index(drop=True) - right.reset_index(drop=True)).abs().max()
                if isinstance(delta, int | float) and not math.isnan(float(delta)):
                    lines.append(f"column {column}: largest absolute difference {delta:.6g}")
            except (TypeError, ValueError):
                pass
    return lines


def _json_differences(before: Any, after: Any, path: str = "") -> list[str]:
    where = path or "value"
    if isinstance(before, dict) and isinstance(after, dict):
        lines = []
        for key in before:
            if key not in after:
                lines.append(f"{path}{key}: removed (was {_short(before[key])})")
        for key in after:
            if key not in before:
                lines.append(f"{path}{key}: added ({_short(after[key])})")
        for key in before:
            if key in after:
                lines += _json_differences(before[key], after[key], f"{path}{key}.")
        return lines
    if isinstance(before, list) and isinstance(after, list):
        lines = []
        if len(before) != len(after):
            lines.append(f"{where.rstrip('.')}: length {len(before)} → {len(after)}")
        for index, (a, b) in enumerate(zip(before, after, strict=False)):
            lines += _json_differences(a, b, f"{path.rstrip('.')}[{index}].")
        return lines
    if before == after or (
        isinstance(before, float)
        and isinstance(after, float)
        and math.isnan(before)
        and math.isnan(after)
    ):
        return []
    return [f"{where.rstrip('.')}: {_short(before)} → {_short(after)}"]


def _array_differences(before: Any, after: Any) -> list[str]:
    import numpy as np

    lines = []
    if before.shape != after.shape:
        lines.append(f"shape {before.shape} → {after.shape}")
    if before.dtype != after.dtype:
        lines.append(f"dtype {before.dtype} → {after.dtype}")
    if before.shape == after.shape:
        if before.dtype.kind in "fc" and after.dtype.kind in "fc":
            differing = ~((before == after) | (np.isnan(before) & np.isnan(after)))
        else:
            differing = before != after
        count = int(np.count_nonzero(differing))
        if count:
            lines.append(f"{count} of {before.size} elements differ")
            if before.dtype.kind in "iufc" and after.dtype.kind in "iufc":
                delta = np.nanmax(np.abs(before.astype(float) - after.astype(float)))
                lines.append(f"largest absolute difference {float(delta):.6g}")
    return lines


def _model_differences(before: Any, after: Any) -> list[str]:
    lines = []
    if type(before) is not type(after):
        return [f"model type {type(before).__name__} → {type(after).__name__}"]
    old_params, new_params = before.get_params(deep=False), after.get_params(deep=False)
    for key in sorted(set(old_params) | set(new_params)):
        if repr(old_params.get(key)) != repr(new_params.get(key)):
            lines.append(
                f"parameter {key}: {_short(old_params.get(key))} → {_short(new_params.get(key))}"
            )
    if not lines:
        lines.append(f"same {type(before).__name__} parameters; the learned state differs")
    return lines


_DESCRIBERS: dict[str, Callable[[Any, Any], list[str]]] = {
    "parquet": _frame_differences,
    "json": _json_differences,
    "npy": _array_differences,
    "skops": _model_differences,
}
