"""Fixtures of the gate tests: no tracking session survives a test; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from gating_helpers import close_tracking

from loopml.store.workspace import Workspace, init_workspace
from support import postgres_schema


@pytest.fixture(autouse=True)
def _fresh_tracking() -> Iterator[None]:
    close_tracking()
    yield
    close_tracking()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_workspace(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """A fresh workspace (the current folder) whose metadata is on SQLite or PostgreSQL."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    schema = postgres_schema() if request.param == "postgres" else nullcontext(None)
    with schema as url:
        if url is not None:
            monkeypatch.setenv("LOOPML_DATABASE_URL", url)
        ws, _ = init_workspace(root)
        try:
            yield ws
        finally:
            close_tracking()
            ws.close()
