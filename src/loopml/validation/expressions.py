"""Custom checks written as expressions: ``price >= cost``, ``(a + b) / 2 < 100``.

An expression comes from a YAML file that anyone may have edited, so it is parsed first and
refused unless it is made only of column names, constants (numbers, strings, booleans, lists of
them), arithmetic, comparisons and boolean operators. No attribute access, no calls, no
subscripts, no ``@variables``: nothing that could reach Python objects.

What passes is evaluated with the semantics of ``pandas.DataFrame.eval`` (pandas operators on
the columns; ``&`` and ``|`` bind like ``and`` and ``or``, so ``a > 1 & b < 2`` means what it
says), by walking the checked tree and applying pandas' own operators to the column Series.
``DataFrame.eval`` itself is not called: in pandas 3 it copies every column it reads (six array
copies for ``a + b >= 0``, ten times the cost of the arithmetic), and the walk is a second
guarantee that nothing but the checked operators ever runs.
"""

from __future__ import annotations

import ast
import io
import operator
import re
import tokenize
from collections.abc import Callable
from functools import lru_cache, reduce
from typing import TYPE_CHECKING, Any

from loopml.validation.errors import ContractFormatError, MissingColumnError, UnsafeExpressionError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

__all__ = ["ExpressionEvalError", "evaluate", "referenced_columns"]


class ExpressionEvalError(ContractFormatError):
    """A safe expression could not be evaluated on this data (say, text compared with numbers)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


_BACKTICKED = re.compile(r"`([^`]*)`")

_ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.BitAnd,
    ast.BitOr,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.Invert,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    ast.Tuple,
)

_WHAT = {
    ast.Attribute: "attribute access",
    ast.Call: "a function call",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambdas",
    ast.NamedExpr: "assignment",
    ast.IfExp: "if/else",
    ast.MatMult: "the @ operator",
}


_BINARY: dict[type[ast.AST], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
}
_COMPARE: dict[type[ast.AST], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def _mask_backticks(expression: str) -> tuple[str, dict[str, str]]:
    """Replace `quoted column names` by plain placeholders Python's parser accepts."""
    names: dict[str, str] = {}

    def placeholder(match: re.Match[str]) -> str:
        key = f"_loopml_column_{len(names)}"
        names[key] = match.group(1)
        return key

    return _BACKTICKED.sub(placeholder, expression), names


def _booleans_as_words(text: str) -> str:
    """``&`` → ``and``, ``|`` → ``or`` (outside strings), as pandas' own parser does."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return text  # the parser reports it
    words = {"&": "and", "|": "or"}
    changed = [
        (tokenize.NAME, words[tok.string])
        if tok.type == tokenize.OP and tok.string in words
        else (tok.type, tok.string)
        for tok in tokens
    ]
    return str(tokenize.untokenize(changed))


@lru_cache(maxsize=256)
def _parse(expression: str, check: str) -> tuple[ast.Expression, dict[str, str], tuple[str, ...]]:
    """The checked tree, the placeholder → column map, and the columns used (in order)."""
    label = f"check {check!r}: " if check else ""
    if not isinstance(expression, str) or not expression.strip():
        raise ContractFormatError(f"{label}an expression must be non-empty text")
    text, quoted = _mask_backticks(expression)
    try:
        tree = ast.parse(_booleans_as_words(text.strip()).strip(), mode="eval")
    except SyntaxError as exc:
        raise UnsafeExpressionError(
            f"{label}expression {expression!r} is not a single expression of column names, "
            f"constants and operators ({exc.msg})"
        ) from None
    columns: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            what = _WHAT.get(type(node), type(node).__name__)
            raise UnsafeExpressionError(
                f"{label}expression {expression!r} uses {what}; only column names, constants, "
                "arithmetic (+ - * / // % **), comparisons and and/or/not are allowed"
            )
        if isinstance(node, ast.Constant) and not isinstance(node.value, bool | int | float | str):
            raise UnsafeExpressionError(
                f"{label}expression {expression!r} has the constant {node.value!r}; use "
                "numbers, strings, true or false"
            )
        if isinstance(node, ast.List | ast.Tuple) and not all(
            isinstance(item, ast.Constant) for item in node.elts
        ):
            raise UnsafeExpressionError(
                f"{label}expression {expression!r} has a list of more than constants"
            )
        if isinstance(node, ast.Name):
            name = quoted.get(node.id, node.id)
            if name not in columns:
                columns.append(name)
    return tree, quoted, tuple(columns)


def referenced_columns(expression: str, *, check: str = "") -> list[str]:
    """The column names ``expression`` uses, in order; raises if it is not a safe expression."""
    return list(_parse(expression, check)[2])


def _walk(node: ast.AST, values: dict[str, Any]) -> Any:
    """Apply pandas' operators along a checked tree (only the nodes ``_parse`` allows)."""
    if isinstance(node, ast.Expression):
        return _walk(node.body, values)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.List | ast.Tuple):
        return [_walk(item, values) for item in node.elts]
    if isinstance(node, ast.UnaryOp):
        operand = _walk(node.operand, values)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return +operand
        if isinstance(node.op, ast.Not) and isinstance(operand, bool):
            return not operand
        return ~operand  # not / ~ on a column: element-wise
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_walk(node.left, values), _walk(node.right, values))
    if isinstance(node, ast.BoolOp):
        parts = [_walk(item, values) for item in node.values]
        joined = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        return reduce(joined, parts)
    if isinstance(node, ast.Compare):
        left = _walk(node.left, values)
        results = []
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _walk(right_node, values)
            results.append(_compare(op, left, right))
            left = right
        return reduce(operator.and_, results)
    raise AssertionError(f"unchecked node {type(node).__name__}")  # _parse refuses it


def _compare(op: ast.cmpop, left: Any, right: Any) -> Any:
    if isinstance(op, ast.In | ast.NotIn):
        if not isinstance(right, list):
            raise TypeError("`in` needs a list of values on its right, like `x in [1, 2]`")
        if hasattr(left, "isin"):
            found = left.isin(right)
            return ~found if isinstance(op, ast.NotIn) else found
        return (left in right) != isinstance(op, ast.NotIn)
    return _COMPARE[type(op)](left, right)


def evaluate(
    expression: str, frame: pd.DataFrame, *, check: str = ""
) -> tuple[NDArray[np.bool_] | None, bool]:
    """Rows where ``expression`` is false, or (None, passed) for an expression without rows.

    Rows where any column the expression names is null are not judged (null is the
    ``nullable``/``max_null_share`` checks' business), as SQL's CHECK constraints do.
    """
    import numpy as np
    import pandas as pd

    tree, quoted, names = _parse(expression, check)
    by_text = {str(c): c for c in frame.columns}
    missing = [name for name in names if name not in by_text]
    if missing:
        shown = ", ".join(repr(m) for m in missing)
        raise MissingColumnError(
            f"check {check!r}: the data has no column {shown} (expression {expression!r})"
        )
    columns = {name: frame[by_text[name]] for name in names}
    values = {key: columns[quoted.get(key, key)] for key in _names(tree)}
    try:
        with np.errstate(all="ignore"):
            result: Any = _walk(tree, values)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpressionEvalError(
            f"check {check!r}: cannot evaluate {expression!r}: {message}", message
        ) from None
    if isinstance(result, bool | np.bool_):
        return None, bool(result)
    if not isinstance(result, pd.Series) or not pd.api.types.is_bool_dtype(result.dtype):
        kind = getattr(result, "dtype", type(result).__name__)
        raise ExpressionEvalError(
            f"check {check!r}: expression {expression!r} gives {kind} values, not true/false; "
            "write a comparison",
            f"gives {kind} values, not true/false",
        )
    failed = ~result.to_numpy(dtype=bool, na_value=True)
    for series in columns.values():
        if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iub":
            continue  # numpy integers and booleans hold no nulls
        failed &= ~np.asarray(series.isna().to_numpy(), dtype=bool)
    return failed, True


def _names(tree: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
