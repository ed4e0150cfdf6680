"""Fixtures of the tracking tests: a fresh tracking session per test, and SQLite/PostgreSQL.

The tracking session is process-global (one per workspace root, see
``loopml.tracking.fluent._sessions``), so every test here starts and ends without one: runs
left active are ended, writers are flushed and joined, and database connections are closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from tracking_helpers import close_tracking

from loopml.store.workspace import Workspace, init_workspace
from support import postgres_schema

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(autouse=True)
def _fresh_tracking() -> Iterator[None]:
    """No tracking session, active run or writer thread survives a test."""
    close_tracking()
    yield
    close_tracking()


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    """The metadata database under test: ``sqlite`` or ``postgres``."""
    return str(request.param)


@pytest.fixture
def tracked_workspace(
    db_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """A fresh workspace (the current folder) whose metadata lives on ``db_backend``.

    For PostgreSQL, ``LOOPML_DATABASE_URL`` points at a schema of this test's own, so that
    ``start_run`` and subprocesses started by the test find it like a user's would.
    """
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    schema = postgres_schema() if db_backend == "postgres" else nullcontext(None)
    with schema as url:
        if url is not None:
            monkeypatch.setenv("LOOPML_DATABASE_URL", url)
        ws, _ = init_workspace(root)
        try:
            yield ws
        finally:
            # Before the schema is dropped: nothing may still be writing into it.
            close_tracking()
            ws.close()
