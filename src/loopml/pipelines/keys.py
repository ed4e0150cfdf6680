"""Cache keys: step identity, code hash, input hashes, parameters and package versions."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from loopml.pipelines.codehash import code_hash
from loopml.store.hashing import hash_bytes

__all__ = ["cache_key", "explain_miss", "package_versions", "step_code_hash"]


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the distributions a step declares (``missing`` if not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


@lru_cache(maxsize=1024)
def _cached_code_hash(fn: Any, root: str, stamp: tuple[float, ...]) -> str:
    return code_hash(fn, Path(root))


def step_code_hash(fn: Any, project_root: Path) -> str:
    """The code hash, memoised per process while the function's source file is unchanged."""
    import inspect

    try:
        source_file = inspect.getsourcefile(fn)
        stamp = (Path(source_file).stat().st_mtime,) if source_file else ()
    except (TypeError, OSError):
        stamp = ()
    return _cached_code_hash(fn, str(project_root), stamp)


def cache_key(parts: dict[str, Any]) -> str:
    """The hash of the canonical JSON of the key parts."""
    body = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)
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
