"""Plain SQL on the metadata database, for the hottest paths (DESIGN section 4).

A fully cached pipeline run and a tracked run write a few rows each, and a command that does
little should start fast. On SQLite these paths therefore talk to the database through the
standard library's ``sqlite3`` and never import SQLAlchemy; on PostgreSQL (or on a SQLite file
whose schema is behind) the very same statements run through :class:`MetadataStore`.

Statements are plain SQL with ``:name`` parameters, written for both databases: identifiers
that are keywords (``"user"``, ``"key"``, ``"value"``…) are quoted, and ``IN`` lists are spelled
out with :func:`in_list`. Writes keep the store's guarantees: ``BEGIN IMMEDIATE`` on SQLite, the
busy timeout, and the whole transaction retried with backoff while the database stays busy or
when the body raises :class:`RetryableConflict` — so a body must have no other effects.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from loopml.store.metadata.errors import DatabaseBusyError, RetryableConflict, WriteConflictError
from loopml.store.schema_revisions import HEAD_REVISION

if TYPE_CHECKING:
    from loopml.store.metadata.engine import MetadataStore

__all__ = [
    "AlchemyDatabase",
    "Sql",
    "SqlDatabase",
    "SqliteDatabase",
    "in_list",
    "is_unique_violation",
    "sqlite_file",
]

T = TypeVar("T")

Params = Mapping[str, Any]

# As the SQLAlchemy engine sets them (engine._SQLITE_PRAGMAS), in the same order.
_PRAGMAS: Final = (
    "PRAGMA busy_timeout=30000",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
_BUSY_CODES: Final = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
_BACKOFF_BASE_S: Final = 0.005
_BACKOFF_CAP_S: Final = 0.5
_IDLE_CONNECTIONS: Final = 4


class Sql(Protocol):
    """The statements of one transaction."""

    dialect: str

    def rows(self, statement: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return every row as a tuple."""
        ...

    def run(self, statement: str, params: Params | None = None) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    def run_many(self, statement: str, rows: Sequence[Params]) -> None:
        """Run one statement once per parameter set (nothing when ``rows`` is empty)."""
        ...


class SqlDatabase(Protocol):
    """Transactions of plain SQL on the metadata database."""

    dialect: str

    def read(self, fn: Callable[[Sql], T]) -> T:
        """Run ``fn`` in one read transaction (a consistent snapshot) and return its result."""
        ...

    def write(self, fn: Callable[[Sql], T], *, attempts: int = 10) -> T:
        """Run ``fn`` in one write transaction, retried whole on transient failures."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def in_list(name: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
    """``":name0, :name1, …"`` and its parameters, for ``column IN (…)``."""
    params = {f"{name}{i}": value for i, value in enumerate(values)}
    return ", ".join(f":{key}" for key in params) or "NULL", params


def is_unique_violation(exc: BaseException) -> bool:
    """Whether ``exc`` is an integrity error of either driver (a unique key already taken)."""
    if isinstance(exc, sqlite3.IntegrityError):
        return True
    return type(exc).__name__ == "IntegrityError" and type(exc).__module__.startswith(
        ("sqlalchemy", "psycopg")
    )


def sqlite_file(url: str) -> Path | None:
    """The database file of a plain ``sqlite:///PATH`` URL (no driver, no options), else None."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url or url == prefix + ":memory:":
        return None
    rest = url[len(prefix) :]
    if not rest or "%" in rest:  # percent-escapes are SQLAlchemy's to decode
        return None
    return Path(rest).expanduser().absolute()


def _backoff_s(attempt: int) -> float:
    ceiling = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in _BUSY_CODES
    message = str(exc)
    return "database is locked" in message or "is busy" in message


class _SqliteSql:
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def rows(self, statement: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        return self._conn.execute(statement, params or {}).fetchall()

    def run(self, statement: str, params: Params | None = None) -> int:
        return self._conn.execute(statement, params or {}).rowcount

    def run_many(self, statement: str, rows: Sequence[Params]) -> None:
        if rows:
            self._conn.executemany(statement, rows)


class SqliteDatabase:
    """The metadata database through the standard library's ``sqlite3`` (no SQLAlchemy).

    Open it with :meth:`open_current`, which only succeeds for an existing file whose schema is
    exactly the one this code knows; anything else (a new file, a schema behind or ahead) is
    left to :class:`MetadataStore`, which creates, migrates or refuses it. Connections are
    pooled and may serve any thread, one transaction at a time.
    """

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open_current(cls, url: str) -> SqliteDatabase | None:
        """The database at ``url`` if it is a SQLite file at the current schema, else None."""
        path = sqlite_file(url)
        if path is None or not path.is_file():
            return None
        database = cls(path)
        try:
            revisions = database.read(
                lambda sql: sql.rows("SELECT version_num FROM alembic_version")
            )
        except sqlite3.Error:
            database.close()
            return None
        if [row[0] for row in revisions] != [HEAD_REVISION]:
            database.close()
            return None
        return database

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        try:
            for pragma in _PRAGMAS:
                conn.execute(pragma)
        except BaseException:
            conn.close()
            raise
        return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                conn.close()
                return
        with self._lock:
            if not self._closed and len(self._idle) < _IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        conn.close()

    def _once(self, fn: Callable[[Sql], T], begin: str) -> T:
        conn = self._connect()
        try:
            conn.execute(begin)
            result = fn(_SqliteSql(conn))
            conn.execute("COMMIT")
            return result
        finally:
            self._release(conn)

    def read(self, fn: Callable[[Sql], T]) -> T:
        """Run ``fn`` in one (deferred) transaction: it sees one snapshot of the database."""
        for attempt in range(10):
            if attempt:
                time.sleep(_backoff_s(attempt))
            try:
                return self._once(fn, "BEGIN")
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
        raise self._busy()

    def write(self, fn: Callable[[Sql], T], *, attempts: int = 10) -> T:
        """Run ``fn`` in a ``BEGIN IMMEDIATE`` transaction, retrying busy and conflict failures."""
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        last: BaseException | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(_backoff_s(attempt))
            try:
                return self._once(fn, "BEGIN IMMEDIATE")
            except RetryableConflict as exc:
                last = exc
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                last = exc
        if isinstance(last, sqlite3.OperationalError):
            raise self._busy() from last
        raise WriteConflictError(
            f"a write to the metadata database kept conflicting with concurrent writes "
            f"({attempts} attempts); try again"
        ) from last

    def _busy(self) -> DatabaseBusyError:
        return DatabaseBusyError(
            f"the metadata database {self.path} stayed busy with another loopml process's "
            "write for too long; wait for it to finish and try again"
        )

    def close(self) -> None:
        """Close the idle connections; connections in use close when they are returned."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __repr__(self) -> str:
        return f"SqliteDatabase({str(self.path)!r})"


class _AlchemySql:
    def __init__(self, conn: Any, dialect: str) -> None:
        self._conn = conn
        self.dialect = dialect

    def rows(self, statement: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._conn.execute(_text(statement), params or {})]

    def run(self, statement: str, params: Params | None = None) -> int:
        return int(self._conn.execute(_text(statement), params or {}).rowcount)

    def run_many(self, statement: str, rows: Sequence[Params]) -> None:
        if rows:
            self._conn.execute(_text(statement), list(rows))


_texts: dict[str, Any] = {}


def _text(statement: str) -> Any:
    compiled = _texts.get(statement)
    if compiled is None:
        from sqlalchemy import text

        if len(_texts) >= 512:
            _texts.clear()
        compiled = _texts[statement] = text(statement)
    return compiled


class AlchemyDatabase:
    """The same plain SQL through :class:`MetadataStore` (PostgreSQL, or SQLite when migrating)."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata
        self.dialect = metadata.dialect

    def read(self, fn: Callable[[Sql], T]) -> T:
        """Run ``fn`` in one read-only transaction."""
        with self.metadata.read() as conn:
            return fn(_AlchemySql(conn, self.dialect))

    def write(self, fn: Callable[[Sql], T], *, attempts: int = 10) -> T:
        """Run ``fn`` through ``MetadataStore.run_write`` (its retries and translations)."""
        return self.metadata.run_write(
            lambda conn: fn(_AlchemySql(conn, self.dialect)), attempts=attempts
        )

    def close(self) -> None:
        """Nothing of its own to release: the metadata store owns the connections."""

    def __repr__(self) -> str:
        return f"AlchemyDatabase({self.metadata!r})"
