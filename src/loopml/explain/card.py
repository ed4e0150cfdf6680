"""Model cards: what a model version is and where it came from, gathered from the stores.

:func:`model_card` only collects facts: the version from the registry, the training run (and
its pipeline run) from tracking, step code hashes and contract fingerprints from the pipeline
records, dataset versions with their row counts from the data store, and the newest gate
result. It never loads the model nor reads a dataset's rows. What a person sees is decided in
:mod:`loopml.explain.card_sections`; :mod:`loopml.explain.card_html` draws the HTML page.

A card is made for any version: one logged outside a run, imported, or never gated says so in
its sections instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.registry.gating.report import GateReport
from loopml.registry.model import GateResult, ModelVersion
from loopml.store.errors import StoreError

if TYPE_CHECKING:
    from loopml.registry.signature import Signature
    from loopml.store.objects.store import ObjectStore
    from loopml.store.tree import Tree
    from loopml.store.workspace import Workspace
    from loopml.tracking.compare import ManifestSummary
    from loopml.tracking.model import RunInfo
    from loopml.tracking.sql_store import SqlTrackingStore

__all__ = [
    "CodeFacts",
    "DatasetFacts",
    "GateFacts",
    "ModelCard",
    "RunFacts",
    "StepFacts",
    "model_card",
]

_PARQUET = (".parquet", ".pq")
# Metrics the run recorded about the machine (CPU, memory), not about the model.
_SYSTEM_PREFIX = "system/"


@dataclass(frozen=True, slots=True)
class DatasetFacts:
    """A dataset version the training run read, with its size and (for Parquet) its rows."""

    dataset: str
    version: int
    hash: str
    path: str | None = None  # the workspace-relative path the dataset tracks
    files: int | None = None
    size: int | None = None
    rows: int | None = None  # None when unknown: not all Parquet, or its objects are missing

    @property
    def label(self) -> str:
        """``name@vN``."""
        return f"{self.dataset}@v{self.version}"


@dataclass(frozen=True, slots=True)
class RunFacts:
    """A tracked run: its identity, params and model metrics (system metrics left out)."""

    id: str
    name: str
    experiment: str
    status: str
    kind: str  # "step" for a pipeline step's run, "run" otherwise
    parent_run_id: str | None
    started_at: int
    ended_at: int | None
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepFacts:
    """One step of the training pipeline run: its code hash and the contracts it checked."""

    node: str
    step: str
    code_hash: str
    status: str
    input_contract: str | None = None  # fingerprint of the contract(s); the text is not kept
    output_contract: str | None = None
    logged_model: bool = False  # whether this step's run logged the model version


@dataclass(frozen=True, slots=True)
class CodeFacts:
    """The code version: git state from a run manifest, and the pipeline's step code hashes."""

    manifest: ManifestSummary
    source: str  # which run the manifest is of ("training run", "pipeline run")
    steps: tuple[StepFacts, ...] = ()

    @property
    def contracts(self) -> tuple[StepFacts, ...]:
        """The steps that checked a data contract."""
        return tuple(s for s in self.steps if s.input_contract or s.output_contract)


@dataclass(frozen=True, slots=True)
class GateFacts:
    """The gate result behind the version's alias (else its newest); ``report`` is None when
    it cannot be read."""

    result: GateResult
    report: GateReport | None
    champion: str | None  # ``name@vN`` of the champion it was compared with
    total: int  # how many gate results the version has
    grounds: str | None = None  # the alias move this result allowed (``champion``), if any


@dataclass(frozen=True, slots=True)
class ModelCard:
    """Everything a model card shows about one model version."""

    version: ModelVersion
    workspace_dir: Path  # the workspace's ``.loopml`` folder (where cards are written)
    datasets: tuple[DatasetFacts, ...] = ()
    run: RunFacts | None = None
    parent_run: RunFacts | None = None
    code: CodeFacts | None = None
    gate: GateFacts | None = None
    notes: tuple[str, ...] = ()  # what was recorded but could not be read
    generated_at: int = 0  # epoch milliseconds

    @property
    def label(self) -> str:
        """``name@vN``."""
        return self.version.label

    @property
    def signature(self) -> Signature | None:
        """The version's signature, if it was logged with an example."""
        return self.version.signature

    @property
    def default_path(self) -> Path:
        """``.loopml/cards/<name>-v<N>.html`` of the workspace."""
        return self.workspace_dir / "cards" / f"{self.version.model}-v{self.version.number}.html"


def _default_workspace() -> Workspace:
    """The registry's rule: the active run's workspace, else this process's session's."""
    from loopml.tracking.fluent import active_run, session_workspace

    run = active_run()
    if run is not None:
        return run._session.workspace
    return session_workspace()


def model_card(
    ref: str, version: str | int | None = None, *, workspace: Workspace | None = None
) -> ModelCard:
    """The card of the version ``ref`` names (``churn@7``, ``churn@champion``, ``churn``).

    Raises the registry's errors for an unknown model or version; anything else that cannot
    be read (a deleted run, a missing object, an unreadable gate report) becomes a note on
    the card.
    """
    from loopml.registry.api import get_version

    ws = workspace if workspace is not None else _default_workspace()
    found = get_version(ref, version, workspace=ws)
    notes: list[str] = []
    datasets = _datasets(ws, found, notes)
    run, parent, code = _training(ws, found, notes)
    gate = _gate(ws, found, notes)
    return ModelCard(
        version=found,
        workspace_dir=ws.dir,
        datasets=datasets,
        run=run,
        parent_run=parent,
        code=code,
        gate=gate,
        notes=tuple(notes),
        generated_at=time.time_ns() // 1_000_000,
    )


# -- training data -----------------------------------------------------------------------------


def _datasets(ws: Workspace, found: ModelVersion, notes: list[str]) -> tuple[DatasetFacts, ...]:
    from loopml.data.repository import DatasetRepository
    from loopml.registry.repository import ModelRepository

    datasets = DatasetRepository(ws.metadata)
    result = []
    for item in ModelRepository(ws.metadata).inputs(found.id):
        known = datasets.find(item.dataset)
        try:
            tree = ws.objects.get_tree(item.hash)
        except StoreError:
            notes.append(f"the files of {item.label} are not in the object store")
            result.append(DatasetFacts(item.dataset, item.version, item.hash, _path(known)))
            continue
        result.append(
            DatasetFacts(
                dataset=item.dataset,
                version=item.version,
                hash=item.hash,
                path=_path(known),
                files=len(tree),
                size=tree.size,
                rows=_parquet_rows(ws.objects, tree),
            )
        )
    return tuple(result)


def _path(dataset: Any) -> str | None:
    return None if dataset is None else str(dataset.path)


def _sidecar(path: str) -> bool:
    """``_SUCCESS``, ``_metadata``, ``.DS_Store``: files beside the data, not data."""
    name = path.rsplit("/", 1)[-1]
    return name.startswith(("_", "."))


def _parquet_rows(objects: ObjectStore, tree: Tree) -> int | None:
    """Rows of a version whose data files are all Parquet, from their footers alone."""
    files = [entry for entry in tree if not _sidecar(entry.path)]
    if not files or not all(entry.path.lower().endswith(_PARQUET) for entry in files):
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    total = 0
    for entry in files:
        try:
            # The backend's reader is seekable (a file, a slice of a pack, an fsspec file), so
            # pyarrow reads only the footer; the store's verifying reader would stream it all.
            with objects.backend.open(entry.digest) as handle:
                total += pq.ParquetFile(handle).metadata.num_rows
        except (StoreError, OSError, pa.ArrowException):
            return None
    return total


# -- the training run, its pipeline and its code ------------------------------------------------


def _run_facts(info: RunInfo) -> RunFacts:
    return RunFacts(
        id=info.id,
        name=info.name,
        experiment=info.experiment,
        status=info.status.value,
        kind="step" if info.tags.get("loopml.kind") == "step" else "run",
        parent_run_id=info.parent_run_id,
        started_at=info.start_time,
        ended_at=info.end_time,
        params=dict(sorted(info.params.items())),
        metrics={
            key: value
            for key, value in sorted(info.metrics.items())
            if not key.startswith(_SYSTEM_PREFIX)
        },
    )


def _get_run(store: SqlTrackingStore, run_id: str, notes: list[str]) -> RunInfo | None:
    from loopml.tracking.errors import TrackingError

    try:
        return store.get_run(run_id)
    except TrackingError:
        notes.append(f"run {run_id} is recorded but no longer exists")
        return None


def _training(
    ws: Workspace, found: ModelVersion, notes: list[str]
) -> tuple[RunFacts | None, RunFacts | None, CodeFacts | None]:
    if found.run_id is None:
        return None, None, None
    from loopml.tracking.compare import load_environment, load_manifest, manifest_summary
    from loopml.tracking.sql_store import SqlTrackingStore

    store = SqlTrackingStore(ws.metadata)
    info = _get_run(store, found.run_id, notes)
    if info is None:
        return None, None, None
    parent = None
    if info.parent_run_id is not None:
        parent = _get_run(store, info.parent_run_id, notes)
    # Step runs share their pipeline run's manifest once the pipeline ends; a pipeline that
    # crashed first leaves it on the pipeline run only.
    source, manifest = "training run", load_manifest(ws.objects, info)
    summary_run = info
    if manifest is None and parent is not None:
        parent_manifest = load_manifest(ws.objects, parent)
        if parent_manifest is not None:
            source, manifest, summary_run = "pipeline run", parent_manifest, parent
    summary = manifest_summary(summary_run, manifest, load_environment(ws.objects, manifest))
    code = CodeFacts(manifest=summary, source=source, steps=_steps(ws, info.id))
    return _run_facts(info), None if parent is None else _run_facts(parent), code


def _fingerprint(parts: Mapping[str, Any], index: int) -> str | None:
    contracts = parts.get("contracts")
    if not isinstance(contracts, list) or len(contracts) <= index:
        return None
    value = contracts[index]
    return str(value) if value else None


def _steps(ws: Workspace, run_id: str) -> tuple[StepFacts, ...]:
    """The steps of the pipeline run whose step logged the model (none outside a pipeline)."""
    from loopml.pipelines.records import StepRecords

    records = StepRecords(ws.metadata)
    record = records.get(run_id)
    if record is None:
        return ()
    return tuple(
        StepFacts(
            node=step.node,
            step=step.step,
            code_hash=step.code_hash,
            status=step.status,
            input_contract=_fingerprint(step.key_parts, 0),
            output_contract=_fingerprint(step.key_parts, 1),
            logged_model=step.id == run_id,
        )
        for step in records.for_pipeline_run(record.pipeline_run_id)
    )


# -- gates -------------------------------------------------------------------------------------


def _gate(ws: Workspace, found: ModelVersion, notes: list[str]) -> GateFacts | None:
    from loopml.registry.errors import ModelVersionNotFoundError
    from loopml.registry.gates import GateResults
    from loopml.registry.repository import ModelRepository

    results = GateResults(ws.metadata).for_version(found.id)
    if not results:
        return None
    newest = results[0]
    grounds = None
    # The result that put the version where it is tells more than a later experiment.
    by_id = {r.id: r for r in results}
    for event in reversed(ModelRepository(ws.metadata).alias_events(found.model)):
        if (
            event.to_version == found.number
            and event.alias in found.aliases
            and event.gate_result_id in by_id
        ):
            newest, grounds = by_id[event.gate_result_id], event.alias
            break
    report: GateReport | None
    try:
        report = GateReport.from_json(newest.report)
    except (ValueError, KeyError, TypeError):
        report = None
        notes.append(f"the report of gate result {newest.id} cannot be read by this loopml")
    champion = None
    if newest.champion_version_id is not None:
        try:
            champion = ModelRepository(ws.metadata).version_by_id(newest.champion_version_id).label
        except ModelVersionNotFoundError:
            champion = None
    return GateFacts(newest, report, champion, len(results), grounds)
