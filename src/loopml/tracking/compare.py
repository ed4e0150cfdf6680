"""Reading runs for people: the run listing, one run's details, and runs side by side.

The CLI (and later the web UI) only formats what these functions return: which columns a
listing has, how a run's manifest is summarised, and which params, final metrics, code, data
and packages differ between runs are decided here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopml.store.errors import StoreError
from loopml.store.objects.store import ObjectStore
from loopml.tracking.errors import TrackingError
from loopml.tracking.model import RunInfo
from loopml.tracking.sql_store import SqlTrackingStore

__all__ = [
    "ComparedRow",
    "ManifestSummary",
    "RunComparison",
    "RunDetails",
    "RunListing",
    "RunRow",
    "compare_runs",
    "id_prefixes",
    "list_runs",
    "load_environment",
    "load_manifest",
    "manifest_summary",
    "resolve_runs",
    "run_details",
]

Value = str | float | None


# -- ids ---------------------------------------------------------------------------------------


def id_prefixes(store: SqlTrackingStore, ids: Iterable[str]) -> dict[str, str]:
    """The shortest prefix (at least 8 characters) of each id that no other run id shares."""
    return store.id_prefixes(ids)


def resolve_runs(store: SqlTrackingStore, references: Sequence[str]) -> list[str]:
    """Full ids of the runs named by ids or unique id prefixes, in order, each once."""
    if not references:
        raise TrackingError("name at least one run; `loopml runs ls` lists them")
    resolved: list[str] = []
    for reference in references:
        ident = store.resolve_id(reference)
        if ident not in resolved:
            resolved.append(ident)
    return resolved


# -- manifests ---------------------------------------------------------------------------------


def _load_object(objects: ObjectStore, digest: str | None) -> dict[str, Any] | None:
    if not digest:
        return None
    try:
        document = json.loads(objects.read_bytes(digest))
    except (StoreError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def load_manifest(objects: ObjectStore, run: RunInfo) -> dict[str, Any] | None:
    """The run's manifest document, or ``None`` when it has none or its object is missing."""
    return _load_object(objects, run.manifest_hash)


def load_environment(
    objects: ObjectStore, manifest: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The environment document a manifest points to (Python, packages, platform)."""
    if manifest is None:
        return None
    digest = manifest.get("environment")
    return _load_object(objects, digest if isinstance(digest, str) else None)


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    """The parts of a manifest a person looks at first."""

    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool = False
    diff_hash: str | None = None
    changed_files: tuple[str, ...] = ()
    python: str | None = None
    platform: str | None = None
    command: tuple[str, ...] = ()
    cwd: str | None = None
    seeds: dict[str, int] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    recorded: bool = False  # whether the run has a readable manifest at all


def _packages(environment: dict[str, Any] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in (environment or {}).get("packages") or ():
        name, sep, version = str(item).partition("==")
        result[name.lower()] = version if sep else ""
    return result


def manifest_summary(
    run: RunInfo, manifest: dict[str, Any] | None, environment: dict[str, Any] | None
) -> ManifestSummary:
    """Git state, Python, command and packages of a run.

    Runs imported from MLflow have no manifest; their ``mlflow.source.*`` tags stand in for it.
    """
    if manifest is None:
        command = run.tags.get("mlflow.source.name")
        return ManifestSummary(
            git_commit=run.tags.get("mlflow.source.git.commit"),
            git_branch=run.tags.get("mlflow.source.git.branch"),
            command=(command,) if command else (),
        )
    git = manifest.get("git") or {}
    env = environment or {}
    python = env.get("python") or {}
    system = env.get("platform") or {}
    platform = " ".join(
        str(system[k]) for k in ("system", "release", "machine") if system.get(k)
    ).strip()
    seeds = manifest.get("seeds") or {}
    return ManifestSummary(
        git_commit=git.get("commit"),
        git_branch=git.get("branch"),
        git_dirty=bool(git.get("dirty")),
        diff_hash=git.get("diff_hash"),
        changed_files=tuple(str(f) for f in git.get("changed_files") or ()),
        python=python.get("version"),
        platform=platform or None,
        command=tuple(str(part) for part in manifest.get("command") or ()),
        cwd=manifest.get("cwd"),
        seeds={str(k): int(v) for k, v in seeds.items()} if isinstance(seeds, dict) else {},
        packages=_packages(environment),
        recorded=True,
    )


# -- one run -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunDetails:
    """What ``loopml runs show`` prints: the run, its manifest summary and its children."""

    run: RunInfo
    prefix: str
    parent_prefix: str | None
    manifest: ManifestSummary
    children: tuple[tuple[str, str, str], ...]  # (id prefix, name, status)


def run_details(store: SqlTrackingStore, objects: ObjectStore, reference: str) -> RunDetails:
    """The run named by an id or unique id prefix, with its manifest summary and children."""
    run = store.get_run(reference)
    child_ids = store.children(run.id)
    others = [run.id, *child_ids] + ([run.parent_run_id] if run.parent_run_id else [])
    prefixes = id_prefixes(store, others)
    manifest = load_manifest(objects, run)
    children = []
    if child_ids:
        found = store.names_and_statuses(child_ids)
        children = [(prefixes[c], *found[c]) for c in child_ids if c in found]
    return RunDetails(
        run=run,
        prefix=prefixes[run.id],
        parent_prefix=prefixes[run.parent_run_id] if run.parent_run_id else None,
        manifest=manifest_summary(run, manifest, load_environment(objects, manifest)),
        children=tuple(children),
    )


# -- the listing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run of a listing."""

    id: str
    prefix: str
    experiment: str
    name: str
    status: str
    start_time: int
    end_time: int | None
    params: dict[str, str]
    metrics: dict[str, float]

    @property
    def duration_ms(self) -> int | None:
        """Wall-clock duration, once ended."""
        return None if self.end_time is None else self.end_time - self.start_time


@dataclass(frozen=True, slots=True)
class RunListing:
    """Runs matching a search, with the param and metric names present among them."""

    rows: tuple[RunRow, ...]
    param_keys: tuple[str, ...]
    metric_keys: tuple[str, ...]  # the user's metrics first, then ``system/…`` ones


def _present(value: Any) -> bool:
    # Missing cells of the search frame are None or NaN, whatever pandas made of the column.
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _epoch_ms(value: Any) -> int | None:
    import pandas as pd

    if value is None or pd.isna(value):
        return None
    return int(pd.Timestamp(value).value // 1_000_000)


def list_runs(
    store: SqlTrackingStore,
    *,
    experiments: Sequence[str] | None = None,
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = 100,
    include_deleted: bool = False,
    include_steps: bool = True,
) -> RunListing:
    """Runs matching MLflow's filter language, newest first unless ``order_by`` says otherwise."""
    from loopml.tracking.search import search_runs

    frame = search_runs(
        store,
        experiments_=experiments,
        filter_string=filter_string,
        order_by=order_by,
        max_results=max_results,
        include_deleted=include_deleted,
        include_steps=include_steps,
    )
    param_keys = tuple(c.removeprefix("params.") for c in frame.columns if c.startswith("params."))
    metric_keys = tuple(
        sorted(
            (c.removeprefix("metrics.") for c in frame.columns if c.startswith("metrics.")),
            key=lambda k: (k.startswith("system/"), k),
        )
    )
    prefixes = id_prefixes(store, [str(i) for i in frame["run_id"]])
    rows = []
    for record in frame.to_dict("records"):
        params = {
            k: str(record[f"params.{k}"]) for k in param_keys if _present(record[f"params.{k}"])
        }
        metrics = {}
        for key in metric_keys:
            value = record[f"metrics.{key}"]
            if _present(value):
                metrics[key] = float(value)
        ident = str(record["run_id"])
        start = _epoch_ms(record["start_time"])
        rows.append(
            RunRow(
                id=ident,
                prefix=prefixes[ident],
                experiment=str(record["experiment"]),
                name=str(record["name"]),
                status=str(record["status"]),
                start_time=start if start is not None else 0,
                end_time=_epoch_ms(record["end_time"]),
                params=params,
                metrics=metrics,
            )
        )
    return RunListing(tuple(rows), param_keys, metric_keys)


# -- comparison --------------------------------------------------------------------------------


def _same(value: Value) -> Value:
    # NaN equals NaN for the question "do the runs differ?"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


@dataclass(frozen=True, slots=True)
class ComparedRow:
    """One compared quantity: its name and its value in each run (``None``: not recorded)."""

    key: str
    values: tuple[Value, ...]

    @property
    def differs(self) -> bool:
        """Whether the runs do not all have the same value."""
        return len({_same(v) for v in self.values}) > 1


@dataclass(frozen=True, slots=True)
class RunComparison:
    """Runs side by side, by section."""

    runs: tuple[RunInfo, ...]
    prefixes: tuple[str, ...]
    params: tuple[ComparedRow, ...]
    metrics: tuple[ComparedRow, ...]  # final (latest) values
    code: tuple[ComparedRow, ...]
    data: tuple[ComparedRow, ...]
    environment: tuple[ComparedRow, ...]  # Python, then only the packages that differ
    environments_recorded: tuple[bool, ...]


def _keyed(runs_: Sequence[RunInfo], pick: Any) -> tuple[ComparedRow, ...]:
    keys = sorted({k for run in runs_ for k in pick(run)})
    return tuple(ComparedRow(k, tuple(pick(run).get(k) for run in runs_)) for k in keys)


def _versions(run: RunInfo) -> dict[str, str]:
    read: dict[str, list[int]] = {}
    for item in run.inputs:
        read.setdefault(item.dataset, []).append(item.version)
    return {name: ",".join(f"v{n}" for n in sorted(numbers)) for name, numbers in read.items()}


def compare_runs(
    store: SqlTrackingStore, objects: ObjectStore, references: Sequence[str]
) -> RunComparison:
    """Compare runs: params, final metrics, code (git), data read and package versions."""
    ids = resolve_runs(store, references)
    if len(ids) < 2:
        raise TrackingError("compare needs at least two different runs")
    infos = [store.get_run(i) for i in ids]
    prefixes = id_prefixes(store, ids)
    summaries: list[ManifestSummary] = []
    for info in infos:
        manifest = load_manifest(objects, info)
        summaries.append(manifest_summary(info, manifest, load_environment(objects, manifest)))

    def row(key: str, values: Iterable[Value]) -> ComparedRow:
        return ComparedRow(key, tuple(values))

    code = tuple(
        r
        for r in (
            row("git commit", (s.git_commit for s in summaries)),
            row("git branch", (s.git_branch for s in summaries)),
            row(
                "uncommitted changes",
                ("yes" if s.git_dirty else "no" if s.recorded else None for s in summaries),
            ),
            row("diff hash", (s.diff_hash for s in summaries)),
            row(
                "changed files",
                (", ".join(s.changed_files) if s.recorded else None for s in summaries),
            ),
            row("command", (" ".join(s.command) or None for s in summaries)),
        )
        if any(v is not None for v in r.values)
    )
    recorded = tuple(bool(s.packages) for s in summaries)
    environment = [row("python", (s.python for s in summaries))]
    if all(s.python is None for s in summaries):
        environment = []
    with_env = [s for s in summaries if s.packages]
    if len(with_env) >= 2:
        names = sorted({n for s in with_env for n in s.packages})
        for name in names:
            values = [s.packages.get(name) if s.packages else "?" for s in summaries]
            if len({s.packages.get(name) for s in with_env}) > 1:
                environment.append(row(name, values))
    return RunComparison(
        runs=tuple(infos),
        prefixes=tuple(prefixes[i] for i in ids),
        params=_keyed(infos, lambda r: r.params),
        metrics=_keyed(infos, lambda r: r.metrics),
        code=code,
        data=_keyed(infos, _versions),
        environment=tuple(environment),
        environments_recorded=recorded,
    )
