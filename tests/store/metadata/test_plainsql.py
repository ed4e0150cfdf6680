"""Plain SQL on the metadata database: the same statements through ``sqlite3`` and SQLAlchemy.

``SqliteDatabase`` (the standard library) is what the hot paths use on a SQLite workspace;
``AlchemyDatabase`` runs the very same statements through ``MetadataStore`` (PostgreSQL, or a
SQLite file that is not at the current schema).
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.store.metadata import (
    DatabaseBusyError,
    MetadataStore,
    RetryableConflict,
    WriteConflictError,
)
from loopml.store.metadata.plainsql import (
    AlchemyDatabase,
    Sql,
    SqlDatabase,
    SqliteDatabase,
    in_list,
    is_unique_violation,
    sqlite_file,
)
from loopml.store.schema_revisions import HEAD_REVISION

DRIVERS = ["sqlite3", "sqlalchemy", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=DRIVERS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlDatabase]:
    """A migrated metadata database spoken to in plain SQL by the driver under test."""
    from support import postgres_schema

    if request.param == "postgres":
        with postgres_schema() as url, MetadataStore.open(url) as store:
            yield AlchemyDatabase(store)
        return
    url = f"sqlite:///{tmp_path / 'loopml.db'}"
    with MetadataStore.open(url) as store:
        if request.param == "sqlalchemy":
            yield AlchemyDatabase(store)
            return
        fast = SqliteDatabase.open_current(url)
        assert fast is not None
        try:
            yield fast
        finally:
            fast.close()


def _experiments(sql: Sql) -> list[tuple[str, str]]:
    return [(str(i), str(n)) for i, n in sql.rows("SELECT id, name FROM experiments ORDER BY id")]


def _add(sql: Sql, ident: str, name: str) -> int:
    return sql.run(
        "INSERT INTO experiments (id, name, created_at) VALUES (:id, :name, 1)",
        {"id": ident, "name": name},
    )


def test_statements_read_write_and_count(database: SqlDatabase) -> None:
    assert database.write(lambda sql: _add(sql, "a1", "first")) == 1
    database.write(
        lambda sql: sql.run_many(
            "INSERT INTO experiments (id, name, created_at) VALUES (:id, :name, :at)",
            [{"id": "b2", "name": "second", "at": 2}, {"id": "c3", "name": "third", "at": 3}],
        )
    )
    database.write(lambda sql: sql.run_many("DELETE FROM experiments WHERE id = :id", []))
    ids, params = in_list("e", ["a1", "c3", "zz"])
    found = database.read(
        lambda sql: sql.rows(
            f"SELECT name FROM experiments WHERE id IN ({ids}) ORDER BY id", params
        )
    )
    assert found == [("first",), ("third",)]
    none, nothing = in_list("e", [])
    assert (
        database.read(
            lambda sql: sql.rows(f"SELECT id FROM experiments WHERE id IN ({none})", nothing)
        )
        == []
    )
    changed = database.write(
        lambda sql: sql.run("UPDATE experiments SET created_at = 9 WHERE id != :id", {"id": "a1"})
    )
    assert changed == 2
    assert database.dialect in ("sqlite", "postgresql")


def test_a_failing_body_leaves_nothing_behind(database: SqlDatabase) -> None:
    def half(sql: Sql) -> None:
        _add(sql, "a1", "first")
        raise ValueError("changed my mind")

    with pytest.raises(ValueError, match="changed my mind"):
        database.write(half)
    assert database.read(_experiments) == []
    database.write(lambda sql: _add(sql, "a1", "first"))
    assert database.read(_experiments) == [("a1", "first")]


def test_a_unique_violation_is_recognised_and_a_conflict_is_retried(
    database: SqlDatabase,
) -> None:
    database.write(lambda sql: _add(sql, "a1", "first"))
    with pytest.raises(Exception) as caught:
        database.write(lambda sql: _add(sql, "a2", "first"))
    assert is_unique_violation(caught.value)

    tries: list[int] = []

    def flaky(sql: Sql) -> str:
        tries.append(1)
        if len(tries) < 3:
            raise RetryableConflict()
        _add(sql, "b2", "second")
        return "done"

    assert database.write(flaky) == "done"
    assert len(tries) == 3
    with pytest.raises(WriteConflictError):
        database.write(lambda sql: (_ for _ in ()).throw(RetryableConflict()), attempts=2)
    assert [n for _, n in database.read(_experiments)] == ["first", "second"]


def test_the_fast_path_opens_only_a_sqlite_file_at_the_current_schema(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'nowhere.db'}"
    assert SqliteDatabase.open_current(missing) is None
    assert not (tmp_path / "nowhere.db").exists()  # looking does not create it
    assert SqliteDatabase.open_current("postgresql+psycopg://u@h/db") is None
    assert SqliteDatabase.open_current("sqlite:///:memory:") is None

    url = f"sqlite:///{tmp_path / 'loopml.db'}"
    MetadataStore.open(url).close()
    opened = SqliteDatabase.open_current(url)
    assert opened is not None and opened.path == tmp_path / "loopml.db"
    opened.close()
    assert SqliteDatabase.open_current(url + "?timeout=5") is None  # options: SQLAlchemy's

    conn = sqlite3.connect(tmp_path / "loopml.db")
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    conn.close()
    assert HEAD_REVISION != "0001"
    assert SqliteDatabase.open_current(url) is None  # behind: MetadataStore migrates it


def test_sqlite_file_reads_plain_urls_only() -> None:
    assert sqlite_file("sqlite:////abs/loopml.db") == Path("/abs/loopml.db")
    assert sqlite_file("sqlite:///rel.db") == Path.cwd() / "rel.db"
    assert sqlite_file("sqlite:///a%20b.db") is None
    assert sqlite_file("sqlite+pysqlite:///x.db") is None
    assert sqlite_file("sqlite://") is None


def test_a_busy_database_is_waited_for_and_then_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'loopml.db'}"
    MetadataStore.open(url).close()
    database = SqliteDatabase.open_current(url)
    assert database is not None
    try:
        # Another connection holds the write lock for a moment: the write waits for it.
        other = sqlite3.connect(
            tmp_path / "loopml.db", isolation_level=None, check_same_thread=False
        )
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
        release.start()
        database.write(lambda sql: _add(sql, "a1", "first"))
        release.join()
        other.close()
        assert database.read(_experiments) == [("a1", "first")]

        def locked(sql: Sql) -> None:
            raise sqlite3.OperationalError("database is locked")

        monkeypatch.setattr("loopml.store.metadata.plainsql._backoff_s", lambda attempt: 0.0)
        with pytest.raises(DatabaseBusyError, match="stayed busy"):
            database.write(locked, attempts=3)
    finally:
        database.close()


def test_connections_serve_any_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'loopml.db'}"
    MetadataStore.open(url).close()
    database = SqliteDatabase.open_current(url)
    assert database is not None
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for j in range(20):
                database.write(lambda sql, j=j: _add(sql, f"{index}-{j}", f"e{index}-{j}"))
                database.read(_experiments)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(database.read(_experiments)) == 80
    database.close()


def test_importing_the_fast_path_does_not_import_sqlalchemy(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys; import loopml.store.metadata.plainsql, loopml.store.metadata; "
        "import loopml.tracking.sql_store, loopml.pipelines.records; "
        "print('sqlalchemy' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
