"""``@step``: a plain Python function that becomes a cached, tracked node inside a pipeline.

Called outside a pipeline, a step is an ordinary function call. Called while a pipeline is
being traced, it records a node and returns placeholders for its outputs; a ``tuple[...]``
return annotation means several outputs.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar, overload

from loopml.pipelines.errors import PipelineDefinitionError
from loopml.pipelines.graph import Graph, Input, Node, OutputRef

__all__ = ["Step", "current_graph", "step"]

F = TypeVar("F", bound=Callable[..., Any])

current_graph: ContextVar[Graph | None] = ContextVar("loopml_current_graph", default=None)


def _output_types(fn: Callable[..., Any]) -> list[Any]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = getattr(fn, "__annotations__", {})
    returned = hints.get("return", inspect.Signature.empty)
    if typing.get_origin(returned) is tuple:
        args = typing.get_args(returned)
        if args and args[-1] is not Ellipsis:
            return list(args)
    return [returned]


class Step:
    """A step: the function, its options, and its identity (module and qualified name)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        retries: int = 0,
        retry_delay: float = 1.0,
        timeout: float | None = None,
        cache: bool = True,
        pickle: bool = False,
        input_contract: Any = None,
        output_contract: Any = None,
        packages: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        if retries < 0:
            raise PipelineDefinitionError(f"retries must be 0 or more, got {retries}")
        if timeout is not None and timeout <= 0:
            raise PipelineDefinitionError(f"timeout must be positive seconds, got {timeout}")
        if retry_delay < 0:
            raise PipelineDefinitionError(f"retry_delay must be 0 or more, got {retry_delay}")
        if isinstance(packages, str):  # packages="numpy" means one package, not five letters
            packages = [packages]
        self.fn = fn
        self.retries = retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.cache = cache
        self.pickle = pickle
        # A Contract, a YAML path, or a mapping (parameter name / output position → contract).
        self.input_contract = input_contract
        self.output_contract = output_contract
        self.packages = tuple(packages)
        self.name = name or fn.__name__
        self.signature = inspect.signature(fn)
        self.output_types = _output_types(fn)
        functools.update_wrapper(self, fn)

    @property
    def identity(self) -> str:
        """``module:qualname`` — the same whether run from the CLI or imported."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    @property
    def outputs(self) -> int:
        """How many outputs a call produces."""
        return len(self.output_types)

    def parameter_type(self, name: str) -> Any:
        """The annotation of parameter ``name`` (``inspect.Signature.empty`` when none)."""
        try:
            hints = typing.get_type_hints(self.fn)
        except Exception:
            return inspect.Signature.empty
        if name not in self.signature.parameters:  # a keyword gathered by **kwargs
            gathered = [p for p in self.signature.parameters.values() if p.kind is p.VAR_KEYWORD]
            name = gathered[0].name if gathered else name
        return hints.get(name, inspect.Signature.empty)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        graph = current_graph.get()
        if graph is None:
            if self.input_contract is None and self.output_contract is None:
                return self.fn(*args, **kwargs)
            from loopml.validation import check_inputs, check_outputs

            bound = self.signature.bind(*args, **kwargs)
            bound.apply_defaults()
            check_inputs(self.input_contract, bound.arguments, self.name)
            result = self.fn(*args, **kwargs)
            check_outputs(self.output_contract, result, self.name, outputs=self.outputs)
            return result
        return self._trace(graph, args, kwargs)

    def _trace(self, graph: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PipelineDefinitionError(f"step {self.name!r} called wrongly: {exc}") from None
        bound.apply_defaults()
        name = graph.unique_name(self.name)
        arguments: dict[str, Any] = {}
        for key, value in bound.arguments.items():
            kind = self.signature.parameters[key].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(value)  # each keyword is an input of its own
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise PipelineDefinitionError(
                        f"step {self.name!r} takes *{key}; inside a pipeline a step's inputs "
                        "are passed by name, so make them named parameters"
                    )
            elif kind is inspect.Parameter.POSITIONAL_ONLY:
                raise PipelineDefinitionError(
                    f"step {self.name!r} has the positional-only parameter {key!r}; inside a "
                    "pipeline a step's inputs are passed by name, so drop the '/'"
                )
            else:
                arguments[key] = value
        inputs = [self._input(graph, name, key, value) for key, value in arguments.items()]
        graph.add(Node(name, self, inputs, self.outputs))
        refs = [OutputRef(name, position) for position in range(self.outputs)]
        return refs[0] if self.outputs == 1 else tuple(refs)

    def _input(self, graph: Graph, node: str, key: str, value: Any) -> Input:
        from loopml.data.api import DataRef

        if isinstance(value, OutputRef):
            self._check_type(graph, node, key, value)
            return Input(key, "output", node=value.node, position=value.position)
        if isinstance(value, DataRef):
            return Input(key, "data", value=value.text)
        if isinstance(value, Path):
            return Input(key, "path", value=str(value))
        if isinstance(value, tuple | list) and any(isinstance(v, OutputRef) for v in value):
            raise PipelineDefinitionError(
                f"step {node!r} argument {key!r} mixes step outputs into a list; give each "
                "output its own parameter"
            )
        import json

        try:
            json.dumps(value, sort_keys=True, allow_nan=True)
        except (TypeError, ValueError):
            raise PipelineDefinitionError(
                f"step {node!r} argument {key!r} is a {type(value).__name__}; pass JSON-able "
                "values, pathlib.Path, loopml.data.ref(...), or the output of another step"
            ) from None
        return Input(key, "value", value=value)

    def _check_type(self, graph: Graph, node: str, key: str, ref: OutputRef) -> None:
        expected = self.parameter_type(key)
        producer = graph.nodes[ref.node].step
        produced = producer.output_types[ref.position]
        if not (isinstance(expected, type) and isinstance(produced, type)):
            return  # only plain classes are checked; generics and Any pass
        if expected is inspect.Signature.empty or produced is inspect.Signature.empty:
            return
        numeric_tower = {float: (int,), complex: (int, float)}
        if produced in numeric_tower.get(expected, ()):
            return  # an int is a float (and both are complex) to type checkers too
        if not issubclass(produced, expected):
            raise PipelineDefinitionError(
                f"step {node!r} expects {key}: {expected.__qualname__}, but step {ref.node!r} "
                f"returns {produced.__qualname__}"
            )


@overload
def step(fn: F) -> F: ...


@overload
def step(
    fn: None = None,
    *,
    retries: int = 0,
    retry_delay: float = 1.0,
    timeout: float | None = None,
    cache: bool = True,
    pickle: bool = False,
    input_contract: Any = None,
    output_contract: Any = None,
    packages: Sequence[str] = (),
    name: str | None = None,
) -> Callable[[F], F]: ...


def step(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make a function a pipeline step: ``@step`` or ``@step(retries=2, timeout=600)``.

    Options: ``retries`` and ``retry_delay`` (seconds, doubled each retry), ``timeout``
    (seconds), ``cache`` (False: always run), ``pickle`` (allow pickled outputs for types no
    materializer handles), ``packages`` (distributions whose versions join the cache key).
    """
    if fn is not None:
        return Step(fn)

    def wrap(inner: Callable[..., Any]) -> Step:
        return Step(inner, **options)

    return wrap
