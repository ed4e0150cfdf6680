"""Crashes and concurrency: kill -9 mid-write, several writers at once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from loopml.store.workspace import Workspace
from support import LOOPML_BIN, Cli, run_loopml


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def grow(root: Path, small: int, big_mib: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(small):
        (root / f"s{i:05}.txt").write_bytes(os.urandom(2048))
    if big_mib:
        with open(root / "big.bin", "wb") as handle:
            for _ in range(big_mib):
                handle.write(os.urandom(1024 * 1024))


def kill_when(proc: subprocess.Popen[bytes], ready: object, timeout: float = 60) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true (it must still be running then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            break
        if proc.poll() is not None:
            pytest.fail("the command finished before it could be killed; make the data larger")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_kill_9_during_data_add_keeps_previous_version(workspace: Workspace, cli: Cli) -> None:
    data = Path("d")
    grow(data, small=20, big_mib=0)
    assert cli("data", "add", "d").exit_code == 0
    v1 = snapshot(data)
    lock_v1 = Path("loopml.lock").read_bytes()
    grow(data, small=3000, big_mib=96)

    objects = workspace.root / ".loopml/objects"
    proc = subprocess.Popen([str(LOOPML_BIN), "data", "add", "d"], cwd=workspace.root)

    def writing() -> bool:
        tmp = list((objects / "tmp").glob("obj-*")) if (objects / "tmp").is_dir() else []
        packs = list((objects / "packs").glob("tmp-*")) if (objects / "packs").is_dir() else []
        return bool(tmp or packs)

    kill_when(proc, writing)

    check = run_loopml("fsck", cwd=workspace.root)
    assert check.exit_code == 0, check.output
    log = run_loopml("data", "log", "d", cwd=workspace.root)
    assert [line.split("\t")[0] for line in log.stdout.splitlines()[1:]] == ["v1"]
    assert Path("loopml.lock").read_bytes() == lock_v1
    restored = run_loopml("data", "checkout", "d@v1", "--to", "v1-copy", cwd=workspace.root)
    assert restored.exit_code == 0, restored.output
    assert snapshot(Path("v1-copy")) == v1

    again = run_loopml("data", "add", "d", cwd=workspace.root)
    assert again.exit_code == 0 and "added d@v2" in again.stdout, again.output
    assert run_loopml("fsck", cwd=workspace.root).exit_code == 0
    gc = run_loopml("gc", "--yes", "--grace", "0", cwd=workspace.root)
    assert gc.exit_code == 0
    assert not list((objects / "tmp").glob("*")) and not list((objects / "packs").glob("tmp-*"))


@pytest.mark.slow
def test_kill_9_during_push_then_push_completes(
    workspace: Workspace, cli: Cli, tmp_path: Path
) -> None:
    grow(Path("d"), small=2500, big_mib=64)
    assert cli("data", "add", "d").exit_code == 0
    remote = tmp_path / "remote"
    assert cli("remote", "add", "origin", str(remote)).exit_code == 0

    proc = subprocess.Popen([str(LOOPML_BIN), "push"], cwd=workspace.root)

    def sending() -> bool:
        objects = remote / "objects"
        return objects.is_dir() and any(objects.glob("[0-9a-f][0-9a-f]/*"))

    kill_when(proc, sending)
    assert not (remote / "datasets" / "d.json").exists()  # records go last

    result = run_loopml("push", cwd=workspace.root)
    assert result.exit_code == 0, result.output
    sent = int(result.stdout.split(": ")[1].split(" objects sent")[0])
    present = int(result.stdout.split("), ")[1].split(" already there")[0])
    assert (
        present >= 1 and sent >= 1 and sent + present == 2500 + 1 + 1
    )  # files, the big one, the tree
    assert (remote / "datasets" / "d.json").exists()
    assert run_loopml("fsck", cwd=workspace.root).exit_code == 0


@pytest.mark.slow
def test_four_processes_add_at_once(workspace: Workspace) -> None:
    for n in range(4):
        grow(Path(f"p{n}"), small=300, big_mib=0)
    procs = [
        subprocess.Popen(
            [str(LOOPML_BIN), "data", "add", f"p{n}"],
            cwd=workspace.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
        assert b"error" not in err
    listing = run_loopml("data", "ls", cwd=workspace.root).stdout.splitlines()[1:]
    assert sorted(line.split("\t")[0] for line in listing) == ["p0", "p1", "p2", "p3"]
    lock = Path("loopml.lock").read_text()
    assert all(f'[datasets."p{n}"]' in lock for n in range(4))
    assert run_loopml("fsck", cwd=workspace.root).exit_code == 0
