"""Opening the metadata database and running transactions on it.

SQLite is the embedded default and PostgreSQL the team backend; both sit behind
:class:`MetadataStore`. On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` so that
it takes the write lock up front (waiting on the busy timeout) instead of upgrading a read lock
half-way, which SQLite refuses with "database is locked" no matter how long the timeout is.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.pool import ConnectionPoolEntry

from loopml.store.metadata import migrate as _migrate
from loopml.store.metadata.errors import (
    DatabaseBusyError,
    DatabaseUnavailableError,
    InvalidDatabaseUrlError,
    MetadataError,
    MissingDriverError,
    RetryableConflict,
    WriteConflictError,
)

__all__ = ["MetadataStore"]

T = TypeVar("T")

# busy_timeout comes first: switching to WAL needs a lock that another process opening the same
# brand-new file may hold, and only the busy timeout makes that a wait instead of an error.
_SQLITE_PRAGMAS: Final = (
    "PRAGMA busy_timeout=30000",
    "PRAGMA journal_mode=WAL",
    # WAL with NORMAL cannot corrupt the database; a power cut may only lose the last commits.
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
# Execution option read by the SQLite "begin" hook: "read", "write" or absent (plain BEGIN).
_BEGIN_MODE: Final = "loopml_begin_mode"
_QUERY_ONLY: Final = "loopml_query_only"

_SQLITE_BUSY_CODES: Final = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
# serialization_failure, deadlock_detected, lock_not_available: retrying the transaction is the
# remedy PostgreSQL documents for each of them.
_PG_RETRY_SQLSTATES: Final = frozenset({"40001", "40P01", "55P03"})
_BACKOFF_BASE_S: Final = 0.005
_BACKOFF_CAP_S: Final = 0.5
_PG_CONNECT_TIMEOUT_S: Final = 10
# Retrying alone cannot promise progress on PostgreSQL: a writer can lose the race for the same
# value to fresh competitors again and again. So every write transaction holds this advisory key
# shared, and a writer that has failed _ESCALATE_AFTER times takes it exclusively: it waits for the
# transactions in flight, bars new ones (PostgreSQL queues later requests behind it) and then
# cannot conflict with them. Escalating late keeps rare the herd it releases on commit. SQLite
# needs none of this: BEGIN IMMEDIATE already runs writers one at a time.
_PG_WRITE_KEY: Final = 0x6C6F6F706D6C5700  # "loopmlW\0"
_PG_SHARED_WRITE = text("SELECT pg_advisory_xact_lock_shared(:key)").bindparams(key=_PG_WRITE_KEY)
_PG_EXCLUSIVE_WRITE = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=_PG_WRITE_KEY)
_ESCALATE_AFTER: Final = 5
_URL_HINT: Final = (
    "expected sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE; "
    "check LOOPML_DATABASE_URL or [store] database_url in loopml.toml"
)


class MetadataStore:
    """The metadata database: an engine plus transactions that behave alike on both backends.

    Use :meth:`read` for queries, and :meth:`run_write` (or :meth:`write` when the body must not
    be repeated) for changes.
    """

    url: str
    engine: Engine
    dialect: str

    def __init__(self, url: str, engine: Engine, sqlite_path: Path | None) -> None:
        self.url = url
        self.engine = engine
        self.dialect = engine.dialect.name
        self._sqlite_path = sqlite_path

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> MetadataStore:
        """Open the database at ``url``, creating the SQLite file's folder if needed.

        With ``migrate`` (the default) the schema is brought to :data:`HEAD_REVISION` when it is
        behind, and a database written by a newer loopml is refused. ``migrate=False`` touches
        nothing: the first connection happens on first use.
        """
        parsed = _parse_url(url)
        sqlite_path: Path | None = None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            sqlite_path = Path(str(parsed.database)).expanduser().absolute()
            try:
                sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailableError(
                    f"cannot create the folder {sqlite_path.parent} for the metadata database "
                    f"({exc.strerror or exc}); check the path and its permissions"
                ) from exc
            # An absolute path keeps the engine on the same file if the process changes folder.
            parsed = parsed.set(database=str(sqlite_path))
        store = cls(url, _create_engine(parsed), sqlite_path)
        if migrate:
            try:
                _migrate.ensure_schema(store)
            except BaseException:
                store.close()
                raise
        return store

    @property
    def sqlite_path(self) -> Path | None:
        """The database file when SQLite (for fast reads with the stdlib ``sqlite3``), else None."""
        return self._sqlite_path

    @property
    def display_url(self) -> str:
        """The URL with its password masked, for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for queries, in one read-only transaction (a consistent snapshot).

        Writing through it fails at once instead of risking a lock upgrade; use :meth:`write`.
        """
        try:
            with self._connect() as conn:
                if self.dialect == "sqlite":
                    conn.execution_options(**{_BEGIN_MODE: "read"})
                else:
                    conn.execution_options(postgresql_readonly=True)
                yield conn
        except DBAPIError as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed on exit, rolled back if the body raises.

        The body runs once; lock and conflict errors become :class:`DatabaseBusyError` or
        :class:`WriteConflictError`. Prefer :meth:`run_write`, which retries them.
        """
        try:
            with self._transaction() as conn:
                yield conn
        except DBAPIError as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from exc

    def run_write(self, fn: Callable[[Connection], T], *, attempts: int = 10) -> T:
        """Run ``fn`` in a write transaction and return its result, retrying transient failures.

        The whole transaction is retried, with jittered exponential backoff, when SQLite stays
        busy, when PostgreSQL reports a serialization failure or deadlock, and when ``fn`` raises
        :class:`RetryableConflict` (which it does for an ``IntegrityError`` it expects from a
        concurrent writer). ``fn`` must therefore have no effects outside the transaction, and
        must not open another write transaction on this store (on SQLite that waits on itself).
        """
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        last: RetryableConflict | DBAPIError | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(_backoff_s(attempt))
            try:
                # The last attempt is escalated too, so that a small ``attempts`` still ends
                # with a try that concurrent writers cannot spoil.
                escalate = attempt >= _ESCALATE_AFTER or 0 < attempt == attempts - 1
                with self._transaction(exclusive=escalate) as conn:
                    return fn(conn)
            except RetryableConflict as exc:
                last = exc
            except DBAPIError as exc:
                if not _is_transient(exc):
                    error = self._translate(exc)
                    if error is None:
                        raise
                    raise error from exc
                last = exc
        if isinstance(last, DBAPIError):
            error = self._translate(last)
            if error is not None:
                raise error from last
        raise WriteConflictError(
            f"a write to the metadata database kept conflicting with concurrent writes "
            f"({attempts} attempts); try again"
        ) from last

    def close(self) -> None:
        """Close every pooled connection. The store must not be used afterwards."""
        self.engine.dispose()

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetadataStore({self.display_url!r})"

    @contextmanager
    def _transaction(self, *, exclusive: bool = False) -> Iterator[Connection]:
        """A write transaction whose driver errors are left raw, for ``run_write`` to classify.

        ``exclusive`` runs it alone among this database's write transactions (PostgreSQL).
        """
        with self._connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(**{_BEGIN_MODE: "write"})
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(_PG_EXCLUSIVE_WRITE if exclusive else _PG_SHARED_WRITE)
                yield conn

    def _connect(self) -> Connection:
        try:
            return self.engine.connect()
        except DBAPIError as exc:
            if _is_transient(exc):
                raise  # A busy SQLite file while setting pragmas: retried or translated above.
            raise self._unavailable(exc) from exc

    def _translate(self, exc: DBAPIError) -> MetadataError | None:
        """The user-facing error for a driver error, or None when it is not ours to explain."""
        if _is_transient(exc):
            if self.dialect == "sqlite":
                return DatabaseBusyError(
                    f"the metadata database {self._sqlite_path} stayed busy with another loopml "
                    "process's write for too long; wait for it to finish and try again"
                )
            return WriteConflictError(
                "a concurrent write to the metadata database conflicted with this one; try again"
            )
        if exc.connection_invalidated:
            return self._unavailable(exc)
        return None

    def _unavailable(self, exc: DBAPIError) -> DatabaseUnavailableError:
        reason = _first_line(exc.orig if exc.orig is not None else exc)
        password = self.engine.url.password
        if password:
            reason = reason.replace(str(password), "***")
        if self.dialect == "sqlite":
            return DatabaseUnavailableError(
                f"cannot open the metadata database {self._sqlite_path} ({reason}); "
                "check that the file and its folder exist and are writable"
            )
        return DatabaseUnavailableError(
            f"cannot connect to the metadata database {self.display_url} ({reason}); "
            "check LOOPML_DATABASE_URL and that PostgreSQL is running"
        )


def _parse_url(url: str) -> URL:
    """Parse and check ``url``; ``postgresql://`` (no driver) means psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        # The URL may hold a password, so it is not echoed back.
        raise InvalidDatabaseUrlError(
            f"the metadata database URL is not a valid URL ({_URL_HINT})"
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    raise InvalidDatabaseUrlError(
        f"loopml cannot store metadata in {parsed.drivername!r} databases ({_URL_HINT})"
    )


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url)
        _install_sqlite_hooks(engine)
        return engine
    connect_args: dict[str, Any] = {}
    # Without a timeout an unreachable host (a dropped packet, not a refusal) hangs forever.
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = _PG_CONNECT_TIMEOUT_S
    if "application_name" not in url.query:
        connect_args["application_name"] = "loopml"
    try:
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except (ImportError, NoSuchModuleError):
        raise MissingDriverError("the PostgreSQL metadata store", "postgres") from None


def _install_sqlite_hooks(engine: Engine) -> None:
    """Take transaction control away from pysqlite so that we choose how each BEGIN starts.

    This is SQLAlchemy's documented recipe for SQLite transactional DDL and SAVEPOINT.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
        # pysqlite otherwise emits its own deferred BEGIN before DML and commits before DDL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()
        record.info[_QUERY_ONLY] = False

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_MODE)
        # A deferred read transaction that tries to write may find its snapshot stale and fail
        # with "database is locked" at once; query_only turns that into an immediate, clear
        # error at the offending statement. The pragma is only sent when it changes.
        query_only = mode == "read"
        if conn.info.get(_QUERY_ONLY) != query_only:
            conn.exec_driver_sql(f"PRAGMA query_only={int(query_only)}")
            conn.info[_QUERY_ONLY] = query_only
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "write" else "BEGIN")


def _is_transient(exc: DBAPIError) -> bool:
    """True for errors that retrying the whole transaction is expected to fix."""
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        code = getattr(orig, "sqlite_errorcode", None)
        if isinstance(code, int):
            return (code & 0xFF) in _SQLITE_BUSY_CODES
        message = str(orig)
        return "database is locked" in message or "is busy" in message
    return getattr(orig, "sqlstate", None) in _PG_RETRY_SQLSTATES


def _backoff_s(attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based); jitter desynchronises writers."""
    ceiling = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__
