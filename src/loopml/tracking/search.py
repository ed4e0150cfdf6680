"""``search_runs``: MLflow's filter and order-by language, compiled to SQL.

Filters are clauses joined by ``and``: ``metrics.acc > 0.9``, ``params.max_depth = '8'``,
``tags.team = 'growth'``, ``attributes.status = 'finished'``, with ``= != < <= > >=`` for
numbers, ``= != LIKE ILIKE IN NOT IN`` for strings. Every clause becomes an indexed sub-query;
nothing is filtered or sorted in Python. The SQL is plain (bound ``:name`` parameters, for
SQLite and PostgreSQL alike), run through the store's ``db``: on SQLite, the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.store.metadata.plainsql import in_list
from loopml.tracking.errors import FilterSyntaxError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.store.metadata.plainsql import Sql
    from loopml.tracking.sql_store import SqlTrackingStore

__all__ = ["Clause", "OrderBy", "parse_filter", "parse_order_by", "search_runs"]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<backtick>`[^`]*`)
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),.])
      | (?P<word>[A-Za-z_][A-Za-z0-9_\-:/]*)
    )""",
    re.VERBOSE,
)
_ENTITY = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "parameter": "params",
    "parameters": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attributes",
    "attributes": "attributes",
    "attr": "attributes",
    "run": "attributes",
}
# Attribute -> its column, in a query over ``runs AS r JOIN experiments AS e``.
_ATTRIBUTES = {
    "status": "r.status",
    "name": "r.name",
    "run_name": "r.name",
    "run_id": "r.id",
    "id": "r.id",
    "start_time": "r.start_time",
    "end_time": "r.end_time",
    "user": 'r."user"',
    "parent_run_id": "r.parent_run_id",
    "experiment": "e.name",
}
_KEYED = {"metrics": "latest_metrics", "params": "run_params", "tags": "run_tags"}
_NUMERIC_ATTRIBUTES = {"start_time", "end_time"}
_NUMBER_OPS = {"=", "!=", "<", "<=", ">", ">="}
_STRING_OPS = {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    position: int


@dataclass(frozen=True, slots=True)
class Clause:
    """One comparison: ``entity.key op value``."""

    entity: str
    key: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class OrderBy:
    """One sort key."""

    entity: str
    key: str
    descending: bool


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            bad = text[position:].strip()[:10]
            start = len(text) - len(text[position:].lstrip())
            raise FilterSyntaxError(
                f"invalid filter at position {start} ({bad!r}): unexpected character"
            )
        kind = match.lastgroup or ""
        value = match.group(kind)
        tokens.append(_Token(kind, value, match.start(kind)))
        position = match.end()
    return tokens


def _unquote(token: _Token) -> str:
    body = token.text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0

    def _error(self, expected: str) -> FilterSyntaxError:
        if self.index < len(self.tokens):
            token = self.tokens[self.index]
            return FilterSyntaxError(
                f"invalid filter at position {token.position} ({token.text!r}): expected {expected}"
            )
        return FilterSyntaxError(f"invalid filter: it ends where {expected} was expected")

    def _peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _next(self, expected: str) -> _Token:
        token = self._peek()
        if token is None:
            raise self._error(expected)
        self.index += 1
        return token

    def identifier(self) -> tuple[str, str]:
        entity_token = self._next("an identifier such as metrics.acc")
        if entity_token.kind != "word" or entity_token.text.lower() not in _ENTITY:
            self.index -= 1
            raise self._error("metrics., params., tags. or attributes.")
        entity = _ENTITY[entity_token.text.lower()]
        dot = self._next("'.'")
        if dot.text != ".":
            self.index -= 1
            raise self._error("'.' after " + entity_token.text)
        key_token = self._next("a name")
        if key_token.kind == "word":
            key = key_token.text
            # Dotted names such as metrics.val.loss: keep reading ``.word`` pieces.
            while (
                (piece := self._peek()) is not None
                and piece.text == "."
                and self.index + 1 < len(self.tokens)
                and self.tokens[self.index + 1].kind in ("word", "number")
            ):
                self.index += 2
                key += "." + self.tokens[self.index - 1].text
        elif key_token.kind in ("backtick", "string"):
            key = key_token.text[1:-1]
        else:
            self.index -= 1
            raise self._error("a name")
        if entity == "attributes" and key not in _ATTRIBUTES:
            self.index -= 1
            known = ", ".join(sorted(_ATTRIBUTES))
            raise self._error(f"one of the attributes {known}")
        return entity, key

    def operator(self) -> str:
        token = self._next("a comparison operator")
        if token.kind == "op":
            return "!=" if token.text == "<>" else token.text
        if token.kind == "word":
            word = token.text.upper()
            if word in ("LIKE", "ILIKE", "IN"):
                return word
            if word == "NOT":
                follow = self._next("IN")
                if follow.text.upper() == "IN":
                    return "NOT IN"
                self.index -= 1
                raise self._error("IN after NOT")
        self.index -= 1
        raise self._error("a comparison operator (= != < <= > >= LIKE ILIKE IN)")

    def value(self, op: str) -> Any:
        if op in ("IN", "NOT IN"):
            opening = self._next("'('")
            if opening.text != "(":
                self.index -= 1
                raise self._error("'(' after IN")
            values = []
            while True:
                item = self._next("a quoted value")
                if item.kind != "string":
                    self.index -= 1
                    raise self._error("a quoted value")
                values.append(_unquote(item))
                separator = self._next("',' or ')'")
                if separator.text == ")":
                    return values
                if separator.text != ",":
                    self.index -= 1
                    raise self._error("',' or ')'")
        token = self._next("a value")
        if token.kind == "number":
            return float(token.text)
        if token.kind == "string":
            return _unquote(token)
        self.index -= 1
        raise self._error("a number or a quoted string")

    def clauses(self) -> list[Clause]:
        result: list[Clause] = []
        if not self.tokens:
            return result
        while True:
            entity, key = self.identifier()
            start = self.index
            op = self.operator()
            value = self.value(op)
            numeric = entity == "metrics" or (entity == "attributes" and key in _NUMERIC_ATTRIBUTES)
            if numeric and (op not in _NUMBER_OPS or not isinstance(value, float)):
                self.index = start
                raise self._error(f"a numeric comparison for {entity}.{key}")
            if not numeric and (op not in _STRING_OPS or isinstance(value, float)):
                self.index = start
                raise self._error(f"a string comparison (= != LIKE ILIKE IN) for {entity}.{key}")
            result.append(Clause(entity, key, op, value))
            joiner = self._peek()
            if joiner is None:
                return result
            if joiner.kind == "word" and joiner.text.lower() == "and":
                self.index += 1
                continue
            raise self._error("'and' or the end of the filter")


def parse_filter(text: str | None) -> list[Clause]:
    """Parse a filter into clauses; raises ``FilterSyntaxError`` pointing at the bad token."""
    return _Parser(text or "").clauses()


def parse_order_by(items: Sequence[str] | None) -> list[OrderBy]:
    """Parse ``["metrics.acc DESC", "attributes.start_time"]``."""
    result: list[OrderBy] = []
    for item in items or ():
        parser = _Parser(item)
        entity, key = parser.identifier()
        direction = parser._peek()
        descending = False
        if direction is not None:
            word = direction.text.upper()
            if word not in ("ASC", "DESC"):
                raise parser._error("ASC or DESC")
            descending = word == "DESC"
            parser.index += 1
        if parser._peek() is not None:
            raise parser._error("the end of the order-by")
        result.append(OrderBy(entity, key, descending))
    return result


def _glob_pattern(like: str) -> str:
    """A LIKE pattern as the GLOB pattern that matches the same text, case-sensitively."""
    special = {"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}
    return "".join(special.get(char, char) for char in like)


class _Params:
    """Bound parameters of one query, named in order."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f":{name}"

    def bind_all(self, values: Sequence[Any]) -> str:
        names, bound = in_list(f"p{len(self.values)}_", values)
        self.values.update(bound)
        return names


def _compare(column: str, op: str, value: Any, params: _Params, dialect: str = "") -> str:
    if op in ("=", "!=", "<", "<=", ">", ">="):
        return f"{column} {op} {params.bind(value)}"
    if op == "LIKE":
        if dialect == "sqlite":
            # SQLite's LIKE ignores case; MLflow's (and PostgreSQL's) does not. GLOB does not.
            return f"{column} GLOB {params.bind(_glob_pattern(str(value)))}"
        return f"{column} LIKE {params.bind(value)}"
    if op == "ILIKE":
        return f"lower({column}) LIKE {params.bind(str(value).lower())}"
    if op == "IN":
        return f"{column} IN ({params.bind_all(value)})"
    return f"({column} NOT IN ({params.bind_all(value)}))"


def _condition(clause: Clause, params: _Params, dialect: str = "") -> str:
    if clause.entity == "attributes":
        column = _ATTRIBUTES[clause.key]
        value = int(clause.value) if clause.key in _NUMERIC_ATTRIBUTES else clause.value
        return _compare(column, clause.op, value, params, dialect)
    table = _KEYED[clause.entity]
    key = params.bind(clause.key)
    if clause.op in ("!=", "NOT IN") and clause.entity != "metrics":
        # MLflow semantics: a run without the key does not match "!=" either.
        positive = "=" if clause.op == "!=" else "IN"
        matching = _compare('k."value"', positive, clause.value, params, dialect)
        return (
            f'r.id IN (SELECT k.run_id FROM {table} AS k WHERE k."key" = {key}) AND NOT '
            f'(r.id IN (SELECT k.run_id FROM {table} AS k WHERE k."key" = {key} AND {matching}))'
        )
    compared = _compare('k."value"', clause.op, clause.value, params, dialect)
    return f'r.id IN (SELECT k.run_id FROM {table} AS k WHERE k."key" = {key} AND {compared})'


def search_runs(
    store: SqlTrackingStore,
    *,
    experiments_: Sequence[str] | None = None,
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = 1000,
    include_deleted: bool = False,
    include_steps: bool = True,
) -> pd.DataFrame:
    """Runs matching the filter as a DataFrame, one row per run, MLflow's columns.

    ``include_steps=False`` leaves out the child runs of pipeline steps (``loopml.kind`` =
    ``step``), which are many and are shown by ``loopml runs dag`` instead.
    """
    import pandas as pd

    clauses = parse_filter(filter_string)
    ordering = parse_order_by(order_by)
    if max_results < 1:
        raise FilterSyntaxError("max_results must be at least 1")
    store.reap_crashed()
    params = _Params()
    where = []
    if experiments_:
        where.append(f"e.name IN ({params.bind_all(list(experiments_))})")
    if not include_deleted:
        where.append("r.deleted_at IS NULL")
    if not include_steps:
        where.append(
            f"NOT EXISTS (SELECT 1 FROM {_KEYED['tags']} AS kind WHERE kind.run_id = r.id "
            f'AND kind."key" = {params.bind("loopml.kind")} '
            f'AND kind."value" = {params.bind("step")})'
        )
    dialect = store.db.dialect
    where += [f"({_condition(clause, params, dialect)})" for clause in clauses]
    joins = []
    sorts = []
    for index, order in enumerate(ordering):
        if order.entity == "attributes":
            column = _ATTRIBUTES[order.key]
        else:
            alias = f"order_{index}"
            joins.append(
                f"LEFT OUTER JOIN {_KEYED[order.entity]} AS {alias} "
                f'ON {alias}.run_id = r.id AND {alias}."key" = {params.bind(order.key)}'
            )
            column = f'{alias}."value"'
        sorts.append(f"{column} {'DESC' if order.descending else 'ASC'} NULLS LAST")
    sorts += ["r.start_time DESC", "r.id DESC"]
    query = (
        "SELECT r.id, e.name, r.name, r.status, r.start_time, r.end_time, r.parent_run_id "
        "FROM runs AS r JOIN experiments AS e ON e.id = r.experiment_id "
        + " ".join(joins)
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY {', '.join(sorts)} LIMIT {params.bind(max_results)}"
    )

    def read(sql: Sql) -> tuple[list[tuple[Any, ...]], list[dict[str, dict[str, Any]]]]:
        rows = sql.rows(query, params.values)
        ids = [str(r[0]) for r in rows]
        return rows, [_pivot(sql, table, ids) for table in _KEYED.values()]

    rows, (metrics, run_params, tags) = store.db.read(read)
    ids = [str(r[0]) for r in rows]
    frame = pd.DataFrame(
        {
            "run_id": ids,
            "experiment": [r[1] for r in rows],
            "name": [r[2] for r in rows],
            "status": [r[3] for r in rows],
            "start_time": pd.to_datetime([r[4] for r in rows], unit="ms", utc=True),
            "end_time": pd.to_datetime([r[5] for r in rows], unit="ms", utc=True),
            "parent_run_id": [r[6] for r in rows],
        }
    )
    columns: dict[str, Any] = {}
    for prefix, values in (("params", run_params), ("metrics", metrics), ("tags", tags)):
        for key in sorted({k for per_run in values.values() for k in per_run}):
            default = float("nan") if prefix == "metrics" else None
            columns[f"{prefix}.{key}"] = [values.get(i, {}).get(key, default) for i in ids]
    if columns:
        frame = pd.concat([frame, pd.DataFrame(columns)], axis=1)
    return frame


def _pivot(sql: Sql, table: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        names, bound = in_list("r", ids[start : start + 500])
        for run_id, key, value in sql.rows(
            f'SELECT run_id, "key", "value" FROM {table} WHERE run_id IN ({names})', bound
        ):
            if table == "latest_metrics":
                value = float("nan") if value is None else float(value)
            result.setdefault(str(run_id), {})[str(key)] = value
    return result
