"""push / pull with a local-folder remote and an S3 remote, and the fresh-clone round trip."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loopml.store.workspace import Workspace, init_workspace
from support import Cli


def make_data(root: Path, count: int = 30, big: bool = True) -> dict[str, bytes]:
    files: dict[str, bytes] = {
        f"part-{i:03}.csv": f"id,value\n{i},{i * i}\n".encode() for i in range(count)
    }
    if big:
        files["blob.bin"] = bytes(range(256)) * 2048  # 512 KiB: stored loose, not packed
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.s3)])
def remote_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "folder":
        return str(tmp_path / "remote-store")
    return f"{request.getfixturevalue('s3_bucket')}/team/loopml"


def test_fresh_clone_pull_checkout_restores_data(
    workspace: Workspace, cli: Cli, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = make_data(Path("data/sales"))
    assert cli("data", "add", "data/sales", "-m", "v1").exit_code == 0
    (Path("data/sales") / "part-000.csv").write_text("id,value\n0,changed\n")
    assert cli("data", "add", "data/sales", "-m", "v2").exit_code == 0
    v2 = snapshot(Path("data/sales"))
    assert cli("remote", "add", "origin", remote_url, "--default").exit_code == 0
    pushed = cli("push")
    assert pushed.exit_code == 0, pushed.output
    assert "pushed 1 datasets to origin" in pushed.stdout

    again = cli("push")
    assert "0 objects sent" in again.stdout  # only missing objects move

    # A "git clone": only the committed files travel (loopml.toml, loopml.lock, .loopml/.gitignore).
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("loopml.toml", "loopml.lock"):
        shutil.copy(workspace.root / name, clone / name)
    (clone / ".loopml").mkdir()
    shutil.copy(workspace.root / ".loopml/.gitignore", clone / ".loopml/.gitignore")
    monkeypatch.chdir(clone)
    pulled = cli("pull")
    assert pulled.exit_code == 0, pulled.output
    assert "1 new version records" not in pulled.stdout  # both versions' records came
    assert "2 new version records" in pulled.stdout
    checkout = cli("data", "checkout", "sales")
    assert checkout.exit_code == 0, checkout.output
    assert snapshot(clone / "data/sales") == v2
    assert cli("data", "status").stdout.strip() == "sales@v2 (data/sales): up to date"

    # v1's objects were not pulled (only the locked version); asking for them says what to do.
    missing = cli("data", "checkout", "sales@v1", "--to", "old")
    assert missing.exit_code == 1 and "run `loopml pull --all-versions` first" in missing.stderr
    assert cli("pull", "--all-versions").exit_code == 0
    assert cli("data", "checkout", "sales@v1", "--to", "old").exit_code == 0
    assert snapshot(clone / "old") == original
    assert cli("fsck").exit_code == 0


def test_push_resumes_sending_only_what_is_missing(
    workspace: Workspace, cli: Cli, remote_url: str
) -> None:
    make_data(Path("d"), count=50)
    cli("data", "add", "d")
    cli("remote", "add", "origin", remote_url)
    from loopml.store.remotes import open_remote

    with Workspace.open() as reopened:  # settings now include the remote
        remote = open_remote(reopened, "origin")
        local_digests = list(reopened.objects.backend.iter_digests())
        # As if an earlier push was killed after sending a third of the objects.
        reopened.objects.copy_to(remote.objects, local_digests[: len(local_digests) // 3])
    result = cli("push")
    assert result.exit_code == 0
    sent = int(result.stdout.split(": ")[1].split(" objects sent")[0])
    assert sent == len(local_digests) - len(local_digests) // 3


def test_two_workspaces_share_through_a_remote(
    workspace: Workspace, cli: Cli, remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_data(Path("d"), count=5, big=False)
    cli("data", "add", "d")
    cli("remote", "add", "origin", remote_url)
    cli("push")

    other_root = tmp_path / "other"
    other, _ = init_workspace(other_root)
    other.close()
    monkeypatch.chdir(other_root)
    assert cli("remote", "add", "origin", remote_url).exit_code == 0
    assert cli("pull", "d").exit_code == 0
    assert cli("data", "checkout", "d@latest").exit_code == 0
    Path("d/part-000.csv").write_text("edited elsewhere\n")
    assert "added d@v2" in cli("data", "add", "d").stdout
    assert cli("push").exit_code == 0

    monkeypatch.chdir(workspace.root)
    assert cli("pull", "d").exit_code == 0
    assert cli("data", "checkout", "d@v2").exit_code == 0
    assert Path("d/part-000.csv").read_text() == "edited elsewhere\n"


def test_conflicting_versions_are_refused(
    workspace: Workspace, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(tmp_path / "shared")
    make_data(Path("d"), count=2, big=False)
    cli("data", "add", "d")
    cli("remote", "add", "origin", url)
    cli("push")

    other_root = tmp_path / "other"
    other, _ = init_workspace(other_root)
    other.close()
    monkeypatch.chdir(other_root)
    make_data(Path("d"), count=3, big=False)  # different content, also v1
    cli("data", "add", "d")
    cli("remote", "add", "origin", url)
    refused = cli("push")
    assert refused.exit_code == 1
    assert "d@v1 on the remote differs from yours" in refused.stderr


def test_remote_inside_workspace_and_bad_urls_are_refused(workspace: Workspace, cli: Cli) -> None:
    inside = cli("remote", "add", "origin", "store-here")
    assert inside.exit_code == 2 and "inside the workspace" in inside.stderr
    bad = cli("remote", "add", "origin", "ftp://host/x")
    assert bad.exit_code == 2 and "unsupported remote URL" in bad.stderr
    assert "remotes" not in Path("loopml.toml").read_text().replace("# [remotes", "")
