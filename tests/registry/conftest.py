"""Fixtures of the registry tests: no tracking session survives a test, and a training set."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from registry_helpers import churn_frame, close_tracking

from loopml.store.workspace import Workspace, init_workspace
from support import postgres_schema


@pytest.fixture(autouse=True)
def _fresh_tracking() -> Iterator[None]:
    """No tracking session, active run or writer thread survives a test."""
    close_tracking()
    yield
    close_tracking()


@pytest.fixture
def churn() -> tuple[pd.DataFrame, np.ndarray]:
    """The training frame and its labels."""
    return churn_frame()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_workspace(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """A fresh workspace (the current folder) whose metadata is on SQLite or PostgreSQL.

    For PostgreSQL, ``LOOPML_DATABASE_URL`` points at a schema of this test's own, so that
    every ``Workspace.open()`` of the test finds it like a user's would.
    """
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
            close_tracking()  # before the schema is dropped: nothing may still write into it
            ws.close()
