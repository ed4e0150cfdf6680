"""Run manifests: what a run needs to be reproduced, captured without being asked.

The environment (Python, packages, platform, hardware) is captured once per process and stored
once as a deduplicated object. The git state is read by ``git`` in a background thread started
with the first run, never on the path of a run the user is waiting for, and refreshed when it
is older than a few seconds. The per-run part (command line, seeds, dataset versions read, the
environment's and git state's digests) is written when the run ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GitState", "ManifestCapture", "capture_environment", "capture_git"]

_GIT_TTL_S = 30.0
_GIT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class GitState:
    """The repository the code ran from."""

    commit: str | None
    branch: str | None
    dirty: bool
    diff_hash: str | None  # a hash of uncommitted changes (tracked diff plus untracked names)
    changed_files: tuple[str, ...]
    root: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "commit": self.commit,
            "branch": self.branch,
            "dirty": self.dirty,
            "diff_hash": self.diff_hash,
            "changed_files": list(self.changed_files),
            "root": self.root,
        }


def _git_env() -> dict[str, str]:
    return {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}


def _git(args: list[str], cwd: Path) -> bytes | None:
    return _git_all([args], cwd)[0]


def _git_all(commands: list[list[str]], cwd: Path) -> list[bytes | None]:
    """Run independent ``git`` commands at once; each one's stdout, or None where it failed.

    Started together, they take as long as the slowest (in a dirty repository, the diff)
    rather than the sum of their start-ups.
    """
    started: list[subprocess.Popen[bytes] | None] = []
    env = _git_env()
    for args in commands:
        try:
            started.append(
                subprocess.Popen(
                    ["git", *args],
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            )
        except OSError:
            started.append(None)
    deadline = time.monotonic() + _GIT_TIMEOUT_S
    results: list[bytes | None] = []
    for proc in started:
        if proc is None:
            results.append(None)
            continue
        try:
            out, _ = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            results.append(None)
            continue
        results.append(out if proc.returncode == 0 else None)
    return results


def capture_git(cwd: Path) -> GitState:
    """Commit, branch, and a hash of uncommitted changes of the repository holding ``cwd``."""
    root = _git(["rev-parse", "--show-toplevel"], cwd)
    if root is None:
        return GitState(None, None, False, None, (), None)
    top = Path(root.decode().strip())
    # The diff is taken at once with the rest (only used when something changed).
    commit, branch, status_out, diff = _git_all(
        [
            ["rev-parse", "HEAD"],
            ["rev-parse", "--abbrev-ref", "HEAD"],
            ["status", "--porcelain=v1", "-z", "--untracked-files=all"],
            ["diff", "HEAD", "--binary"],
        ],
        top,
    )
    status = status_out or b""
    changed = tuple(
        sorted(entry[3:].decode(errors="replace") for entry in status.split(b"\0") if entry[3:])
    )
    diff_hash = None
    if changed:
        digest = hashlib.blake2b(diff or b"", digest_size=16)
        for name in changed:
            path = top / name
            if path.is_file() and not path.is_symlink():
                digest.update(name.encode())
                try:
                    digest.update(path.read_bytes() if path.stat().st_size < 8 << 20 else b"")
                except OSError:
                    pass
        diff_hash = digest.hexdigest()
    return GitState(
        commit.decode().strip() if commit else None,
        branch.decode().strip() if branch else None,
        bool(changed),
        diff_hash,
        changed,
        str(top),
    )


def installed_packages() -> list[str]:
    """``name==version`` of every installed distribution, from the metadata folder names.

    Reading each distribution's METADATA file costs ~0.1 s for a data-science environment;
    the ``name-version.dist-info`` folder names carry the same two facts (PEP 427/376) and
    are read with one ``scandir`` per path entry. Legacy ``.egg-info`` folders without a
    version in their name fall back to ``importlib.metadata``.
    """
    from importlib import metadata

    found: dict[str, str] = {}
    for entry in sys.path:
        folder = entry or "."
        try:
            names = [e.name for e in os.scandir(folder) if e.is_dir()]
        except OSError:
            continue
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            if not dot or suffix not in ("dist-info", "egg-info"):
                continue
            package, sep, version = stem.partition("-")
            if sep and version and package.lower() not in found:
                found[package.lower()] = f"{package}=={version.split('-')[0]}"
            elif not sep:
                try:
                    dist = metadata.distribution(package)
                    found.setdefault(package.lower(), f"{package}=={dist.version}")
                except metadata.PackageNotFoundError:
                    continue
    return sorted(found.values(), key=str.lower)


def capture_environment() -> dict[str, Any]:
    """Python, installed packages, platform and hardware of this process."""
    packages = installed_packages()
    gpus: list[dict[str, Any]] = []
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                {"name": str(pynvml.nvmlDeviceGetName(handle)), "memory_mb": memory.total >> 20}
            )
    except Exception:
        gpus = []
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "packages": packages,
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "libc": "-".join(platform.libc_ver()),
        },
        "hardware": {
            "cpu_count": os.cpu_count(),
            "memory_mb": _memory_bytes() >> 20,
            "gpus": gpus,
        },
    }


def _memory_bytes() -> int:
    """The machine's physical memory: from ``sysconf`` where there is one (the same figure
    ``psutil`` reports, without importing it on the path of every run), else from ``psutil``."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        pages = size = -1
    if pages > 0 and size > 0:
        return int(pages * size)
    import psutil

    return int(psutil.virtual_memory().total)


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The one serialisation used for stored manifests (sorted keys, no whitespace)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


@dataclass
class ManifestCapture:
    """Process-wide capture of the slow parts, done in background threads."""

    cwd: Path = field(default_factory=Path.cwd)
    _environment: dict[str, Any] | None = None
    _env_thread: threading.Thread | None = None
    _git: GitState | None = None
    _git_at: float = 0.0
    _git_thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Begin capturing what is missing or stale; returns at once."""
        with self._lock:
            if self._environment is None and self._env_thread is None:
                self._env_thread = threading.Thread(
                    target=self._capture_env, name="loopml-env", daemon=True
                )
                self._env_thread.start()
            stale = time.monotonic() - self._git_at > _GIT_TTL_S
            if (self._git is None or stale) and (
                self._git_thread is None or not self._git_thread.is_alive()
            ):
                self._git_thread = threading.Thread(
                    target=self._capture_git, name="loopml-git", daemon=True
                )
                self._git_thread.start()

    def _capture_env(self) -> None:
        environment = capture_environment()
        with self._lock:
            self._environment = environment

    def _capture_git(self) -> None:
        state = capture_git(self.cwd)
        with self._lock:
            self._git, self._git_at = state, time.monotonic()

    def environment(self, timeout: float = 30.0) -> dict[str, Any]:
        """The environment, waiting for its capture if needed."""
        thread = self._env_thread
        if self._environment is None and thread is not None:
            thread.join(timeout)
        if self._environment is None:
            self._capture_env()
        assert self._environment is not None
        return self._environment

    def git(self, timeout: float = 30.0) -> GitState:
        """The git state, waiting for its capture if needed."""
        thread = self._git_thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)
        if self._git is None:
            self._capture_git()
        assert self._git is not None
        return self._git
