"""The ``loopml`` command tree: help names every group, and a group alone still works."""

from __future__ import annotations

from support import Cli

GROUPS = ("data", "remote", "runs", "import", "models", "gate", "contract")
TOP = ("init", "push", "pull", "fsck", "gc", "run", "resume", "reproduce", "lineage", "validate")


def test_help_lists_every_group_and_command(cli: Cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for name in GROUPS + TOP:
        assert f" {name} " in result.stdout, name


def test_a_group_named_after_options_gets_its_commands(cli: Cli) -> None:
    result = cli("--debug", "runs", "--help")
    assert result.exit_code == 0
    assert " dag " in result.stdout and " ls " in result.stdout
    # Asking for a group leaves the others out, but a typo still gets the usual answer.
    assert cli("runs", "nope").exit_code == 2
    unknown = cli("dat", "status")
    assert unknown.exit_code == 2 and "No such command 'dat'" in unknown.output
