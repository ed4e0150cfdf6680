"""Cache keys: step identity, code hash, input hashes, parameters and package versions."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loopml.pipelines.codehash import code_hash_and_files
from loopml.store.hashing import hash_bytes

__all__ = ["cache_key", "explain_miss", "package_versions", "step_code_hash"]


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the distributions a step declares (``missing`` if not installed)."""
    if not names:
        return {}
    from importlib import metadata  # not on the path of a step that declares none

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


# (function, project root) → (digest, (file, mtime_ns, size) of every source file it read)
_memo: dict[tuple[Any, str], tuple[str, tuple[tuple[str, int, int], ...]]] = {}
_RACY_NS = 2_000_000_000  # a file changed this recently may change again within its mtime


def _stamps(files: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    stamps = []
    for file in sorted(files):
        try:
            info = os.stat(file)
            stamps.append((file, info.st_mtime_ns, info.st_size))
        except OSError:
            stamps.append((file, -1, -1))
    return tuple(stamps)


def step_code_hash(fn: Any, project_root: Path) -> str:
    """The code hash, memoised per process while no source file it read has changed.

    Every file the hash reached is watched, not only the step's own: a helper module that is
    edited and reloaded in a live process (a notebook, a long-running loop) changes the key.
    """
    key = (fn, str(project_root))
    hit = _memo.get(key)
    if hit is not None and _stamps(file for file, _, _ in hit[1]) == hit[1]:
        return hit[0]
    digest, files = code_hash_and_files(fn, project_root)
    stamps = _stamps(files)
    if all(mtime < time.time_ns() - _RACY_NS for _, mtime, _ in stamps):
        if len(_memo) >= 1024:
            _memo.clear()
        _memo[key] = (digest, stamps)
    return digest


def cache_key(parts: dict[str, Any]) -> str:
    """The hash of the canonical JSON of the key parts.

    A dataset input counts by its version's hash only: ``sales@latest`` and ``sales@v3``
    naming the same content share the cache (the reference text is kept in the parts to
    explain and to reproduce, not to key).
    """
    keyed = dict(parts)
    inputs = parts.get("inputs")
    if isinstance(inputs, dict):
        keyed["inputs"] = {
            name: (
                {"kind": "data", "hash": value["hash"]}
                if isinstance(value, dict) and value.get("kind") == "data"
                else value
            )
            for name, value in inputs.items()
        }
    body = json.dumps(keyed, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)
    return hash_bytes(body.encode())


def explain_miss(current: dict[str, Any], previous: dict[str, Any] | None) -> str:
    """Why a step would run: what changed since its last recorded run."""
    if previous is None:
        return "never ran with this step"
    reasons = []
    if current.get("code") != previous.get("code"):
        reasons.append("code changed")
    old_inputs = previous.get("inputs", {})
    for name, value in current.get("inputs", {}).items():
        if old_inputs.get(name) != value:
            kind = value.get("kind") if isinstance(value, dict) else "value"
            reasons.append(f"{'parameter' if kind == 'value' else 'input'} {name} changed")
    for name in old_inputs:
        if name not in current.get("inputs", {}):
            reasons.append(f"input {name} removed")
    if current.get("packages") != previous.get("packages"):
        reasons.append("package versions changed")
    return ", ".join(reasons) or "outputs no longer in the store"
