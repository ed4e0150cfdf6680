"""``loopml.lock``: the committable list of each dataset's current version and hash.

Checking out an old commit and then ``loopml data checkout NAME`` restores the data that commit
used. The file is rewritten atomically under an exclusive lock, so concurrent ``data add``
commands in one workspace never lose each other's entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loopml.config import WORKSPACE_DIR
from loopml.errors import ConfigError
from loopml.store.fsutil import atomic_write_bytes

__all__ = ["LOCK_FILE", "LockEntry", "read_lock", "update_lock"]

LOCK_FILE = "loopml.lock"
_HEADER = (
    "# loopml.lock: the dataset versions this commit uses. Written by loopml; commit it.\n"
    "# `loopml pull` fetches them and `loopml data checkout NAME` restores them.\n"
)


@dataclass(frozen=True, slots=True)
class LockEntry:
    """One dataset's pinned version."""

    name: str
    path: str
    version: int
    hash: str


def read_lock(root: Path) -> dict[str, LockEntry]:
    """The entries of ``loopml.lock`` (empty when there is none)."""
    path = root / LOCK_FILE
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return {
            name: LockEntry(name, str(e["path"]), int(e["version"]), str(e["hash"]))
            for name, e in data.get("datasets", {}).items()
        }
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path} is malformed ({exc}); restore it from git, "
            "or delete it and run `loopml data add`"
        ) from None


def _render(entries: dict[str, LockEntry]) -> str:
    lines = [_HEADER]
    for name in sorted(entries):
        entry = entries[name]
        lines.append(f"\n[datasets.{json.dumps(name)}]\n")
        lines.append(f"path = {json.dumps(entry.path, ensure_ascii=False)}\n")
        lines.append(f"version = {entry.version}\n")
        lines.append(f"hash = {json.dumps(entry.hash)}\n")
    return "".join(lines)


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    lock_path = root / WORKSPACE_DIR / "lockfile.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def update_lock(root: Path, entry: LockEntry) -> None:
    """Set one dataset's entry, keeping every other entry as it is."""
    with _exclusive(root):
        entries = read_lock(root)
        if entries.get(entry.name) == entry:
            return
        entries[entry.name] = entry
        atomic_write_bytes(root / LOCK_FILE, _render(entries).encode("utf-8"))
