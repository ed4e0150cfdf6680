"""Fixtures of the pipeline tests: a project package written into the workspace, and hygiene.

Pipeline code lives in real files inside the test's workspace, as a user's would: code hashing
reads source files, step identity is ``module:qualname``, and worker processes import the
step by that name. Each test gets a package of its own (a unique name), and every module of
it is dropped from ``sys.modules`` before a re-import, so that an edited file is seen afresh.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from loopml.store.workspace import Workspace


class Project:
    """A package ``proj_<random>`` under the workspace root, on ``sys.path``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.package = f"proj_{uuid.uuid4().hex[:10]}"
        self.folder = root / self.package
        self.folder.mkdir()
        (self.folder / "__init__.py").write_text("")

    def write(self, name: str, source: str) -> Path:
        """Write module ``name`` (``flow`` → ``<package>/flow.py``) from dedented source."""
        path = self.folder / f"{name.replace('.', '/')}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"))
        # Written "a while ago", as a user's files are, so the per-process memo of code hashes
        # is in play (files changed within the last seconds are always hashed afresh).
        then = time.time_ns() - 10 * 10**9
        os.utime(path, ns=(then, then))
        # Bytecode is validated by the source's mtime in whole seconds and its size: an edit
        # within the same second that keeps the size would otherwise import the old code.
        for cache in self.folder.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        importlib.invalidate_caches()
        return path

    def edit(self, name: str, old: str, new: str) -> None:
        """Replace ``old`` (which must occur) by ``new`` in module ``name``."""
        path = self.folder / f"{name.replace('.', '/')}.py"
        text = path.read_text()
        assert old in text, f"{old!r} not in {path}"
        self.write(name, text.replace(old, new))

    def purge(self) -> None:
        """Forget every imported module of the package."""
        for module in [
            m for m in sys.modules if m == self.package or m.startswith(f"{self.package}.")
        ]:
            del sys.modules[module]

    def load(self, name: str = "flow") -> ModuleType:
        """Import module ``name`` afresh (every module of the package is imported again)."""
        self.purge()
        return importlib.import_module(f"{self.package}.{name}")


@pytest.fixture
def project(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """An empty package in the workspace; its parent (the workspace root) is on ``sys.path``."""
    monkeypatch.syspath_prepend(str(workspace.root))
    made = Project(workspace.root)
    try:
        yield made
    finally:
        made.purge()


@pytest.fixture(autouse=True)
def _no_leaks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No tracking session, writer thread or user materializer survives a test."""
    from loopml.artifacts import registry

    monkeypatch.setattr(registry, "_user", {})
    yield
    from loopml.tracking import fluent

    workspaces = [session.workspace for session in fluent._sessions.values()]
    fluent._shutdown()
    for workspace in workspaces:
        workspace.close()
    fluent._stack().clear()
    fluent._process_seeds.clear()
