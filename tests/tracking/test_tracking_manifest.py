"""Run manifests: captured without being asked, read back as JSON from the object store."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tracking_helpers import python, write_script

import loopml
from loopml.store.workspace import Workspace
from loopml.tracking.manifest import capture_git


def manifest_of(workspace: Workspace, run_id: str) -> dict[str, Any]:
    digest = loopml.get_run(run_id).info.manifest_hash
    assert digest is not None, "the run has no manifest"
    document: dict[str, Any] = json.loads(workspace.objects.read_bytes(digest))
    return document


def environment_of(workspace: Workspace, manifest: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(workspace.objects.read_bytes(manifest["environment"]))
    return document


def git(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [
            "git",
            "-c",
            "user.name=Tester",
            "-c",
            "user.email=tester@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


@pytest.fixture
def git_repo(workspace: Workspace) -> Path:
    """The workspace as a git repository with one commit and then local changes."""
    root = workspace.root
    (root / "train.py").write_text("print('train')\n")
    (root / "helper.py").write_text("X = 1\n")
    git("init", "--quiet", "--initial-branch=main", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "--quiet", "-m", "first", cwd=root)
    (root / "train.py").write_text("print('train harder')\n")
    (root / "notes.txt").write_text("untracked\n")
    return root


def test_environment_is_captured_once_and_shared_by_runs(workspace: Workspace) -> None:
    with loopml.start_run(experiment="env", system_metrics=False) as first:
        pass
    with loopml.start_run(experiment="env", system_metrics=False) as second:
        pass
    one, two = manifest_of(workspace, first.id), manifest_of(workspace, second.id)
    assert one["format"] == "loopml-manifest/1"
    assert one["run_id"] == first.id and two["run_id"] == second.id
    # Stored once, as a deduplicated object, that both manifests name.
    assert one["environment"] == two["environment"]
    assert one != two

    environment = environment_of(workspace, one)
    assert environment["python"]["version"] == platform.python_version()
    assert environment["python"]["executable"] == sys.executable
    packages = set(environment["packages"])
    assert f"loopml=={loopml.__version__}" in packages
    import numpy

    assert f"numpy=={numpy.__version__}" in packages
    assert environment["platform"]["system"] == platform.system()
    assert environment["platform"]["machine"] == platform.machine()
    assert environment["hardware"]["cpu_count"] == os.cpu_count()
    assert environment["hardware"]["memory_mb"] > 0
    assert isinstance(environment["hardware"]["gpus"], list)
    # The environment object is a garbage-collection root of the run.
    assert workspace.objects.has(one["environment"])


def test_manifest_records_the_git_commit_and_uncommitted_changes(
    workspace: Workspace, git_repo: Path
) -> None:
    head = git("rev-parse", "HEAD", cwd=git_repo)
    with loopml.start_run(experiment="git", system_metrics=False) as run:
        loopml.log_metric("x", 1.0)
    state = manifest_of(workspace, run.id)["git"]
    assert state["commit"] == head
    assert state["branch"] == "main"
    assert state["root"] == str(git_repo)
    assert state["dirty"] is True
    assert state["changed_files"] == ["notes.txt", "train.py"]
    assert state["diff_hash"] == capture_git(git_repo).diff_hash is not None

    # The hash is of the changes' content: another edit gives another hash, a revert none.
    (git_repo / "train.py").write_text("print('train even harder')\n")
    assert capture_git(git_repo).diff_hash not in (None, state["diff_hash"])
    (git_repo / "notes.txt").unlink()
    git("checkout", "--", "train.py", cwd=git_repo)
    clean = capture_git(git_repo)
    assert (clean.commit, clean.dirty, clean.diff_hash, clean.changed_files) == (
        head,
        False,
        None,
        (),
    )


def test_outside_a_git_repository_the_git_state_is_empty(workspace: Workspace) -> None:
    with loopml.start_run(system_metrics=False) as run:
        pass
    state = manifest_of(workspace, run.id)["git"]
    assert state == {
        "commit": None,
        "branch": None,
        "dirty": False,
        "diff_hash": None,
        "changed_files": [],
        "root": None,
    }


def test_manifest_of_a_script_has_its_command_seeds_and_dataset_inputs(
    workspace: Workspace, tmp_path: Path
) -> None:
    data = workspace.root / "data"
    data.mkdir()
    (data / "sales.csv").write_text("a,b\n1,2\n3,4\n")
    (data / "regions.csv").write_text("r\nnorth\n")
    sales = loopml.data.add("data/sales.csv", name="sales")
    regions = loopml.data.add("data/regions.csv", name="regions")
    (data / "sales.csv").write_text("a,b\n1,2\n3,4\n5,6\n")
    sales_v2 = loopml.data.add("data/sales.csv", name="sales")
    assert (sales.number, sales_v2.number) == (1, 2)

    script = write_script(
        tmp_path / "train.py",
        """
        import sys
        import loopml

        loopml.seed(42)  # before any run: recorded in the runs that follow
        with loopml.start_run(experiment="manifest") as first:
            frame = loopml.data.read_frame("sales@v1")
            assert len(frame) == 2
            loopml.data.get("regions@latest")
        with loopml.start_run(experiment="manifest") as second:
            loopml.seed(7)
            assert len(loopml.data.read_frame("sales@v2")) == 3
        print(first.id, second.id)
        """,
    )
    done = python(script, "--epochs", "3", cwd=workspace.root)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    first_id, second_id = done.stdout.split()

    first, second = manifest_of(workspace, first_id), manifest_of(workspace, second_id)
    assert first["command"] == [str(script), "--epochs", "3"]
    assert first["cwd"] == str(workspace.root)
    assert first["seeds"] == {"random": 42, "numpy": 42}
    assert second["seeds"] == {"random": 7, "numpy": 7}
    assert first["inputs"] == [
        {"dataset": "regions", "version": 1, "hash": regions.hash},
        {"dataset": "sales", "version": 1, "hash": sales.hash},
    ]
    assert second["inputs"] == [{"dataset": "sales", "version": 2, "hash": sales_v2.hash}]
    assert first["environment"] == second["environment"]
    assert environment_of(workspace, first)["python"]["executable"] == sys.executable

    inputs = loopml.get_run(first_id).info.inputs
    assert [(i.dataset, i.version, i.hash) for i in inputs] == [
        ("regions", 1, regions.hash),
        ("sales", 1, sales.hash),
    ]
    assert [(i.dataset, i.version) for i in loopml.get_run(second_id).info.inputs] == [("sales", 2)]


def test_reads_in_a_run_are_its_inputs_in_process(workspace: Workspace) -> None:
    (workspace.root / "t.csv").write_text("x\n1\n")
    version = loopml.data.add("t.csv", name="t")
    loopml.data.read_frame("t@v1")  # outside any run: nobody's input
    with loopml.start_run(system_metrics=False) as run:
        loopml.data.read_frame("t@v1")
        loopml.data.read_frame("t@latest")  # the same version twice is one input
    with loopml.start_run(system_metrics=False) as idle:
        pass
    assert [(i.dataset, i.version, i.hash) for i in loopml.get_run(run.id).info.inputs] == [
        ("t", 1, version.hash)
    ]
    assert loopml.get_run(idle.id).info.inputs == ()
    assert manifest_of(workspace, idle.id)["inputs"] == []
