"""Bad input: each case is a one-line error, a non-zero exit, and nothing written."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from loopml.store.workspace import Workspace
from support import LOOPML_BIN, Cli, CliResult, run_loopml


def records(workspace: Workspace) -> tuple[int, int, bytes | None]:
    """Counts of dataset versions and objects, and loopml.lock's bytes."""
    from sqlalchemy import func, select

    from loopml.store.metadata.schema import dataset_versions

    with workspace.metadata.read() as conn:
        versions = conn.execute(select(func.count()).select_from(dataset_versions)).scalar_one()
    objects = sum(1 for _ in workspace.objects.backend.iter_digests())
    lock = Path("loopml.lock")
    return versions, objects, lock.read_bytes() if lock.exists() else None


def assert_one_line_error(result: object, exit_code: int, fragment: str) -> None:
    assert result.exit_code == exit_code, result.output  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, result.stderr  # type: ignore[attr-defined]
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]


@pytest.fixture
def baseline(workspace: Workspace, cli: Cli) -> tuple[int, int, bytes | None]:
    Path("ok").mkdir()
    Path("ok/a.txt").write_text("a")
    assert cli("data", "add", "ok").exit_code == 0
    return records(workspace)


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["data", "add", "no/such/path"], 2, "no/such/path does not exist"),
        (["data", "add", "/etc"], 2, "is outside the workspace"),
        (["data", "add", ".loopml/objects"], 2, "which loopml manages itself"),
        (["data", "add", "ok", "--name", "has/slash"], 2, "invalid dataset name 'has/slash'"),
        (["data", "add", "ok", "--name", "has space"], 2, "invalid dataset name 'has space'"),
        (["data", "checkout", "ok@v99"], 1, "ok@v99 does not exist; ok has v1 to v1"),
        (["data", "ls", "nope@v1"], 1, "no dataset named 'nope'"),
        (["data", "ls", "ok@"], 2, "nothing after '@'"),
        (["data", "ls", "ok@v1@v2"], 2, "single '@'"),
        (["data", "diff", "ok@v1", "ok@v2"], 1, "ok@v2 does not exist"),
        (["data", "tag", "ok@v1", "latest"], 2, "looks like a version"),
        (["push"], 2, "no remote configured"),
        (["gc", "--grace", "-1"], 2, "--grace must be zero or more"),
    ],
)
def test_bad_arguments(
    workspace: Workspace,
    cli: Cli,
    baseline: tuple[int, int, bytes | None],
    args: list[str],
    code: int,
    fragment: str,
) -> None:
    assert_one_line_error(cli(*args), code, fragment)
    assert records(workspace) == baseline


def test_symlink_loop(
    workspace: Workspace, cli: Cli, baseline: tuple[int, int, bytes | None]
) -> None:
    Path("loopy").mkdir()
    Path("loopy/good.txt").write_text("g")
    os.symlink("self", "loopy/self")
    assert_one_line_error(cli("data", "add", "loopy"), 2, "loopy/self is a symlink loop")
    os.symlink("d2", "d1")
    os.symlink("d1", "d2")
    assert_one_line_error(cli("data", "add", "d1"), 2, "d1 is a symlink loop")
    assert records(workspace) == baseline


def test_symlinked_file_is_versioned_by_content(workspace: Workspace, cli: Cli) -> None:
    Path("real.txt").write_text("real content")
    Path("d").mkdir()
    os.symlink("../real.txt", "d/link.txt")
    assert cli("data", "add", "d").exit_code == 0
    os.unlink("d/link.txt")
    assert cli("data", "checkout", "d@v1").exit_code == 0
    assert Path("d/link.txt").read_text() == "real content"


def test_special_file_is_refused(
    workspace: Workspace, cli: Cli, baseline: tuple[int, int, bytes | None]
) -> None:
    Path("withfifo").mkdir()
    os.mkfifo("withfifo/pipe")
    assert_one_line_error(cli("data", "add", "withfifo"), 2, "is not a regular file")
    assert records(workspace) == baseline


def test_not_a_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> None:
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(cli("data", "status"), 1, "no loopml workspace")


def test_malformed_config_and_lock(workspace: Workspace, cli: Cli) -> None:
    Path("loopml.toml").write_text("[store\nbroken = ")
    assert_one_line_error(cli("data", "status"), 2, "loopml.toml is not valid TOML")
    Path("loopml.toml").write_text("")
    Path("loopml.lock").write_text("[datasets.x]\npath = 1\n")
    assert_one_line_error(cli("data", "checkout", "x"), 2, "loopml.lock is malformed")


def test_debug_shows_the_traceback(workspace: Workspace) -> None:
    plain = run_loopml("data", "add", "missing", cwd=workspace.root)
    assert plain.exit_code == 2 and "Traceback" not in plain.stderr
    debug = run_loopml("--debug", "data", "add", "missing", cwd=workspace.root)
    assert debug.exit_code == 2 and "Traceback" in debug.stderr


def test_unreadable_file(
    workspace: Workspace, cli: Cli, baseline: tuple[int, int, bytes | None]
) -> None:
    Path("d").mkdir()
    Path("d/fine.txt").write_text("fine")
    secret = Path("d/secret.txt")
    secret.write_text("secret")
    secret.chmod(0)
    env = None
    prefix: list[str] = []
    if os.geteuid() == 0:
        # root reads any file; drop the capabilities that let it, as for an ordinary user.
        drop = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}"]
    proc = subprocess.run(
        [*prefix, str(LOOPML_BIN), "data", "add", "d"],
        cwd=workspace.root,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    result = CliResult(proc.returncode, proc.stdout, proc.stderr)
    assert_one_line_error(result, 2, "cannot read d/secret.txt: permission denied")
    assert records(workspace) == baseline
    assert stat.S_IMODE(secret.stat().st_mode) == 0


def test_bad_flag_is_a_usage_error(workspace: Workspace, cli: Cli) -> None:
    result = cli("data", "add", "--bogus")
    assert result.exit_code == 2
    assert "No such option: --bogus" in result.output
    assert "Traceback" not in result.output
