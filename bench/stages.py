"""Where a loopml command spends its time: ``python -m bench.stages [--jobs N] -- ARGS...``.

Runs ``loopml ARGS`` in this process (from the current folder, like the real CLI), with the
functions of the data-versioning path (or, for ``run``, ``resume`` and ``reproduce``, of the
pipeline path) wrapped in wall-clock timers, and prints one line per stage: calls, seconds,
share of the command's wall time. Imports are timed on their own first, so "CLI dispatch" is
what typer/click/pydantic cost once everything is imported. The pipeline path is timed without
importing anything it does not import itself, and says whether SQLAlchemy was imported.

Stages called from worker threads (per-file hashing and storing) add up thread time, so their
total can exceed the wall time; "(threads)" marks them. The timers cost about a microsecond a
call; compare stages with each other, and take absolute timings from ``python -m bench``.

Examples, from a workspace holding a tracked folder ``data``, and one holding ``flow.py``::

    /work/main/.venv/bin/python -m bench.stages -- data status
    /work/main/.venv/bin/python -m bench.stages -- run flow.py:chain
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

_TOTALS: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
_LOCK = threading.Lock()
_THREADED = {
    "WriteBatch.add_file",
    "hash_bytes",
    "hash_file",
    "Path.read_bytes",
    "LocalObjectBackend.has",
    "PackWriter.add",
    "LocalObjectBackend.ingest_file",
    "copy_and_hash",
}

# (module, attribute path) of what to time, in the order they are shown.
TARGETS = (
    ("loopml.data.versioning", "add_dataset"),
    ("loopml.data.status", "dataset_status"),
    ("loopml.data.catalog", "tracked_datasets"),
    ("loopml.store.metadata", "MetadataStore.open"),
    ("loopml.data.versioning", "_check_conflicts"),
    ("loopml.data.repository", "DatasetRepository.ensure"),
    ("loopml.data.repository", "DatasetRepository.add_version"),
    ("loopml.data.lockfile", "read_lock"),
    ("loopml.data.lockfile", "update_lock"),
    ("loopml.data.scan", "scan_path"),
    ("loopml.data.scan", "check_readable"),
    ("loopml.data.working", "hash_working_files"),
    ("loopml.store.statcache", "SqliteStatCache.lookup"),
    ("loopml.store.statcache", "SqliteStatCache.record"),
    ("loopml.store.statcache", "is_trustworthy"),
    ("loopml.store.objects.store", "WriteBatch.add_file"),
    ("loopml.store.objects.store", "WriteBatch.add_bytes"),
    ("loopml.store.objects.store", "ObjectStore.get_tree"),
    ("loopml.store.objects.local", "LocalObjectBackend.has"),
    ("loopml.store.objects.local", "LocalObjectBackend.ingest_file"),
    ("loopml.store.objects.local", "LocalObjectBackend.pack_indexes"),
    ("loopml.store.objects.packs", "PackWriter.add"),
    ("loopml.store.objects.packs", "PackWriter.commit"),
    ("loopml.store.hashing", "copy_and_hash"),
    ("loopml.store.hashing", "hash_bytes"),
    ("loopml.store.hashing", "hash_file"),
    ("loopml.store.tree", "Tree.build"),
    ("loopml.store.tree", "Tree.to_bytes"),
    ("loopml.store.tree", "Tree.from_bytes"),
    ("loopml.store.tree", "Tree.diff"),
    ("pathlib", "Path.read_bytes"),
    ("os", "fsync"),
)

# The pipeline path: none of these modules imports SQLAlchemy (nor should timing them).
PIPELINE_COMMANDS = frozenset({"run", "resume", "reproduce"})
PIPELINE_IMPORTS = (
    "loopml.cli.main",
    "loopml.store.workspace",
    "loopml.pipelines",
    "loopml.pipelines.resume",
    "loopml.tracking.fluent",
)
PIPELINE_TARGETS = (
    ("loopml.pipelines.pipeline", "Pipeline.run"),
    ("loopml.pipelines.loader", "load_target"),
    ("loopml.pipelines.pipeline", "Pipeline.trace"),
    ("loopml.tracking.fluent", "session_workspace"),
    ("loopml.tracking.fluent", "start_run"),
    ("loopml.pipelines.runner", "run_graph"),
    ("loopml.pipelines.runner", "_Context.key_for"),
    ("loopml.pipelines.keys", "step_code_hash"),
    ("loopml.pipelines.runner", "_Context.reuse"),
    ("loopml.pipelines.records", "StepRecords.cached"),
    ("loopml.pipelines.runner", "_Context.flush"),
    ("loopml.pipelines.runner", "_Context.begin"),
    ("loopml.pipelines.execute", "run_task"),
    ("loopml.pipelines.runner", "_Context.complete"),
    ("loopml.pipelines.pipeline", "_roll_up_metrics"),
    ("loopml.tracking.fluent", "ActiveRun.end"),
    ("loopml.tracking.manifest", "ManifestCapture.git"),
    ("loopml.tracking.manifest", "ManifestCapture.environment"),
    ("loopml.store.objects.store", "ObjectStore.add_bytes"),
    ("loopml.store.metadata.plainsql", "SqliteDatabase.read"),
    ("loopml.store.metadata.plainsql", "SqliteDatabase.write"),
    ("os", "fsync"),
)


def _timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            spent = time.perf_counter() - started
            with _LOCK:
                entry = _TOTALS[name]
                entry[0] += 1
                entry[1] += spent

    return wrapper


def _install(module_name: str, path: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return
    owner: Any = module
    *parents, attribute = path.split(".")
    for part in parents:
        owner = getattr(owner, part, None)
        if owner is None:
            return
    raw = owner.__dict__.get(attribute) if isinstance(owner, type) else getattr(owner, attribute)
    if raw is None:
        return
    if isinstance(raw, classmethod):
        setattr(owner, attribute, classmethod(_timed(path, raw.__func__)))
        return
    if isinstance(raw, staticmethod):
        setattr(owner, attribute, staticmethod(_timed(path, raw.__func__)))
        return
    wrapped = _timed(path, raw)
    setattr(owner, attribute, wrapped)
    if isinstance(owner, type):
        return
    # Functions imported by name (``from x import f``) live on in other modules too.
    for other in list(sys.modules.values()):
        if other is None or not getattr(other, "__name__", "").startswith("loopml"):
            continue
        for key, value in list(vars(other).items()):
            if value is raw:
                setattr(other, key, wrapped)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print(__doc__)
        return 2
    pipeline = argv[0] in PIPELINE_COMMANDS
    modules = (
        PIPELINE_IMPORTS
        if pipeline
        else (
            "loopml.cli.main",
            "loopml.store.workspace",
            "loopml.data.status",
            "loopml.data.versioning",
        )
    )
    targets = PIPELINE_TARGETS if pipeline else TARGETS
    imports: list[tuple[str, float]] = []
    for module in modules:
        started = time.perf_counter()
        importlib.import_module(module)
        imports.append((f"import {module}", time.perf_counter() - started))
    for module_name, path in targets:
        _install(module_name, path)
    from loopml.cli.main import run

    started = time.perf_counter()
    code = 0
    try:
        run(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    wall = time.perf_counter() - started
    bodies = ("Pipeline.run",) if pipeline else ("add_dataset", "dataset_status")
    body = max((_TOTALS[name][1] for name in bodies if name in _TOTALS), default=0.0)
    print(f"\n{'stage':<42} {'calls':>7} {'seconds':>9} {'share':>7}", file=sys.stderr)
    for name, spent in imports:
        print(f"{name:<42} {'':>7} {spent:9.4f} {'':>7}", file=sys.stderr)
    print(
        f"{'CLI dispatch, workspace, printing':<42} {'':>7} {wall - body:9.4f} "
        f"{100 * (wall - body) / wall:6.1f}%",
        file=sys.stderr,
    )
    for _, path in targets:
        if path not in _TOTALS:
            continue
        calls, spent = _TOTALS[path]
        label = path + (" (threads)" if path in _THREADED or path == "fsync" else "")
        print(
            f"{label:<42} {int(calls):>7} {spent:9.4f} {100 * spent / wall:6.1f}%",
            file=sys.stderr,
        )
    print(f"{'command wall time (imports excluded)':<42} {'':>7} {wall:9.4f}", file=sys.stderr)
    if pipeline:
        imported = "yes" if "sqlalchemy" in sys.modules else "no"
        print(f"SQLAlchemy imported: {imported}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
