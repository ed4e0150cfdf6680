"""Fixtures that run the metadata contract tests against SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from loopml.store.metadata import MetadataStore

# Read at import: the suite's autouse fixture clears every LOOPML_* variable before each test.
PG_ADMIN_URL = os.environ.get(
    "LOOPML_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
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
    yield from _postgres_schema_url()


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


def _postgres_schema_url() -> Iterator[str]:
    admin = make_url(PG_ADMIN_URL)
    schema = f"loopml_test_{uuid.uuid4().hex[:16]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    problem = None
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except DBAPIError as exc:
        problem = str(exc.orig).strip().splitlines()[0]
    if problem is not None:
        engine.dispose()
        # Fail, never skip: CI starts PostgreSQL, so its absence is a broken setup.
        pytest.fail(
            f"PostgreSQL is not reachable at {admin.render_as_string(hide_password=True)} "
            f"({problem}); start it or set LOOPML_TEST_PG_URL",
            pytrace=False,
        )
    url = admin.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
