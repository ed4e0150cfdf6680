"""The code part of a step's cache key: normalised source of the step and what it reaches.

The source is parsed and dumped as an AST without positions, docstrings or decorators, so
comments, formatting and docstrings do not count and logic does. Every project-local function,
class and module-level constant the code reaches (through names and ``module.attribute``
chains) is hashed the same way, recursively: editing a helper two calls deep changes the key.
"Project-local" means defined in a file under the workspace root and outside the
interpreter's prefix and site-packages; library code is represented by package versions.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import json
import linecache
import site
import sys
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopml.store.hashing import hash_bytes

__all__ = ["code_hash", "code_hash_and_files", "is_project_local"]

_CONSTANT_TYPES = (int, float, str, bytes, bool, type(None))


def _excluded_roots() -> list[Path]:
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)}
    try:
        roots.update(Path(p) for p in site.getsitepackages())
        roots.add(Path(site.getusersitepackages()))
    except AttributeError:  # some embedded interpreters lack these
        pass
    return [r.resolve() for r in roots]


_EXCLUDED = _excluded_roots()


def is_project_local(path: str | None, project_root: Path) -> bool:
    """Whether a source file belongs to the project (under its root, not an installed package)."""
    if not path:
        return False
    try:
        resolved = Path(path).resolve()
    except OSError:
        return False
    if project_root not in resolved.parents:
        return False
    return not any(root == resolved or root in resolved.parents for root in _EXCLUDED)


class _Normaliser(ast.NodeTransformer):
    """Drops docstrings and decorators (options such as retries do not change results)."""

    def _strip(self, node: Any) -> Any:
        body = node.body
        first = body[0] if body else None
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
        if hasattr(node, "decorator_list"):
            node.decorator_list = []
        self.generic_visit(node)
        return node

    visit_FunctionDef = _strip  # noqa: N815
    visit_AsyncFunctionDef = _strip  # noqa: N815
    visit_ClassDef = _strip  # noqa: N815
    visit_Module = _strip  # noqa: N815


# file -> (its lines as linecache holds them, first line of each def -> its last line)
_def_spans: dict[str, tuple[list[str], dict[int, int]]] = {}


def _def_ends(filename: str, lines: list[str]) -> dict[int, int]:
    """Where each function of a file ends, by the line it starts on (its first decorator's)."""
    cached = _def_spans.get(filename)
    if cached is not None and cached[0] is lines:
        return cached[1]
    ends: dict[int, int] = {}
    try:
        tree = ast.parse("".join(lines))
    except (SyntaxError, ValueError):
        tree = None
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            # Two definitions starting on one line cannot be told apart: leave it to inspect.
            ends[first] = -1 if first in ends else node.end_lineno
    if len(_def_spans) >= 256:
        _def_spans.clear()
    _def_spans[filename] = (lines, ends)
    return ends


def _function_source(obj: Any) -> str | None:
    """``inspect.getsource`` of a function, found without tokenizing the file.

    The block runs from the function's first line (its first decorator's) to the end of its
    definition in the file's syntax tree; ``inspect`` would also take the indented comments
    after it, which the tree drops anyway. Anything unusual returns None, for ``inspect``.
    """
    if hasattr(obj, "__wrapped__"):
        try:
            obj = inspect.unwrap(obj)  # as inspect.getsource does
        except ValueError:
            return None
    code = getattr(obj, "__code__", None)
    if not isinstance(obj, types.FunctionType) or code is None:
        return None
    filename = code.co_filename
    if not filename.endswith(".py"):
        return None
    linecache.checkcache(filename)
    lines = linecache.getlines(filename, obj.__globals__)
    if not lines:
        return None
    first = code.co_firstlineno
    end = _def_ends(filename, lines).get(first, -1)
    if end < first:
        return None
    return "".join(lines[first - 1 : end])


def _source_tree(obj: Any) -> ast.AST | None:
    source = _function_source(obj)
    if source is None:
        try:
            source = inspect.getsource(obj)
        except (OSError, TypeError):
            return None
    tree: ast.AST = _Normaliser().visit(ast.parse(textwrap.dedent(source)))
    return tree


def _references(tree: ast.AST) -> list[list[str]]:
    """Dotted name chains read by the code: ``helpers.clean`` → ``["helpers", "clean"]``."""
    chains: list[list[str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts: list[str] = []
            current: ast.AST = node
            while isinstance(current, ast.Attribute):
                parts.append(current.attr)
                current = current.value
            if isinstance(current, ast.Name):
                chains.append([current.id, *reversed(parts)])
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            chains.append([node.id])
    return chains


class _Hasher:
    def __init__(self, project_root: Path) -> None:
        self.root = project_root
        self.parts: dict[str, str] = {}
        self.files: set[str] = set()  # the source files the hash was read from

    def _key(self, obj: Any) -> str:
        module = getattr(obj, "__module__", "?")
        return f"{module}:{getattr(obj, '__qualname__', getattr(obj, '__name__', repr(obj)))}"

    def visit_code(self, obj: Any, namespace: dict[str, Any]) -> None:
        key = self._key(obj)
        if key in self.parts:
            return
        tree = _source_tree(obj)
        if tree is None:
            self.parts[key] = "source-unavailable"
            return
        self.parts[key] = ast.dump(tree, annotate_fields=False, include_attributes=False)
        for chain in _references(tree):
            self.resolve(chain, namespace, origin=key)

    def resolve(self, chain: list[str], namespace: dict[str, Any], origin: str) -> None:
        if chain[0] not in namespace:
            return
        value: Any = namespace[chain[0]]
        label = f"{origin}->{chain[0]}"
        for attr in chain[1:]:
            if not isinstance(value, types.ModuleType):
                break
            module_file = getattr(value, "__file__", None)
            if not is_project_local(module_file, self.root):
                return
            self.files.add(str(module_file))
            if not hasattr(value, attr):
                return
            value = getattr(value, attr)
            label = f"{label}.{attr}"
        self.visit_value(value, label)

    def visit_value(self, value: Any, label: str) -> None:
        from loopml.pipelines.step import Step

        if isinstance(value, Step):
            value = value.fn
        if isinstance(value, types.FunctionType | type):
            try:
                source_file = inspect.getsourcefile(value)
            except TypeError:
                return
            if not is_project_local(source_file, self.root):
                return
            assert source_file is not None
            self.files.add(source_file)
            module = sys.modules.get(value.__module__)
            namespace = dict(vars(module)) if module is not None else {}
            if isinstance(value, types.FunctionType):
                namespace.update(value.__globals__)
                with contextlib.suppress(ValueError):  # a closure cell not yet filled
                    namespace.update(inspect.getclosurevars(value).nonlocals)
            self.visit_code(value, namespace)
            return
        if isinstance(value, _CONSTANT_TYPES) or (
            isinstance(value, tuple | frozenset)
            and all(isinstance(v, _CONSTANT_TYPES) for v in value)
        ):
            self.parts.setdefault(f"const:{label}", repr(value))
            return
        if isinstance(value, dict | list):
            try:
                self.parts.setdefault(f"const:{label}", json.dumps(value, sort_keys=True))
            except (TypeError, ValueError):
                pass

    def digest(self) -> str:
        body = json.dumps(sorted(self.parts.items()), separators=(",", ":"))
        return hash_bytes(body.encode())


_roots: dict[Path, Path] = {}


def _resolved(root: Path) -> Path:
    """``root.resolve()``, once per process (a ``stat`` per path component otherwise)."""
    found = _roots.get(root)
    if found is None:
        if len(_roots) >= 64:
            _roots.clear()
        found = _roots[root] = root.resolve()
    return found


def code_hash(fn: Callable[..., Any], project_root: Path) -> str:
    """The hash of ``fn``'s normalised source and every project-local thing it reaches."""
    return code_hash_and_files(fn, project_root)[0]


def code_hash_and_files(fn: Callable[..., Any], project_root: Path) -> tuple[str, frozenset[str]]:
    """``code_hash`` and the source files it read (to know when it must be computed again)."""
    hasher = _Hasher(_resolved(project_root))
    namespace = dict(getattr(fn, "__globals__", {}))
    try:
        namespace.update(inspect.getclosurevars(fn).nonlocals)
    except (TypeError, ValueError):
        pass
    try:
        source_file = inspect.getsourcefile(fn)
    except TypeError:
        source_file = None
    if source_file:
        hasher.files.add(source_file)
    hasher.visit_code(fn, namespace)
    return hasher.digest(), frozenset(hasher.files)
