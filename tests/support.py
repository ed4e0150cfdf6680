"""Helpers shared by test modules (imported as ``support``; conftest files are not modules)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

__all__ = ["LOOPML_BIN", "PG_ADMIN_URL", "Cli", "CliResult", "postgres_schema", "run_loopml"]

LOOPML_BIN = Path(sys.executable).with_name("loopml")
# Read at import: the suite's autouse fixture removes every LOOPML_* variable before each test.
PG_ADMIN_URL = os.environ.get(
    "LOOPML_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@dataclass
class CliResult:
    """What a CLI invocation printed and returned."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr


Cli = Callable[..., CliResult]


def run_loopml(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    user: int | None = None,
) -> CliResult:
    """Run the installed ``loopml`` script in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [str(LOOPML_BIN), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        user=user,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL to a brand-new PostgreSQL schema, dropped afterwards."""
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
