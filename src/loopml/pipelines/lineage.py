"""Walking lineage back from an artifact: object ← step run ← objects / dataset versions.

Lineage is stored as generic edges (``lineage_edges``: ``dst`` was made from ``src``, with the
role ``src`` played). The walk follows edges of any kind; it knows how to describe objects,
step runs and dataset versions, and shows any other kind (model versions, runs …) by its id, so
that a new kind of edge appears in the tree without a change here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.errors import NotFoundError, UserInputError
from loopml.pipelines.records import StepRecords

if TYPE_CHECKING:
    from loopml.pipelines.model import StepRecord
    from loopml.store.workspace import Workspace

__all__ = ["LineageNode", "resolve_artifact", "walk_lineage"]

_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass
class LineageNode:
    """One vertex of the lineage tree with what is known about it."""

    kind: str  # "object", "step_run", "dataset_version", or any other edge kind
    ident: str
    role: str = ""  # the role it played for its parent in the tree ("output 0", "df" …)
    details: dict[str, Any] = field(default_factory=dict)
    sources: list[LineageNode] = field(default_factory=list)
    repeated: bool = False  # already shown higher up in the tree


def resolve_artifact(workspace: Workspace, artifact: str) -> tuple[str, str | None]:
    """``(object digest, step run id or None)`` for a digest (prefix) or ``RUN:NODE[:POS]``."""
    from sqlalchemy import select

    from loopml.store.metadata.schema import lineage_edges, step_outputs

    text = artifact.strip()
    if ":" in text:
        return _resolve_run_node(workspace, text)
    lowered = text.lower()
    if len(lowered) < 4 or not _HEX.match(lowered):
        raise UserInputError(
            f"{artifact!r} is neither an object digest (or a prefix of at least 4 hex "
            "characters) nor RUN_ID:NODE[:POSITION]"
        )
    with workspace.metadata.read() as conn:
        digests = {
            str(d)
            for (d,) in conn.execute(
                select(step_outputs.c.digest)
                .where(step_outputs.c.digest.like(f"{lowered}%"))
                .distinct()
                .limit(2)
            )
        }
        if not digests:
            digests = {
                str(d)
                for (d,) in conn.execute(
                    select(lineage_edges.c.dst_id)
                    .where(
                        lineage_edges.c.dst_kind == "object",
                        lineage_edges.c.dst_id.like(f"{lowered}%"),
                    )
                    .distinct()
                    .limit(2)
                )
            }
    if not digests:
        raise NotFoundError(f"no step output with digest {lowered}; no lineage is recorded for it")
    if len(digests) > 1:
        raise UserInputError(f"digest prefix {lowered} is ambiguous; give more characters")
    return digests.pop(), None


def _resolve_run_node(workspace: Workspace, text: str) -> tuple[str, str | None]:
    from loopml.pipelines.resume import recorded_pipeline_run
    from loopml.tracking.sql_store import SqlTrackingStore

    run_ref, _, rest = text.partition(":")
    node, _, position_text = rest.partition(":")
    try:
        position = int(position_text) if position_text else 0
    except ValueError:
        raise UserInputError(
            f"{text!r}: POSITION must be a number (0 for the first output)"
        ) from None
    recorded = recorded_pipeline_run(SqlTrackingStore(workspace=workspace), run_ref)
    records = StepRecords(workspace.sql).for_pipeline_run(recorded.id)
    by_node = {r.node: r for r in records}
    if node not in by_node:
        known = ", ".join(by_node) or "none"
        raise NotFoundError(f"run {run_ref} has no step {node!r}; its steps: {known}")
    record = by_node[node]
    if not record.outputs:
        raise NotFoundError(f"step {node!r} of run {run_ref} has no outputs ({record.status})")
    if not 0 <= position < len(record.outputs):
        raise UserInputError(
            f"step {node!r} has {len(record.outputs)} output(s); POSITION is 0 to "
            f"{len(record.outputs) - 1}"
        )
    return record.outputs[position].digest, record.id


def walk_lineage(
    workspace: Workspace, digest: str, *, step_run_id: str | None = None, max_depth: int = 50
) -> LineageNode:
    """The tree of everything ``digest`` was made from, down to dataset versions.

    An object produced by several step runs (a cached step records the same outputs again)
    is traced through ``step_run_id`` when given, else through the run that computed it.
    """
    walker = _Walker(workspace, max_depth)
    root = walker.describe("object", digest, "")
    walker.expand(root, 0, prefer=step_run_id)
    return root


class _Walker:
    def __init__(self, workspace: Workspace, max_depth: int) -> None:
        self.workspace = workspace
        self.records = StepRecords(workspace.sql)
        self.max_depth = max_depth
        self.seen: set[tuple[str, str]] = set()

    def expand(
        self,
        node: LineageNode,
        depth: int,
        prefer: str | None = None,
        consumer: StepRecord | None = None,
    ) -> None:
        # An object may reappear with another producer (a step can return its input
        # unchanged), so the walk marks repeated step runs and other vertices, not objects.
        key = (node.kind, node.ident)
        if node.kind != "object":
            if key in self.seen:
                node.repeated = True
                return
            self.seen.add(key)
        if depth >= self.max_depth:
            return
        edges = self.records.sources_of(node.kind, node.ident)
        if node.kind == "object":
            edges = self._one_producer(node, edges, prefer, consumer)
        record = node.details.get("record")
        for src_kind, src_id, role in sorted(edges, key=lambda e: (e[2], e[0], e[1])):
            child = self.describe(src_kind, src_id, role)
            node.sources.append(child)
            self.expand(child, depth + 1, consumer=record)

    def _one_producer(
        self,
        node: LineageNode,
        edges: list[tuple[str, str, str]],
        prefer: str | None,
        consumer: StepRecord | None,
    ) -> list[tuple[str, str, str]]:
        """One step run for an object several recorded (caching, or equal content).

        The one asked for; else the latest one of the consumer's pipeline run that started
        before the consumer (its nearest upstream); else the earliest that computed it.
        """
        producers = [e for e in edges if e[0] == "step_run"]
        others = [e for e in edges if e[0] != "step_run"]
        if len(producers) <= 1:
            return edges
        records = [(e, self.records.get(e[1])) for e in producers]
        chosen = next((e for e in producers if e[1] == prefer), None)
        if chosen is None and consumer is not None:
            same_run = [
                (r.started_at, r.id, e)
                for e, r in records
                if r is not None
                and r.pipeline_run_id == consumer.pipeline_run_id
                and r.started_at <= consumer.started_at
                and r.id != consumer.id
            ]
            chosen = max(same_run)[2] if same_run else None
        if chosen is None:
            ran = [
                (r.started_at, r.id, e) for e, r in records if r is not None and r.status == "ran"
            ]
            chosen = min(ran)[2] if ran else sorted(producers, key=lambda e: e[1])[0]
        node.details["other_producers"] = len(producers) - 1
        return [chosen, *others]

    def describe(self, kind: str, ident: str, role: str) -> LineageNode:
        node = LineageNode(kind, ident, role)
        if kind == "step_run":
            record = self.records.get(ident)
            if record is not None:
                node.details["record"] = record
                node.details["params"] = {
                    name: part.get("value")
                    for name, part in record.key_parts.get("inputs", {}).items()
                    if isinstance(part, dict) and part.get("kind") == "value"
                }
                node.details["paths"] = {
                    name: part.get("hash")
                    for name, part in record.key_parts.get("inputs", {}).items()
                    if isinstance(part, dict) and part.get("kind") == "path"
                }
                node.details["packages"] = record.key_parts.get("packages", {})
        elif kind == "object":
            output = self._output(ident)
            if output is not None:
                node.details["materializer"] = output.materializer
                node.details["type"] = output.type_name
        elif kind == "dataset_version":
            version = self._dataset_version(ident)
            if version is not None:
                node.details["hash"] = version.hash
        return node

    def _output(self, digest: str) -> Any:
        from sqlalchemy import select

        from loopml.store.metadata.schema import step_outputs

        with self.workspace.metadata.read() as conn:
            return conn.execute(
                select(step_outputs.c.materializer, step_outputs.c.type_name)
                .where(step_outputs.c.digest == digest)
                .limit(1)
            ).first()

    def _dataset_version(self, ident: str) -> Any:
        from loopml.data.versioning import resolve
        from loopml.errors import LoopMLError

        try:
            return resolve(self.workspace, ident)[1]
        except LoopMLError:
            return None
