"""The traced DAG: nodes (step calls), their inputs, and references to their outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.pipelines.errors import PipelineDefinitionError

if TYPE_CHECKING:
    from loopml.pipelines.step import Step

__all__ = ["Graph", "Input", "Node", "OutputRef"]


class OutputRef:
    """A placeholder for one output of a traced step call.

    It only exists while a pipeline is traced; using it as a value (truth test, iteration,
    attribute access) is an error, because the value does not exist until the step runs.
    """

    __slots__ = ("node", "position")

    def __init__(self, node: str, position: int) -> None:
        self.node = node
        self.position = position

    def _misuse(self, *_: Any, **__: Any) -> Any:
        raise PipelineDefinitionError(
            f"the output of step {self.node!r} is only known when the pipeline runs; pass it "
            "to another step instead of using it in the pipeline function"
        )

    __bool__ = _misuse
    __iter__ = _misuse
    __len__ = _misuse
    __contains__ = _misuse
    __getitem__ = _misuse
    __setitem__ = _misuse
    __call__ = _misuse
    __str__ = _misuse
    __format__ = _misuse
    __int__ = _misuse
    __float__ = _misuse
    __index__ = _misuse
    __round__ = _misuse
    __neg__ = _misuse
    __pos__ = _misuse
    __abs__ = _misuse
    __invert__ = _misuse
    __eq__ = _misuse
    __ne__ = _misuse
    __lt__ = _misuse
    __le__ = _misuse
    __gt__ = _misuse
    __ge__ = _misuse
    __add__ = __radd__ = _misuse
    __sub__ = __rsub__ = _misuse
    __mul__ = __rmul__ = _misuse
    __matmul__ = __rmatmul__ = _misuse
    __truediv__ = __rtruediv__ = _misuse
    __floordiv__ = __rfloordiv__ = _misuse
    __mod__ = __rmod__ = _misuse
    __pow__ = __rpow__ = _misuse
    __and__ = __rand__ = _misuse
    __or__ = __ror__ = _misuse
    __xor__ = __rxor__ = _misuse
    __hash__ = object.__hash__  # defining __eq__ would otherwise make it unhashable

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._misuse()

    def __repr__(self) -> str:
        return f"<output {self.position} of step {self.node!r}>"


@dataclass(frozen=True, slots=True)
class Input:
    """One argument of a step call: from another step, a dataset version, a path, or a value."""

    name: str
    kind: str  # "output", "data", "path", "value"
    value: Any = None  # the literal (value), the text (data), the path (path)
    node: str | None = None  # for "output"
    position: int = 0


@dataclass
class Node:
    """One step call in the DAG."""

    name: str
    step: Step
    inputs: list[Input]
    outputs: int

    @property
    def upstream(self) -> list[str]:
        """Names of the nodes this one reads from, in argument order, without duplicates."""
        seen: list[str] = []
        for item in self.inputs:
            if item.kind == "output" and item.node is not None and item.node not in seen:
                seen.append(item.node)
        return seen


@dataclass
class Graph:
    """Nodes in call order (which is a topological order) and the pipeline's outputs."""

    nodes: dict[str, Node] = field(default_factory=dict)
    outputs: list[OutputRef] = field(default_factory=list)
    _next_index: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, node: Node) -> None:
        """Append a node; its upstream nodes must exist already."""
        for upstream in node.upstream:
            if upstream not in self.nodes:
                raise PipelineDefinitionError(
                    f"step {node.name!r} reads from {upstream!r}, "
                    "which is not part of this pipeline"
                )
        self.nodes[node.name] = node

    def unique_name(self, base: str) -> str:
        """``base``, or ``base_2``, ``base_3`` … when a step is called several times."""
        if base not in self.nodes:
            return base
        index = self._next_index.get(base, 2)  # where the last search stopped: linear in all
        while f"{base}_{index}" in self.nodes:
            index += 1
        self._next_index[base] = index + 1
        return f"{base}_{index}"

    def downstream_of(self, name: str) -> set[str]:
        """``name`` and every node that depends on it, directly or not."""
        found = {name}
        for node in self.nodes.values():  # call order is topological
            if any(up in found for up in node.upstream):
                found.add(node.name)
        return found

    def upstream_of(self, name: str) -> set[str]:
        """``name`` and every node it depends on."""
        found = {name}
        for node in reversed(list(self.nodes.values())):
            if node.name in found:
                found.update(node.upstream)
        return found

    def levels(self) -> list[list[str]]:
        """Nodes grouped by depth; the nodes of one level can run in parallel."""
        depth: dict[str, int] = {}
        for node in self.nodes.values():
            depth[node.name] = 1 + max((depth[u] for u in node.upstream), default=-1)
        grouped: dict[int, list[str]] = {}
        for name, level in depth.items():
            grouped.setdefault(level, []).append(name)
        return [grouped[level] for level in sorted(grouped)]
