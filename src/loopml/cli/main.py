"""The ``loopml`` command: wiring of sub-commands and error reporting.

Expected failures (``LoopMLError``) print one line and exit non-zero; ``--debug`` adds the
traceback. Command modules import heavy libraries inside their functions, so ``loopml
--version`` and ``--help`` stay fast.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from loopml._version import __version__
from loopml.cli import (
    contract_cmds,
    data_cmds,
    gate_cmds,
    import_cmds,
    models_cmds,
    pipeline_cmds,
    runs_cmds,
    store_cmds,
)
from loopml.cli.output import err, out
from loopml.errors import LoopMLError

__all__ = ["app", "run"]


def _version(value: bool) -> None:
    if value:
        out.print(f"loopml {__version__}")
        raise typer.Exit()


def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """loopml: local-first, closed-loop MLOps."""


def init(
    path: Annotated[
        Path, typer.Argument(help="Folder to make a workspace (default: here).")
    ] = Path(),
) -> None:
    """Create a workspace: .loopml/ (database, objects) and a commented loopml.toml."""
    from loopml.store.workspace import init_workspace

    workspace, created = init_workspace(path)
    with workspace:
        verb = "Initialised" if created else "Reinitialised existing"
        out.print(f"{verb} loopml workspace in {workspace.dir}")


# The command groups, by name. Typer turns every command's signature into click parameters
# each time the program starts; building only the group a command line names saves most of it.
_GROUPS: dict[str, typer.Typer] = {
    "data": data_cmds.app,
    "remote": store_cmds.remote_app,
    "runs": runs_cmds.app,
    "import": import_cmds.app,
    "models": models_cmds.app,
    "gate": gate_cmds.app,
    "contract": contract_cmds.app,
}
runs_cmds.app.command("dag")(pipeline_cmds.dag)


def _root(groups: Iterable[str]) -> typer.Typer:
    """The ``loopml`` command with its top-level commands and the named groups."""
    root = typer.Typer(
        name="loopml",
        help="Local-first, closed-loop MLOps: version data, track runs, ship and watch models.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    root.callback()(main)
    root.command()(init)
    for name in groups:
        root.add_typer(_GROUPS[name], name=name)
    store_cmds.register(root)
    pipeline_cmds.register(root)
    root.command("validate")(contract_cmds.validate)
    return root


app = _root(_GROUPS)


def _app_for(args: list[str]) -> typer.Typer:
    """The whole command for help and unknown words; only the named group otherwise."""
    for arg in args:
        if arg.startswith("-"):
            continue
        return _root([arg]) if arg in _GROUPS else app
    return app


def run(argv: list[str] | None = None) -> None:
    """Entry point of the ``loopml`` script."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        # Standalone mode: usage errors print the usage line and exit 2, as every CLI does.
        _app_for(args)(args=args, prog_name="loopml")
    except LoopMLError as exc:
        if debug:
            err.print_exception()
        from rich.text import Text

        err.print(Text.assemble(("error: ", "bold red"), str(exc)))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; nothing half-written was kept")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
