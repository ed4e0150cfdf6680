"""The DAG of a recorded pipeline run: each node, how it went, and what it read from.

Everything comes from the records (``step_runs`` and the digests in their key parts): a node's
upstream nodes are the nodes of the same run whose outputs it read. Nodes that never started
(blocked by a failure, or left out by ``--only``) have no record; when the pipeline can still
be imported they are added from a fresh trace as ``not run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from loopml.pipelines.records import StepRecords

if TYPE_CHECKING:
    from loopml.pipelines.resume import RecordedPipelineRun
    from loopml.store.workspace import Workspace

__all__ = ["DagNode", "PipelineDag", "pipeline_dag"]


@dataclass(frozen=True)
class DagNode:
    """One node of a run's DAG."""

    name: str
    status: str  # "ran", "cached", "failed", "running" or "not run"
    duration_ms: int | None
    upstream: tuple[str, ...]
    step: str
    step_run_id: str | None
    depth: int = 0


@dataclass(frozen=True)
class PipelineDag:
    """A pipeline run's nodes in topological (start) order."""

    run_id: str
    pipeline: str
    status: str
    nodes: tuple[DagNode, ...]


def pipeline_dag(workspace: Workspace, reference: str, *, trace: bool = True) -> PipelineDag:
    """The DAG of the pipeline run named by ``reference`` (an id or unique id prefix)."""
    from loopml.pipelines.resume import recorded_pipeline_run
    from loopml.tracking.sql_store import SqlTrackingStore

    store = SqlTrackingStore(workspace=workspace)
    recorded = recorded_pipeline_run(store, reference)
    records = StepRecords(workspace.sql).for_pipeline_run(recorded.id)
    producers: dict[str, str] = {}
    for record in records:
        for out in record.outputs:
            producers.setdefault(out.digest, record.node)
    found: list[DagNode] = []
    for record in records:
        upstream: list[str] = []
        for part in record.key_parts.get("inputs", {}).values():
            if not isinstance(part, dict) or part.get("kind") != "output":
                continue
            producer = producers.get(str(part.get("hash")))
            if producer is not None and producer != record.node and producer not in upstream:
                upstream.append(producer)
        found.append(
            DagNode(
                record.node,
                record.status,
                record.duration_ms,
                tuple(upstream),
                record.step,
                record.id,
            )
        )
    if trace:
        found = _add_unrecorded(found, recorded)
    depth: dict[str, int] = {}
    nodes = []
    for node in found:
        depth[node.name] = 1 + max((depth.get(u, 0) for u in node.upstream), default=-1)
        nodes.append(
            DagNode(
                node.name,
                node.status,
                node.duration_ms,
                node.upstream,
                node.step,
                node.step_run_id,
                depth[node.name],
            )
        )
    return PipelineDag(recorded.id, recorded.identity, recorded.info.status.value, tuple(nodes))


def _add_unrecorded(found: list[DagNode], recorded: RecordedPipelineRun) -> list[DagNode]:
    """Nodes of the traced graph that have no record, placed after their upstream nodes."""
    from loopml.pipelines.resume import pipeline_params, reload_pipeline

    try:
        pipe = reload_pipeline(recorded)
        graph = pipe.trace(pipe.bind(pipeline_params(pipe, recorded)))
    except Exception:  # the code moved or changed too much: show what was recorded
        return found
    known = {node.name for node in found}
    if known - set(graph.nodes):
        return found  # the pipeline changed shape since: its trace would mislead
    result = list(found)
    for name, node in graph.nodes.items():
        if name in known:
            continue
        result.append(
            DagNode(name, "not run", None, tuple(node.upstream), node.step.identity, None)
        )
    # Keep a topological order: recorded nodes (start order), then the rest in call order.
    return result
