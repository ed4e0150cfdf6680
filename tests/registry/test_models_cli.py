"""``loopml models …`` through the real CLI (piped output), and gc keeping model versions."""

from __future__ import annotations

import numpy as np
from registry_helpers import churn_frame, close_tracking, log_versions

from loopml.registry import get_version, load_model
from loopml.store.workspace import Workspace
from support import Cli


def _lines(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines()]


def test_models_commands_with_piped_output(workspace: Workspace, cli: Cli) -> None:
    versions = log_versions("churn", 3)
    close_tracking()

    result = cli("models", "ls")
    assert result.exit_code == 0, result.output
    header, row = _lines(result.stdout)
    assert header == ["name", "versions", "latest", "aliases", "updated"]
    assert row[:4] == ["churn", "3", "v3", ""]

    result = cli("models", "alias", "churn@v2", "challenger", "--reason", "try the new one")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "churn@challenger: - -> v2"

    result = cli("models", "alias", "churn", "3", "champion", "--reason", "ship it")
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: 'champion' is a protected alias of churn")
    assert len(result.stderr.strip().splitlines()) == 1

    result = cli("models", "alias", "churn", "3", "champion", "--force", "--reason", "hotfix")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "churn@champion: - -> v3 (forced)"

    # A stale expectation is a compare-and-swap conflict, not an overwrite.
    result = cli(
        "models", "alias", "churn@1", "champion", "--force", "--reason", "x", "--expect", "none"
    )
    assert result.exit_code == 1
    assert "churn@champion points to v3, not nothing as expected" in result.stderr
    assert get_version("churn@champion").number == 3

    result = cli("models", "versions", "churn")
    assert result.exit_code == 0, result.output
    rows = _lines(result.stdout)
    assert rows[0] == [
        "version",
        "status",
        "aliases",
        "framework",
        "run",
        "digest",
        "created",
        "by",
    ]
    assert [(r[0], r[2]) for r in rows[1:]] == [
        ("v3", "champion"),
        ("v2", "challenger"),
        ("v1", ""),
    ]
    assert rows[1][4] == versions[2].run_id and rows[1][5] == versions[2].digest  # untruncated

    result = cli("models", "show", "churn@champion")
    assert result.exit_code == 0, result.output
    fields = dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)
    assert fields["version"] == "v3" and fields["aliases"] == "champion"
    assert fields["digest"] == versions[2].digest
    assert fields["framework"].startswith("scikit-learn ")
    assert "# signature" in result.stdout
    assert "age\tInt64\tyes\t\t18\t" in result.stdout
    assert "plan\tcategory\tno\tbasic,pro,team" in result.stdout

    result = cli("models", "history", "churn")
    assert result.exit_code == 0, result.output
    rows = _lines(result.stdout)
    assert rows[0] == ["when", "alias", "from", "to", "user", "grounds", "reason"]
    assert [r[1:] for r in rows[1:]] == [
        ["challenger", "-", "v2", "tester", "", "try the new one"],
        ["champion", "-", "v3", "tester", "forced", "hotfix"],
    ]

    result = cli("models", "unalias", "churn", "challenger", "--reason", "done")
    assert result.exit_code == 0, result.output
    result = cli("models", "archive", "churn", "1")
    assert result.exit_code == 0 and result.stdout.strip() == "archived churn@v1"
    result = cli("models", "versions", "churn")
    assert _lines(result.stdout)[-1][:2] == ["v1", "archived"]


def test_bad_references_are_one_line_errors(workspace: Workspace, cli: Cli) -> None:
    log_versions("churn", 2)
    close_tracking()
    cases = [
        (["models", "show", "churn@v9"], 1, "churn@v9 does not exist; churn has v1 to v2"),
        (["models", "show", "nosuch"], 1, "no model named 'nosuch'"),
        (["models", "show", "churn@@x"], 2, "single '@'"),
        (["models", "show", "churn@v1", "2"], 2, "not both"),
        (["models", "versions", "no such"], 2, "invalid reference"),
        (["models", "alias", "churn@v1", "v2", "--reason", "x"], 2, "looks like a version"),
        (["models", "alias", "churn", "challenger"], 2, "name the version to alias"),
        (["models", "alias", "churn@v1", "challenger"], 2, "give a reason"),
        (["models", "history", "nosuch"], 1, "no model named 'nosuch'"),
    ]
    for args, code, message in cases:
        result = cli(*args)
        assert result.exit_code == code, (args, result.output)
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_gc_keeps_model_versions(workspace: Workspace, cli: Cli) -> None:
    versions = log_versions("churn", 2)
    close_tracking()
    stray = workspace.objects.add_bytes(b"nobody points at this")
    result = cli("gc", "--yes", "--grace", "0")
    assert result.exit_code == 0, result.output
    assert not workspace.objects.has(stray)
    for version in versions:
        assert workspace.objects.has(version.digest)
    frame, _ = churn_frame()
    model = load_model("churn@v2", workspace=workspace)
    assert np.asarray(model.predict(frame)).shape == (len(frame),)
    assert cli("fsck").exit_code == 0
