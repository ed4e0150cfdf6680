"""The metadata store's contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from loopml.errors import LoopMLError, UserInputError
from loopml.ids import new_id
from loopml.store.metadata import (
    HEAD_REVISION,
    DatabaseUnavailableError,
    InvalidDatabaseUrlError,
    MetadataStore,
    RetryableConflict,
    SchemaTooNewError,
    WriteConflictError,
)
from loopml.store.metadata.migrate import KNOWN_REVISIONS, alembic_config, schema_revision
from loopml.store.metadata.schema import dataset_versions, datasets, metadata

TABLES = {"datasets", "dataset_versions", "dataset_tags", "stat_cache", "remotes", "pins"}
PROCESSES = 4
WRITES_PER_PROCESS = 200

# Child processes start together at a given wall-clock time, after their imports, so that they
# really collide instead of running one after another.
OPEN_SCRIPT = """
import sys, time
from loopml.store.metadata import MetadataStore
url, start_at = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))
MetadataStore.open(url).close()
"""

WRITE_SCRIPT = """
import sys, time
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from loopml.ids import new_id
from loopml.store.metadata import MetadataStore, RetryableConflict
from loopml.store.metadata.schema import dataset_versions as dv

url, dataset_id, count, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
store = MetadataStore.open(url)

def add_version(conn):
    last = select(func.max(dv.c.number)).where(dv.c.dataset_id == dataset_id)
    number = (conn.execute(last).scalar() or 0) + 1
    try:
        conn.execute(insert(dv).values(
            id=new_id(), dataset_id=dataset_id, number=number, hash="0" * 64, size=1,
            file_count=1, message=None, author="test", created_at=int(time.time() * 1000),
        ))
    except IntegrityError as exc:
        raise RetryableConflict() from exc
    return number

time.sleep(max(0.0, start_at - time.time()))
for _ in range(count):
    store.run_write(add_version)
store.close()
"""


def run_together(script: str, args_per_process: list[list[str]]) -> None:
    """Run ``script`` in one child per argument list, all at once; each must exit cleanly."""
    start_at = time.time() + 1.0
    children = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-c", textwrap.dedent(script), *args, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in args_per_process
    ]
    failures = []
    for child in children:
        out, err = child.communicate(timeout=120)
        if child.returncode != 0 or err.strip():
            failures.append(f"exit {child.returncode}: {out}{err}")
    assert not failures, "\n".join(failures)


def add_dataset(conn: Connection, name: str = "images") -> str:
    dataset_id = new_id()
    conn.execute(
        insert(datasets).values(
            id=dataset_id, name=name, path="data/images", kind="dir", created_at=1
        )
    )
    return dataset_id


def version_row(dataset_id: str, number: int) -> dict[str, object]:
    return {
        "id": new_id(),
        "dataset_id": dataset_id,
        "number": number,
        "hash": "a" * 64,
        "size": 10,
        "file_count": 1,
        "message": None,
        "author": "test",
        "created_at": 1,
    }


def count_rows(store: MetadataStore, table_name: str) -> int:
    with store.read() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table_name}")).scalar_one())


def test_open_creates_schema_and_reopening_skips_alembic(metadata_url: str) -> None:
    with MetadataStore.open(metadata_url) as store:
        assert set(inspect(store.engine).get_table_names()) >= TABLES
        with store.read() as conn:
            assert schema_revision(conn) == HEAD_REVISION
        assert store.dialect in ("sqlite", "postgresql")
        assert (store.sqlite_path is not None) == (store.dialect == "sqlite")

    probe = (
        "import sys; from loopml.store.metadata import MetadataStore; "
        "MetadataStore.open(sys.argv[1]).close(); "
        "assert 'alembic' not in sys.modules, 'alembic imported on a current schema'"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", probe, metadata_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_head_revision_is_alembic_head() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_current_head() == HEAD_REVISION
    oldest_first = [script.revision for script in reversed(list(scripts.walk_revisions()))]
    assert tuple(oldest_first) == KNOWN_REVISIONS


def test_migrated_schema_matches_schema_module(store: MetadataStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.read() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_concurrent_first_opens_migrate_once(metadata_url: str) -> None:
    run_together(OPEN_SCRIPT, [[metadata_url]] * PROCESSES)
    with MetadataStore.open(metadata_url) as store:
        assert count_rows(store, "alembic_version") == 1
        assert set(inspect(store.engine).get_table_names()) >= TABLES


def test_concurrent_writers_lose_nothing(store: MetadataStore) -> None:
    dataset_id = store.run_write(add_dataset)
    run_together(
        WRITE_SCRIPT,
        [[store.url, dataset_id, str(WRITES_PER_PROCESS)] for _ in range(PROCESSES)],
    )
    with store.read() as conn:
        numbers = conn.execute(select(dataset_versions.c.number)).scalars().all()
    assert sorted(numbers) == list(range(1, PROCESSES * WRITES_PER_PROCESS + 1))


def test_write_that_raises_is_rolled_back(store: MetadataStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.write() as conn:
        add_dataset(conn)
        raise RuntimeError("boom")
    assert count_rows(store, "datasets") == 0

    calls = 0

    def fail(conn: Connection) -> None:
        nonlocal calls
        calls += 1
        add_dataset(conn)
        raise ValueError("not retried")

    with pytest.raises(ValueError, match="not retried"):
        store.run_write(fail)
    assert calls == 1
    assert count_rows(store, "datasets") == 0


def test_version_numbers_are_unique_per_dataset(store: MetadataStore) -> None:
    dataset_id = store.run_write(add_dataset)
    store.run_write(
        lambda conn: conn.execute(insert(dataset_versions), [version_row(dataset_id, 1)])
    )
    with pytest.raises(IntegrityError):
        store.run_write(
            lambda conn: conn.execute(insert(dataset_versions), [version_row(dataset_id, 1)])
        )
    other_id = store.run_write(lambda conn: add_dataset(conn, "other"))
    store.run_write(lambda conn: conn.execute(insert(dataset_versions), [version_row(other_id, 1)]))
    assert count_rows(store, "dataset_versions") == 2


def test_retryable_conflict_reruns_the_whole_transaction(store: MetadataStore) -> None:
    calls = 0

    def flaky(conn: Connection) -> str:
        nonlocal calls
        calls += 1
        dataset_id = add_dataset(conn)
        if calls < 3:
            raise RetryableConflict()
        return dataset_id

    store.run_write(flaky)
    assert calls == 3
    assert count_rows(store, "datasets") == 1  # the first two attempts were rolled back

    def always(conn: Connection) -> None:
        raise RetryableConflict()

    with pytest.raises(WriteConflictError, match="3 attempts"):
        store.run_write(always, attempts=3)


def test_read_transactions_refuse_writes(store: MetadataStore) -> None:
    with pytest.raises(DBAPIError), store.read() as conn:
        add_dataset(conn)
    store.run_write(add_dataset)  # the connection is writable again in a write transaction
    assert count_rows(store, "datasets") == 1


def test_database_newer_than_code_is_refused(metadata_url: str) -> None:
    with MetadataStore.open(metadata_url) as store:
        store.run_write(
            lambda conn: conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        )
    with pytest.raises(SchemaTooNewError, match=r"newer loopml.*upgrade loopml") as caught:
        MetadataStore.open(metadata_url)
    assert "\n" not in str(caught.value)


def test_unreachable_database_gives_one_line(unreachable_url: str, backend: str) -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError) as caught:
        MetadataStore.open(unreachable_url)
    message = str(caught.value)
    assert "\n" not in message
    assert "s3cret" not in message
    assert isinstance(caught.value, LoopMLError)
    if backend == "postgres":
        assert "LOOPML_DATABASE_URL" in message
        assert "PostgreSQL is running" in message
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    "url",
    ["mysql://user@host/db", "not a url", "postgresql+psycopg2://u@h/d", "sqlite+aiosqlite:///x"],
)
def test_unsupported_urls_are_user_errors(url: str) -> None:
    with pytest.raises(InvalidDatabaseUrlError) as caught:
        MetadataStore.open(url)
    assert isinstance(caught.value, UserInputError)


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    with MetadataStore.open(f"sqlite:///{tmp_path / 'deep' / 'er' / 'loopml.db'}") as store:
        assert store.sqlite_path == tmp_path / "deep" / "er" / "loopml.db"
        with store.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_postgres_password_is_masked() -> None:
    url = "postgresql+psycopg://loopml:s3cret@127.0.0.1:1/test"
    store = MetadataStore.open(url, migrate=False)
    try:
        assert "s3cret" not in repr(store)
        assert "s3cret" not in store.display_url
    finally:
        store.close()
