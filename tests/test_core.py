"""Core: the package's import cost, settings precedence, references and ids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loopml.config import find_workspace_root, load_settings
from loopml.errors import ConfigError, InvalidReferenceError, UserInputError, WorkspaceNotFoundError
from loopml.ids import new_id, shortest_unique_prefixes
from loopml.refs import RefKind, parse_ref, validate_label
from loopml.store.workspace import init_workspace
from support import Cli, run_loopml

HEAVY = ("pandas", "pyarrow", "sqlalchemy", "sklearn", "alembic", "numpy", "fsspec")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split(".")[0] for line in out.splitlines()}


def test_import_loopml_loads_no_heavy_library() -> None:
    loaded = _modules_after("import loopml, loopml.data")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_cli_version_and_status_load_no_heavy_library(tmp_path: Path) -> None:
    init_workspace(tmp_path)[0].close()
    code = (
        "import sys, os\n"
        f"os.chdir({str(tmp_path)!r})\n"
        "from loopml.cli.main import run\n"
        "try:\n    run(['data', 'status'])\nexcept SystemExit as e:\n    assert not e.code\n"
    )
    loaded = _modules_after(code)
    assert not loaded & {"pandas", "pyarrow", "sqlalchemy", "alembic", "sklearn"}
    version = run_loopml("--version", cwd=tmp_path)
    assert version.exit_code == 0 and version.stdout.startswith("loopml 0.")


def test_init_creates_the_workspace_layout(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = cli("init", "proj")
    assert first.exit_code == 0 and "Initialised loopml workspace" in first.stdout
    root = tmp_path / "proj"
    ignore = (root / ".loopml/.gitignore").read_text()
    assert "/loopml.db*" in ignore and "/objects/" in ignore
    assert "[store]" in (root / "loopml.toml").read_text()
    assert (root / ".loopml/loopml.db").is_file()
    assert "Reinitialised existing" in cli("init", "proj").stdout
    (root / "a/b").mkdir(parents=True)
    assert find_workspace_root(root / "a/b") == root.resolve()
    with pytest.raises(WorkspaceNotFoundError, match="run `loopml init` first"):
        find_workspace_root(tmp_path)
    (tmp_path / "file").write_text("")
    assert cli("init", "file").exit_code == 2


def test_settings_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_workspace(tmp_path)[0].close()
    default = load_settings(tmp_path)
    assert default.database_url == f"sqlite:///{tmp_path.resolve()}/.loopml/loopml.db"
    (tmp_path / "loopml.toml").write_text(
        '[store]\ndatabase_url = "sqlite:///from-toml.db"\n[core]\njobs = 3\n'
        '[remotes.origin]\nurl = "s3://b/p"\n'
    )
    from_toml = load_settings(tmp_path)
    assert from_toml.database_url == "sqlite:///from-toml.db" and from_toml.jobs == 3
    assert from_toml.remotes["origin"].url == "s3://b/p"
    monkeypatch.setenv("LOOPML_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("LOOPML_JOBS", "5")
    from_env = load_settings(tmp_path)
    assert from_env.database_url == "sqlite:///from-env.db" and from_env.jobs == 5
    assert (
        load_settings(tmp_path, database_url="sqlite:///arg.db").database_url == "sqlite:///arg.db"
    )
    monkeypatch.setenv("LOOPML_JOBS", "many")
    with pytest.raises(ConfigError, match="jobs must be a whole number"):
        load_settings(tmp_path)


@pytest.mark.parametrize(
    ("text", "kind", "version", "label"),
    [
        ("sales", RefKind.LATEST, None, None),
        ("sales@latest", RefKind.LATEST, None, None),
        ("sales@v3", RefKind.VERSION, 3, None),
        ("sales@3", RefKind.VERSION, 3, "3"),
        ("sales@prod", RefKind.LABEL, None, "prod"),
        ("sales@ab12cd", RefKind.LABEL, None, "ab12cd"),
    ],
)
def test_parse_ref(text: str, kind: RefKind, version: int | None, label: str | None) -> None:
    ref = parse_ref(text)
    assert (ref.name, ref.kind, ref.version, ref.label) == ("sales", kind, version, label)


@pytest.mark.parametrize("text", ["", "@v1", "a b@v1", "a/b", "x@v0", "x@", "x@a@b", "x@-bad"])
def test_parse_ref_rejects(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_ref(text)


@pytest.mark.parametrize("label", ["v2", "7", "latest", "LATEST", "with space"])
def test_labels_may_not_look_like_versions(label: str) -> None:
    with pytest.raises(UserInputError):
        validate_label(label)


def test_ids_sort_by_creation_and_prefixes_are_unique() -> None:
    ids = [new_id() for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == 2000
    assert all(len(i) == 32 and i[12] == "7" for i in ids)  # UUIDv7
    prefixes = shortest_unique_prefixes(ids)
    assert len(set(prefixes.values())) == 2000
    assert all(ident.startswith(p) and len(p) >= 8 for ident, p in prefixes.items())
