"""Data versioning through the CLI, as a user drives it."""

from __future__ import annotations

import os
from pathlib import Path

from loopml.data.repository import DatasetRepository
from loopml.data.status import dataset_status
from loopml.refs import parse_ref
from loopml.store.workspace import Workspace
from support import Cli


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def age(root: Path, when: int = 1_600_000_000) -> None:
    """Give every file an old mtime, outside the stat cache's racy window."""
    for path in root.rglob("*"):
        os.utime(path, (when, when))


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_add_creates_versions_only_when_content_changes(workspace: Workspace, cli: Cli) -> None:
    write_tree(Path("data/sales"), {"a.csv": "1,2\n", "sub/b.csv": "3,4\n"})
    age(Path("data/sales"))
    first = cli("data", "add", "data/sales", "-m", "first")
    assert first.exit_code == 0, first.output
    assert "added sales@v1 (2 files" in first.stdout

    again = cli("data", "add", "data/sales")
    assert again.exit_code == 0
    assert "unchanged: sales@v1" in again.stdout

    Path("data/sales/a.csv").write_text("1,2\n5,6\n")
    second = cli("data", "add", "data/sales", "-m", "more rows")
    assert "added sales@v2" in second.stdout
    assert "1 read" in second.stdout  # only the changed file was read

    log = cli("data", "log", "sales")
    lines = log.stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["version", "hash", "files"]
    assert lines[1].startswith("v2\t") and lines[1].endswith("more rows")
    assert lines[2].startswith("v1\t") and lines[2].endswith("first")
    assert "\ttester\t" in lines[1]


def test_status_reports_added_modified_deleted(workspace: Workspace, cli: Cli) -> None:
    write_tree(Path("d"), {"keep.txt": "k", "edit.txt": "e", "gone.txt": "g"})
    cli("data", "add", "d")
    assert cli("data", "status").stdout.strip() == "d@v1 (d): up to date"

    Path("d/edit.txt").write_text("changed")
    Path("d/gone.txt").unlink()
    Path("d/new.txt").write_text("n")
    out = cli("data", "status").stdout
    assert "d@v1 (d): changed" in out
    assert "  added: new.txt" in out
    assert "  modified: edit.txt" in out
    assert "  deleted: gone.txt" in out


def test_status_reads_only_files_whose_stat_changed(workspace: Workspace) -> None:
    root = Path("many")
    write_tree(root, {f"f{i:03}.txt": f"content {i}" for i in range(200)})
    from loopml.data.versioning import add_dataset

    add_dataset(workspace, root)
    # Age the files so none is within the racy window of its stat cache entry.
    old = 1_600_000_000
    for path in root.iterdir():
        os.utime(path, (old, old))
    add_dataset(workspace, root)  # re-hashes (mtime moved) and records fresh entries
    quiet = dataset_status(workspace)
    assert quiet[0].clean and quiet[0].files_read == 0

    (root / "f007.txt").write_text("edited")
    os.utime(root / "f007.txt", (old + 10, old + 10))
    changed = dataset_status(workspace)
    assert changed[0].files_read == 1
    assert changed[0].diff.modified == ("f007.txt",)


def test_racy_file_is_rehashed_not_trusted(workspace: Workspace) -> None:
    """A file rewritten in the same timestamp tick, same size and inode, is still caught."""
    from loopml.data.versioning import add_dataset

    path = Path("r/file.txt")
    write_tree(Path("r"), {"file.txt": "aaaa"})
    stamp = os.stat(path).st_mtime_ns
    add_dataset(workspace, Path("r"))
    path.write_text("bbbb")  # same size, same inode
    os.utime(path, ns=(stamp, stamp))  # and the same mtime, as within one clock tick
    result = dataset_status(workspace)
    assert result[0].diff.modified == ("file.txt",)


def test_ls_diff_tag_and_references(workspace: Workspace, cli: Cli) -> None:
    write_tree(Path("d"), {"a": "1", "b": "2"})
    cli("data", "add", "d")
    Path("d/a").write_text("11")
    Path("d/c").write_text("3")
    Path("d/b").unlink()
    cli("data", "add", "d")

    listing = cli("data", "ls", "d@v1").stdout.splitlines()
    assert listing[0] == "path\tsize\thash"
    assert [line.split("\t")[0] for line in listing[1:]] == ["a", "b"]

    diff = cli("data", "diff", "d@v1", "d@latest").stdout
    assert "added\tc" in diff and "modified\ta" in diff and "deleted\tb" in diff

    assert cli("data", "tag", "d@1", "baseline").exit_code == 0
    assert [x.split("\t")[0] for x in cli("data", "ls", "d@baseline").stdout.splitlines()[1:]] == [
        "a",
        "b",
    ]
    moved = cli("data", "tag", "d@v2", "baseline")
    assert moved.exit_code == 1 and "--force" in moved.stderr
    assert "moved from v1" in cli("data", "tag", "d@v2", "baseline", "--force").stdout

    version = DatasetRepository(workspace.metadata).resolve(parse_ref("d@v1"))
    prefix = version.hash[:8]
    assert cli("data", "ls", f"d@{prefix}").stdout.splitlines()[1].startswith("a\t")
    resolved = DatasetRepository(workspace.metadata).resolve(parse_ref(f"d@{prefix}"))
    assert resolved.number == 1

    bad_tag = cli("data", "tag", "d@v1", "v7")
    assert bad_tag.exit_code == 2 and "looks like a version" in bad_tag.stderr


def test_ambiguous_hash_prefix_is_a_clear_error(workspace: Workspace, cli: Cli) -> None:
    repo = DatasetRepository(workspace.metadata)
    dataset = repo.ensure("d", "d", "dir")
    for digest in ("abcd1111" + "0" * 56, "abcd2222" + "0" * 56, "12345678" + "f" * 56):
        repo.add_version(dataset, digest=digest, size=0, file_count=0, message=None, author="t")

    ambiguous = cli("data", "ls", "d@abcd")
    assert ambiguous.exit_code == 2
    assert ambiguous.stderr.strip() == (
        "error: d@abcd matches several versions (v1, v2); give more hash characters"
    )
    assert repo.resolve(parse_ref("d@abcd2")).number == 2
    # All-digit text is a version number first, a hash prefix when no such version exists.
    assert repo.resolve(parse_ref("d@12345678")).number == 3
    assert repo.resolve(parse_ref("d@3")).number == 3


def test_checkout_restores_exact_bytes_and_modes(workspace: Workspace, cli: Cli) -> None:
    root = Path("d")
    write_tree(root, {"a.bin": "alpha", "deep/er/b.bin": "beta"})
    os.chmod(root / "a.bin", 0o755)
    cli("data", "add", "d")
    v1 = snapshot(root)
    write_tree(root, {"a.bin": "ALPHA!", "c.bin": "gamma"})
    (root / "deep/er/b.bin").unlink()
    cli("data", "add", "d")

    result = cli("data", "checkout", "d@v1")
    assert result.exit_code == 0, result.output
    assert snapshot(root) == v1
    assert os.stat(root / "a.bin").st_mode & 0o111
    assert not (root / "c.bin").exists()

    other = cli("data", "checkout", "d@v2", "--to", "copy")
    assert other.exit_code == 0
    assert snapshot(Path("copy")) == {"a.bin": b"ALPHA!", "c.bin": b"gamma"}


def test_checkout_copies_so_edits_never_touch_the_store(workspace: Workspace, cli: Cli) -> None:
    write_tree(Path("d"), {"a": "original"})
    cli("data", "add", "d")
    cli("data", "checkout", "d@v1", "--to", "out")
    out = Path("out/a")
    out.write_text("edited in place")
    cli("data", "checkout", "d@v1", "--to", "again", "--force")
    assert Path("again/a").read_text() == "original"
    assert cli("fsck").exit_code == 0


def test_checkout_refuses_to_destroy_unrecorded_changes(workspace: Workspace, cli: Cli) -> None:
    write_tree(Path("d"), {"a": "v1"})
    cli("data", "add", "d")
    write_tree(Path("d"), {"a": "v2"})
    cli("data", "add", "d")
    Path("d/a").write_text("precious work")
    Path("d/extra").write_text("also precious")

    refused = cli("data", "checkout", "d@v1")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: checkout would overwrite changes no version recorded")
    assert Path("d/a").read_text() == "precious work"

    forced = cli("data", "checkout", "d@v1", "--force")
    assert forced.exit_code == 0
    assert Path("d/a").read_text() == "v1" and not Path("d/extra").exists()

    # Content recorded in some version can be overwritten without --force.
    assert cli("data", "checkout", "d@v2").exit_code == 0
    assert Path("d/a").read_text() == "v2"


def test_lock_file_follows_add_and_drives_plain_checkout(workspace: Workspace, cli: Cli) -> None:
    write_tree(Path("d"), {"a": "one"})
    cli("data", "add", "d")
    lock_v1 = Path("loopml.lock").read_text()
    assert "version = 1" in lock_v1 and '[datasets."d"]' in lock_v1
    write_tree(Path("d"), {"a": "two"})
    cli("data", "add", "d")
    assert "version = 2" in Path("loopml.lock").read_text()

    Path("loopml.lock").write_text(lock_v1)  # as after `git checkout` of an older commit
    status = cli("data", "status").stdout
    assert "d@v1 (d) [latest is v2]: changed" in status
    assert cli("data", "checkout", "d").exit_code == 0
    assert Path("d/a").read_text() == "one"


def test_single_file_dataset(workspace: Workspace, cli: Cli) -> None:
    Path("model.csv").write_text("x\n1\n")
    assert "added model.csv@v1 (1 files" in cli("data", "add", "model.csv").stdout
    Path("model.csv").write_text("x\n2\n")
    cli("data", "add", "model.csv")
    cli("data", "checkout", "model.csv@v1")
    assert Path("model.csv").read_text() == "x\n1\n"
    assert (
        cli("data", "status").stdout.strip()
        == "model.csv@v1 (model.csv) [latest is v2]: up to date"
    )


def test_python_api_get_and_read_frame(workspace: Workspace) -> None:
    import pandas as pd

    import loopml

    frame = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    Path("tables").mkdir()
    frame.to_parquet("tables/part.parquet")
    version = loopml.data.add("tables", name="sales")
    assert version.number == 1

    path = loopml.data.get("sales@v1")
    assert path.is_dir() and (path / "part.parquet").is_file()
    assert not os.access(path / "part.parquet", os.W_OK) or os.geteuid() == 0
    assert not (path / "part.parquet").stat().st_mode & 0o222
    pd.testing.assert_frame_equal(loopml.data.read_frame("sales@latest"), frame)

    Path("single.csv").write_text("a,b\n1,2\n")
    loopml.data.add("single.csv", name="single")
    assert loopml.data.read_frame(loopml.data.ref("single@v1")).to_dict() == {
        "a": {0: 1},
        "b": {0: 2},
    }
    assert [v.number for v in loopml.data.log("sales")] == [1]
