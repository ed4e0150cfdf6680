"""Artifacts go to the object store, deduplicated, and are garbage-collection roots."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from matplotlib.figure import Figure

import loopml
from loopml.errors import UserInputError
from loopml.store.workspace import Workspace

Cli = Callable[..., Any]  # the suite's ``cli`` fixture


def make_plots(root: Path) -> Path:
    plots = root / "plots"
    (plots / "sub").mkdir(parents=True)
    (plots / "loss.txt").write_text("0.5\n0.4\n")
    (plots / "sub" / "big.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB: not packed
    return plots


def figure() -> Figure:
    fig = Figure()
    fig.subplots().plot([0, 0.5, 1], [0, 0.8, 1])
    return fig


def all_digests(workspace: Workspace) -> set[str]:
    return set(workspace.objects.backend.iter_digests())


def test_artifacts_are_stored_and_read_back(workspace: Workspace) -> None:
    plots = make_plots(workspace.root)
    report = {"accuracy": 0.91, "classes": ["stay", "churn"]}
    frame = pd.DataFrame({"id": [1, 2, 3], "score": [0.1, 0.7, 0.4]})
    with loopml.start_run(experiment="art", system_metrics=False) as run:
        folder = loopml.log_artifact("plots/")
        single = loopml.log_artifact(plots / "loss.txt", name="curves/loss.txt")
        loopml.log_dict(report, "report.json")
        loopml.log_dict(report, "report.yaml")
        loopml.log_figure(figure(), "roc.png")
        loopml.log_table(frame, "preds")

    artifacts = {a.path: a for a in loopml.get_run(run.id).info.artifacts}
    assert sorted(artifacts) == [
        "curves/loss.txt",
        "plots",
        "preds.parquet",
        "report.json",
        "report.yaml",
        "roc.png",
    ]
    objects = workspace.objects
    assert artifacts["plots"] == folder and folder.kind == "tree"
    tree = objects.get_tree(folder.digest)
    assert {entry.path: objects.read_bytes(entry.digest) for entry in tree} == {
        "loss.txt": b"0.5\n0.4\n",
        "sub/big.bin": bytes(range(256)) * 4096,
    }
    assert folder.size == 8 + 256 * 4096
    assert single.kind == "file" and objects.read_bytes(single.digest) == b"0.5\n0.4\n"
    assert json.loads(objects.read_bytes(artifacts["report.json"].digest)) == report
    assert b"accuracy: 0.91" in objects.read_bytes(artifacts["report.yaml"].digest)
    png = objects.read_bytes(artifacts["roc.png"].digest)
    assert png.startswith(b"\x89PNG") and artifacts["roc.png"].size == len(png)
    table = pd.read_parquet(io.BytesIO(objects.read_bytes(artifacts["preds.parquet"].digest)))
    pd.testing.assert_frame_equal(table, frame)


def test_the_same_content_is_stored_once(workspace: Workspace) -> None:
    make_plots(workspace.root)
    with loopml.start_run(system_metrics=False):
        first = loopml.log_artifact("plots")
    before = all_digests(workspace)
    with loopml.start_run(system_metrics=False):
        again = loopml.log_artifact("plots", name="copy-of-plots")
        loopml.log_artifact("plots/loss.txt")  # a file already inside the folder
    assert again.digest == first.digest
    # Only the second run's manifest is new.
    assert len(all_digests(workspace) - before) == 1


def test_bad_artifacts_are_clear_errors(workspace: Workspace) -> None:
    with loopml.start_run(system_metrics=False):
        with pytest.raises(UserInputError, match="does not exist"):
            loopml.log_artifact("missing/")
        with pytest.raises(UserInputError, match="must be relative"):
            loopml.log_dict({}, "../outside.json")
        with pytest.raises(UserInputError, match=r"\.json, \.yaml or \.yml"):
            loopml.log_dict({}, "report.txt")
        with pytest.raises(UserInputError, match="matplotlib or plotly"):
            loopml.log_figure(object(), "fig.png")
        with pytest.raises(UserInputError, match=r"\.png"):
            loopml.log_figure(figure(), "fig.txt")


def test_gc_keeps_what_runs_reference_and_removes_the_rest(workspace: Workspace, cli: Cli) -> None:
    make_plots(workspace.root)
    with loopml.start_run(experiment="gc", system_metrics=False) as run:
        loopml.log_artifact("plots/")
        loopml.log_dict({"a": 1}, "report.json")
        loopml.log_figure(figure(), "roc.png")
    orphan_small = workspace.objects.add_bytes(b"referenced by nothing")
    orphan_big = workspace.objects.add_bytes(b"x" * (1 << 20))
    info = loopml.get_run(run.id).info
    assert info.manifest_hash is not None
    manifest = json.loads(workspace.objects.read_bytes(info.manifest_hash))
    kept = {info.manifest_hash, manifest["environment"]}
    for artifact in info.artifacts:
        kept.add(artifact.digest)
        if artifact.kind == "tree":
            kept.update(entry.digest for entry in workspace.objects.get_tree(artifact.digest))
    assert len(kept) == 7
    assert kept <= all_digests(workspace)

    collected = cli("gc", "--yes", "--grace", "0")
    assert collected.exit_code == 0, collected.output
    assert "removed 2 unreachable" in collected.stdout

    remaining = all_digests(workspace)
    assert kept <= remaining
    assert orphan_small not in remaining and orphan_big not in remaining
    checked = cli("fsck")
    assert checked.exit_code == 0, checked.output
    assert "no problems" in checked.stdout
    # Every artifact still reads back whole.
    for artifact in info.artifacts:
        assert workspace.objects.verify(artifact.digest)
