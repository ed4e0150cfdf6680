"""Exporting a run to a plain folder: ``run.json`` and its artifacts as ordinary files.

``run.json`` holds the run's info, params, every point of every metric, tags, artifacts,
inputs, manifest and environment. Artifacts land under ``artifacts/``: a file artifact as a
file, a folder artifact (a tree) expanded into a folder. Every path comes from the store and is
checked to stay inside the target folder, whatever it contains.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from loopml.errors import UserInputError
from loopml.store.objects.store import ObjectStore
from loopml.tracking.compare import load_environment, load_manifest
from loopml.tracking.errors import TrackingError
from loopml.tracking.model import ArtifactRecord, RunInfo
from loopml.tracking.sql_store import SqlTrackingStore

__all__ = ["EXPORT_FORMAT", "ExportResult", "export_run", "run_document"]

EXPORT_FORMAT = "loopml-run-export/1"


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export wrote."""

    run_id: str
    directory: Path
    files: int  # artifact files written
    bytes: int  # their total size
    metric_points: int


def _number(value: float) -> float | str:
    # JSON has no NaN or infinity; write them as the strings Python's float() reads back.
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def run_document(
    store: SqlTrackingStore, objects: ObjectStore, run: RunInfo
) -> tuple[dict[str, Any], int]:
    """The JSON document of a run (with full metric history) and its number of metric points."""
    history: dict[str, list[dict[str, Any]]] = {}
    points = 0
    for key in store.metric_keys(run.id):
        series = store.metric_history(run.id, key)
        points += len(series)
        history[key] = [
            {"step": m.step, "timestamp": m.timestamp, "value": _number(m.value)} for m in series
        ]
    manifest = load_manifest(objects, run)
    document = {
        "format": EXPORT_FORMAT,
        "info": {
            "id": run.id,
            "experiment": run.experiment,
            "name": run.name,
            "status": run.status.value,
            "start_time": run.start_time,
            "end_time": run.end_time,
            "parent_run_id": run.parent_run_id,
            "children": store.children(run.id),
            "user": run.user,
            "host": run.host,
            "pid": run.pid,
            "error_type": run.error_type,
            "error_message": run.error_message,
            "deleted": run.deleted,
            "manifest_hash": run.manifest_hash,
        },
        "params": dict(sorted(run.params.items())),
        "metrics": history,
        "latest_metrics": {k: _number(v) for k, v in sorted(run.metrics.items())},
        "tags": dict(sorted(run.tags.items())),
        "artifacts": [
            {"path": a.path, "kind": a.kind, "size": a.size, "digest": a.digest}
            for a in run.artifacts
        ],
        "inputs": [
            {"dataset": i.dataset, "version": i.version, "hash": i.hash} for i in run.inputs
        ],
        "manifest": manifest,
        "environment": load_environment(objects, manifest),
    }
    return document, points


def _inside(root: Path, relative: str) -> Path:
    """``root / relative`` after checking that it cannot leave ``root`` (even through links)."""
    pure = PurePosixPath(relative)
    if (
        not relative
        or "\\" in relative
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in pure.parts)
    ):
        raise TrackingError(
            f"the store names an artifact path {relative!r} that would leave the export "
            "folder; run `loopml fsck`"
        )
    target = root.joinpath(*pure.parts)
    # A folder already in the way might be a symlink to elsewhere: resolve what exists.
    if not target.parent.resolve().is_relative_to(root.resolve()):
        raise TrackingError(
            f"{target} leads outside {root} through a symbolic link; export into an empty folder"
        )
    return target


def _write_artifact(objects: ObjectStore, root: Path, artifact: ArtifactRecord) -> tuple[int, int]:
    if artifact.kind == "file":
        destination = _inside(root, artifact.path)
        destination.parent.mkdir(parents=True, exist_ok=True)
        _inside(root, artifact.path)  # again, now that the folders exist
        objects.export_file(artifact.digest, destination)
        return 1, artifact.size
    tree = objects.get_tree(artifact.digest)
    folder = _inside(root, artifact.path)
    files = size = 0
    for entry in tree:
        relative = f"{PurePosixPath(artifact.path).as_posix()}/{entry.path}"
        destination = _inside(root, relative)
        destination.parent.mkdir(parents=True, exist_ok=True)
        _inside(root, relative)
        objects.export_file(entry.digest, destination, mode=entry.mode)
        files += 1
        size += entry.size
    if not len(tree):
        folder.mkdir(parents=True, exist_ok=True)
    return files, size


def export_run(
    store: SqlTrackingStore,
    objects: ObjectStore,
    reference: str,
    directory: Path,
    *,
    force: bool = False,
) -> ExportResult:
    """Write the run named by ``reference`` (id or unique prefix) into ``directory``.

    A non-empty ``directory`` is refused unless ``force``; files the export writes replace
    files of the same name, and nothing else in the folder is touched.
    """
    run = store.get_run(reference)
    if directory.exists() and not directory.is_dir():
        raise UserInputError(f"{directory} is a file; export into a folder")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise UserInputError(
            f"{directory} is not empty; choose an empty folder or pass --force to write into it"
        )
    directory.mkdir(parents=True, exist_ok=True)
    root = directory / "artifacts"
    if root.is_symlink():
        raise TrackingError(f"{root} is a symbolic link; export into an empty folder")
    document, points = run_document(store, objects, run)
    files = size = 0
    if run.artifacts:
        root.mkdir(exist_ok=True)
        for artifact in run.artifacts:
            written, nbytes = _write_artifact(objects, root, artifact)
            files += written
            size += nbytes
    target = directory / "run.json"
    if target.is_symlink():
        target.unlink()
    tmp = directory / ".run.json.loopml-tmp"
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n")
    os.replace(tmp, target)
    return ExportResult(run.id, directory, files, size, points)
