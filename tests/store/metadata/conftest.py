"""Fixtures that run the metadata contract tests against SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.store.metadata import MetadataStore

# Read at import: the suite's autouse fixture clears every LOOPML_* variable before each test.
from support import postgres_schema

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test: ``sqlite`` or ``postgres``."""
    return str(request.param)


@pytest.fixture
def metadata_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL to a brand-new, empty database: a SQLite file or a PostgreSQL schema of its own."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'workspace' / '.loopml' / 'loopml.db'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def store(metadata_url: str) -> Iterator[MetadataStore]:
    """An opened, migrated store, closed after the test."""
    opened = MetadataStore.open(metadata_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def unreachable_url(backend: str, tmp_path: Path) -> str:
    """A URL that cannot be opened: a file under a regular file, or a closed port."""
    if backend == "sqlite":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        return f"sqlite:///{blocker / 'loopml.db'}"
    return "postgresql+psycopg://loopml:s3cret@127.0.0.1:1/test"
