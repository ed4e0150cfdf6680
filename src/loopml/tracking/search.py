"""``search_runs``: MLflow's filter and order-by language, compiled to SQL.

Filters are clauses joined by ``and``: ``metrics.acc > 0.9``, ``params.max_depth = '8'``,
``tags.team = 'growth'``, ``attributes.status = 'finished'``, with ``= != < <= > >=`` for
numbers, ``= != LIKE ILIKE IN NOT IN`` for strings. Every clause becomes an indexed sub-query;
nothing is filtered or sorted in Python.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, not_, nulls_last, select

from loopml.store.metadata.schema import (
    experiments,
    latest_metrics,
    run_params,
    run_tags,
    runs,
)
from loopml.tracking.errors import FilterSyntaxError

if TYPE_CHECKING:
    import pandas as pd

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
_ATTRIBUTES = {
    "status": runs.c.status,
    "name": runs.c.name,
    "run_name": runs.c.name,
    "run_id": runs.c.id,
    "id": runs.c.id,
    "start_time": runs.c.start_time,
    "end_time": runs.c.end_time,
    "user": runs.c.user,
    "parent_run_id": runs.c.parent_run_id,
    "experiment": experiments.c.name,
}
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


def _compare(column: Any, op: str, value: Any, dialect: str = "") -> Any:
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    if op == "LIKE":
        if dialect == "sqlite":
            # SQLite's LIKE ignores case; MLflow's (and PostgreSQL's) does not. GLOB does not.
            return column.op("GLOB", is_comparison=True)(_glob_pattern(str(value)))
        return column.like(value)
    if op == "ILIKE":
        return func.lower(column).like(str(value).lower())
    if op == "IN":
        return column.in_(value)
    return column.not_in(value)


def _condition(clause: Clause, dialect: str = "") -> Any:
    if clause.entity == "attributes":
        column = _ATTRIBUTES[clause.key]
        value = int(clause.value) if clause.key in _NUMERIC_ATTRIBUTES else clause.value
        return _compare(column, clause.op, value, dialect)
    table = {"metrics": latest_metrics, "params": run_params, "tags": run_tags}[clause.entity]
    if clause.op in ("!=", "NOT IN") and clause.entity != "metrics":
        # MLflow semantics: a run without the key does not match "!=" either.
        positive = "=" if clause.op == "!=" else "IN"
        matching = select(table.c.run_id).where(
            table.c.key == clause.key, _compare(table.c.value, positive, clause.value, dialect)
        )
        having = select(table.c.run_id).where(table.c.key == clause.key)
        return and_(runs.c.id.in_(having), not_(runs.c.id.in_(matching)))
    sub = select(table.c.run_id).where(
        table.c.key == clause.key, _compare(table.c.value, clause.op, clause.value, dialect)
    )
    return runs.c.id.in_(sub)


def search_runs(
    store: SqlTrackingStore,
    *,
    experiments_: Sequence[str] | None = None,
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = 1000,
    include_deleted: bool = False,
) -> pd.DataFrame:
    """Runs matching the filter as a DataFrame, one row per run, MLflow's columns."""
    import pandas as pd

    clauses = parse_filter(filter_string)
    ordering = parse_order_by(order_by)
    if max_results < 1:
        raise FilterSyntaxError("max_results must be at least 1")
    store.reap_crashed()
    query = select(
        runs.c.id,
        experiments.c.name.label("experiment"),
        runs.c.name,
        runs.c.status,
        runs.c.start_time,
        runs.c.end_time,
        runs.c.parent_run_id,
    ).join(experiments, experiments.c.id == runs.c.experiment_id)
    if experiments_:
        query = query.where(experiments.c.name.in_(list(experiments_)))
    if not include_deleted:
        query = query.where(runs.c.deleted_at.is_(None))
    for clause in clauses:
        query = query.where(_condition(clause, store.metadata.dialect))
    for index, order in enumerate(ordering):
        if order.entity == "attributes":
            column: Any = _ATTRIBUTES[order.key]
        else:
            table = {"metrics": latest_metrics, "params": run_params, "tags": run_tags}[
                order.entity
            ].alias(f"order_{index}")
            query = query.outerjoin(
                table, and_(table.c.run_id == runs.c.id, table.c.key == order.key)
            )
            column = table.c.value
        query = query.order_by(nulls_last(column.desc() if order.descending else column.asc()))
    query = query.order_by(runs.c.start_time.desc(), runs.c.id.desc()).limit(max_results)

    with store.metadata.read() as conn:
        rows = conn.execute(query).all()
        ids = [r.id for r in rows]
        params = _pivot(conn, run_params, ids)
        metrics = _pivot(conn, latest_metrics, ids)
        tags = _pivot(conn, run_tags, ids)
    frame = pd.DataFrame(
        {
            "run_id": ids,
            "experiment": [r.experiment for r in rows],
            "name": [r.name for r in rows],
            "status": [r.status for r in rows],
            "start_time": pd.to_datetime([r.start_time for r in rows], unit="ms", utc=True),
            "end_time": pd.to_datetime([r.end_time for r in rows], unit="ms", utc=True),
            "parent_run_id": [r.parent_run_id for r in rows],
        }
    )
    columns: dict[str, Any] = {}
    for prefix, values in (("params", params), ("metrics", metrics), ("tags", tags)):
        for key in sorted({k for per_run in values.values() for k in per_run}):
            default = float("nan") if prefix == "metrics" else None
            columns[f"{prefix}.{key}"] = [values.get(i, {}).get(key, default) for i in ids]
    if columns:
        frame = pd.concat([frame, pd.DataFrame(columns)], axis=1)
    return frame


def _pivot(conn: Any, table: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for run_id, key, value in conn.execute(
            select(table.c.run_id, table.c.key, table.c.value).where(table.c.run_id.in_(chunk))
        ):
            if table is latest_metrics:
                value = float("nan") if value is None else float(value)
            result.setdefault(run_id, {})[key] = value
    return result
