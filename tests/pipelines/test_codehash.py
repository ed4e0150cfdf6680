"""A function's source for its code hash is found without tokenizing its file.

``inspect.getsource`` tokenizes the file from the function's first line to find where it ends;
the code hash takes the end from the file's syntax tree instead (parsed once per file). The
normalised code, and so every cache key, must be exactly what ``inspect`` would have given.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from typing import TYPE_CHECKING, Any

import pytest

from loopml.pipelines import codehash

if TYPE_CHECKING:
    from conftest import Project

SHAPES = '''
    """Functions of every shape a step or a helper may have."""

    import functools
    from loopml import step

    def plain(x):
        return x + 1

    @step
    def decorated(x: int) -> int:
        """A docstring."""
        return x * 2  # a comment
        # an indented comment after the body, which inspect keeps

    # a comment at the left margin, which it does not


    @step(retries=2,
          timeout=5.0)
    def decorator_over_lines(x: int) -> int:
        text = """
            indented text
        in a string"""
        return len(text) + x

    def one_liner(x): return x - 1

    async def coroutine(x):
        return x

    def wraps_it(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)
        return wrapper

    @wraps_it
    def wrapped(x):
        return -x

    def outer(x):
        def inner(y):
            """Inner doc."""
            return y * x
        return inner

    class Model:
        scale = 3

        def predict(self, x):
            return x * self.scale

        @staticmethod
        def helper(x):
            if x:
                return (
                    x
                    + 1
                )
            return 0

    def tail(x):
        return x \\
            + 2
    '''


def _dump(source: str) -> str:
    tree = codehash._Normaliser().visit(ast.parse(textwrap.dedent(source)))
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _functions(module: types.ModuleType) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in vars(module).items():
        value = getattr(value, "fn", value)  # a step's function
        if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
            found[name] = value
    found["inner"] = module.outer(2)
    found["predict"] = module.Model.predict
    found["helper"] = module.Model.helper
    return found


def test_the_source_found_parses_to_what_inspect_gives(project: Project) -> None:
    project.write("shapes", SHAPES)
    module = project.load("shapes")
    functions = _functions(module)
    assert len(functions) >= 12
    for name, fn in functions.items():
        fast = codehash._function_source(fn)
        assert fast is not None, name
        assert _dump(fast) == _dump(inspect.getsource(fn)), name
    # Wrapped functions are read through to the function they wrap, as inspect does.
    assert "return -x" in (codehash._function_source(module.wrapped) or "")


def test_code_hashes_are_what_they_were_with_inspect(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write("shapes", SHAPES)
    module = project.load("shapes")
    functions = _functions(module)
    fast = {name: codehash.code_hash(fn, project.root) for name, fn in functions.items()}
    monkeypatch.setattr(codehash, "_function_source", lambda obj: None)
    slow = {name: codehash.code_hash(fn, project.root) for name, fn in functions.items()}
    assert fast == slow


def test_what_the_syntax_tree_cannot_place_is_left_to_inspect(project: Project) -> None:
    project.write(
        "odd",
        """
        square = lambda x: x * x

        def made():
            return 1
        """,
    )
    module = project.load("odd")
    assert codehash._function_source(module.square) is None
    assert codehash._source_tree(module.square) is not None  # through inspect
    assert codehash._function_source(len) is None
    generated: dict[str, Any] = {}
    exec("def generated(x):\n    return x\n", generated)  # no file to read
    assert codehash._function_source(generated["generated"]) is None


def test_an_edited_file_is_read_again(project: Project) -> None:
    project.write("edited", "def f(x):\n    return x + 1\n")
    first = project.load("edited").f
    assert "x + 1" in (codehash._function_source(first) or "")
    project.edit("edited", "return x + 1", "y = x\n    return y + 2")
    second = project.load("edited").f
    assert "y + 2" in (codehash._function_source(second) or "")
