"""``loopml fsck`` and ``loopml gc`` through the real CLI, on a workspace with dataset versions."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from loopml.store.hashing import hash_bytes
from loopml.store.objects.local import LocalObjectBackend
from loopml.store.objects.packs import read_index
from loopml.store.tree import Tree
from loopml.store.workspace import Workspace, init_workspace

if TYPE_CHECKING:
    from support import Cli

LARGE = 300 * 1024  # above the 256 KiB packing threshold: a loose object


def _write_dataset(root: Path, variant: str) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "nested/b.csv": f"x,y\n1,{variant}\n".encode(),
        f"only-{variant}.txt": variant.encode() * 10,
        "large.bin": (variant.encode() + os.urandom(16)) * (LARGE // 17 + 1),
    }
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for stale in root.rglob("only-*.txt"):
        if stale.name != f"only-{variant}.txt":
            stale.unlink()
    return files


def _versions(workspace: Workspace) -> list[str]:
    with workspace.metadata.read() as conn:
        rows = conn.exec_driver_sql("SELECT hash FROM dataset_versions ORDER BY number").all()
    return [str(row[0]) for row in rows]


def _flip(path: Path, offset: int) -> None:
    path.chmod(0o644)  # objects are written read-only
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _local(workspace: Workspace) -> LocalObjectBackend:
    backend = workspace.objects.backend
    assert isinstance(backend, LocalObjectBackend)
    return backend


def _flip_object(workspace: Workspace, digest: str) -> str:
    """Damage one stored object in place, loose or packed; returns where it was."""
    backend = _local(workspace)
    loose = backend.loose_path(digest)
    if loose.exists():
        _flip(loose, loose.stat().st_size // 2)
        return "loose"
    for index_path in backend.packs_dir.glob("pack-*.idx"):
        index = read_index(index_path)
        if digest in index.entries:
            offset, length = index.entries[digest]
            _flip(index.pack_path, offset + length // 2)
            return "packed"
    raise AssertionError(f"{digest} is not stored")


def _assert_one_line_error(output: str, digest: str) -> None:
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, output
    assert digest[:16] in errors[0]


@pytest.fixture
def dataset(workspace: Workspace, cli: Cli) -> dict[str, bytes]:
    """``data/`` recorded once; returns its files."""
    files = _write_dataset(workspace.root / "data", "v1")
    result = cli("data", "add", "data")
    assert result.exit_code == 0, result.output
    return files


def test_fsck_is_clean_after_data_add(
    workspace: Workspace, cli: Cli, dataset: dict[str, bytes]
) -> None:
    result = cli("fsck")
    assert result.exit_code == 0, result.output
    assert "no problems" in result.stdout
    (tree_digest,) = _versions(workspace)
    tree = workspace.objects.get_tree(tree_digest)
    assert {e.path for e in tree} == set(dataset)
    assert workspace.objects.missing({e.digest for e in tree}) == set()


@pytest.mark.parametrize("where", ["loose", "packed"])
def test_a_flipped_byte_is_found_by_fsck_and_stops_checkout(
    workspace: Workspace, cli: Cli, dataset: dict[str, bytes], where: str
) -> None:
    name = "large.bin" if where == "loose" else "nested/b.csv"
    digest = hash_bytes(dataset[name])
    assert _flip_object(workspace, digest) == where

    result = cli("fsck")
    assert result.exit_code == 1, result.output
    assert digest in result.stdout
    problem_lines = [line for line in result.stdout.splitlines() if line.startswith("corrupt:")]
    assert len(problem_lines) == 1 and digest in problem_lines[0]

    result = cli("data", "checkout", "data@v1", "--to", "restored")
    assert result.exit_code != 0
    _assert_one_line_error(result.output, digest)
    assert not (workspace.root / "restored" / name).exists()


def test_fsck_reports_an_object_a_version_lists_but_the_store_lacks(
    workspace: Workspace, cli: Cli, dataset: dict[str, bytes]
) -> None:
    digest = hash_bytes(dataset["large.bin"])
    _local(workspace).delete(digest)
    result = cli("fsck")
    assert result.exit_code == 1, result.output
    assert f"missing: {digest}" in result.stdout
    assert "large.bin" in result.stdout


def _checkout_each_version(cli: Cli, root: Path, snapshots: list[dict[str, bytes]]) -> None:
    for number, files in enumerate(snapshots, start=1):
        target = f"check-v{number}"
        result = cli("data", "checkout", f"data@v{number}", "--to", target)
        assert result.exit_code == 0, result.output
        restored = {
            p.relative_to(root / target).as_posix(): p.read_bytes()
            for p in (root / target).rglob("*")
            if p.is_file()
        }
        assert restored == files


def test_gc_removes_only_what_no_version_or_pin_reaches(workspace: Workspace, cli: Cli) -> None:
    root = workspace.root
    v1 = _write_dataset(root / "data", "v1")
    assert cli("data", "add", "data").exit_code == 0
    v2 = _write_dataset(root / "data", "v2")
    assert cli("data", "add", "data").exit_code == 0
    assert len(_versions(workspace)) == 2

    objects = workspace.objects
    stray = objects.add_bytes(b"stray: no version reaches me")
    with objects.batch() as batch:
        stray_packed = batch.add_bytes(b"stray in a pack of its own")
    pinned = objects.add_bytes(b"pinned on purpose")
    workspace.metadata.run_write(
        lambda conn: conn.exec_driver_sql(
            "INSERT INTO pins (hash, reason, created_at) VALUES (?, 'kept by hand', 0)", (pinned,)
        )
    )
    every_version_object = set(_versions(workspace))
    for tree_digest in _versions(workspace):
        every_version_object |= {e.digest for e in objects.get_tree(tree_digest)}

    # Dry run by default: nothing goes, young or old.
    result = cli("gc")
    assert result.exit_code == 0, result.output
    assert "would remove 0 unreachable" in result.stdout
    assert "kept 2 unreachable objects younger than 900 s" in result.stdout
    result = cli("gc", "--grace", "0")
    assert result.exit_code == 0, result.output
    assert "would remove 2 unreachable" in result.stdout
    assert "loopml gc --yes" in result.stdout
    assert objects.missing([stray, stray_packed, pinned]) == set()

    # --yes with the default grace keeps objects a concurrent `data add` might be writing.
    result = cli("gc", "--yes")
    assert result.exit_code == 0, result.output
    assert "removed 0 unreachable" in result.stdout
    assert objects.missing([stray, stray_packed]) == set()

    result = cli("gc", "--yes", "--grace", "0")
    assert result.exit_code == 0, result.output
    assert "removed 2 unreachable" in result.stdout
    assert objects.missing([stray, stray_packed, pinned]) == {stray, stray_packed}
    assert objects.missing(every_version_object) == set()
    assert objects.read_bytes(pinned) == b"pinned on purpose"

    result = cli("fsck")
    assert result.exit_code == 0, result.output
    _checkout_each_version(cli, root, [v1, v2])

    result = cli("gc", "--yes", "--grace", "0")  # nothing more to do
    assert "removed 0 unreachable" in result.stdout


def test_gc_of_old_unreachable_objects_with_the_default_grace(
    workspace: Workspace, cli: Cli, dataset: dict[str, bytes]
) -> None:
    stray = workspace.objects.add_bytes(b"old and unreachable")
    old = time.time() - 3600
    os.utime(_local(workspace).loose_path(stray), (old, old))
    result = cli("gc", "--yes")
    assert result.exit_code == 0, result.output
    assert "removed 1 unreachable" in result.stdout
    assert not workspace.objects.has(stray)
    assert cli("fsck").exit_code == 0


def test_gc_refuses_when_a_version_tree_is_unreadable(
    workspace: Workspace, cli: Cli, dataset: dict[str, bytes]
) -> None:
    (tree_digest,) = _versions(workspace)
    files = {e.digest for e in workspace.objects.get_tree(tree_digest)}
    _flip_object(workspace, tree_digest)
    old = time.time() - 3600
    for _digest, path in _local(workspace).iter_loose():
        os.utime(path, (old, old))

    result = cli("gc", "--yes", "--grace", "0")
    assert result.exit_code != 0
    _assert_one_line_error(result.output, tree_digest[:12])
    assert workspace.objects.missing(files) == set()  # the version's files were all kept


def test_blobs_that_merely_look_like_trees(
    workspace: Workspace, cli: Cli, dataset: dict[str, bytes]
) -> None:
    """A verified blob that looks like a manifest but is none is a plain object, root or not."""
    stray = workspace.objects.add_bytes(b'{"format":"loopml-tree/1","entries":[["x"')
    pinned = workspace.objects.add_bytes(b'{"format":"loopml-tree/1","entries":5}')
    assert Tree.looks_like_tree(workspace.objects.read_bytes(pinned))
    workspace.metadata.run_write(
        lambda conn: conn.exec_driver_sql(
            "INSERT INTO pins (hash, reason, created_at) VALUES (?, 'odd blob', 0)", (pinned,)
        )
    )
    result = cli("gc", "--yes", "--grace", "0")
    assert result.exit_code == 0, result.output
    assert not workspace.objects.has(stray)
    assert workspace.objects.has(pinned)
    assert cli("fsck").exit_code == 0


@pytest.fixture
def s3_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_bucket: str
) -> Iterator[Workspace]:
    """A workspace whose objects live on the test S3 server."""
    monkeypatch.setenv("LOOPML_OBJECTS_URL", f"{s3_bucket}/objects")
    root = tmp_path / "s3project"
    root.mkdir()
    monkeypatch.chdir(root)
    workspace, _ = init_workspace(root)
    try:
        yield workspace
    finally:
        workspace.close()


@pytest.mark.s3
def test_gc_and_fsck_with_objects_on_s3(s3_workspace: Workspace, cli: Cli) -> None:
    workspace = s3_workspace
    files = _write_dataset(workspace.root / "data", "s3")
    assert cli("data", "add", "data").exit_code == 0
    stray = workspace.objects.add_bytes(b"stray on s3")
    assert cli("fsck").exit_code == 0

    result = cli("gc", "--yes")  # the stray is younger than the grace period
    assert result.exit_code == 0, result.output
    assert "removed 0 unreachable" in result.stdout
    assert workspace.objects.has(stray)

    result = cli("gc", "--yes", "--grace", "0")
    assert result.exit_code == 0, result.output
    assert "removed 1 unreachable" in result.stdout
    assert not workspace.objects.has(stray)
    assert cli("fsck").exit_code == 0
    _checkout_each_version(cli, workspace.root, [files])
