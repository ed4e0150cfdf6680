"""The ``loopml`` command: wiring of sub-commands and error reporting.

Expected failures (``LoopMLError``) print one line and exit non-zero; ``--debug`` adds the
traceback. Command modules import heavy libraries inside their functions, so ``loopml
--version`` and ``--help`` stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from loopml._version import __version__
from loopml.cli import (
    data_cmds,
    gate_cmds,
    import_cmds,
    models_cmds,
    pipeline_cmds,
    runs_cmds,
    store_cmds,
)
from loopml.cli.contract_cmds import register as register_contract_commands
from loopml.cli.output import err, out
from loopml.errors import LoopMLError

__all__ = ["app", "run"]

app = typer.Typer(
    name="loopml",
    help="Local-first, closed-loop MLOps: version data, track runs, ship and watch models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cmds.app, name="data")
app.add_typer(store_cmds.remote_app, name="remote")
app.add_typer(runs_cmds.app, name="runs")
app.add_typer(import_cmds.app, name="import")
app.add_typer(models_cmds.app, name="models")
app.add_typer(gate_cmds.app, name="gate")
store_cmds.register(app)
pipeline_cmds.register(app, runs_cmds.app)
register_contract_commands(app)


def _version(value: bool) -> None:
    if value:
        out.print(f"loopml {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """loopml: local-first, closed-loop MLOps."""


@app.command()
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


def run(argv: list[str] | None = None) -> None:
    """Entry point of the ``loopml`` script."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        # Standalone mode: usage errors print the usage line and exit 2, as every CLI does.
        app(args=args, prog_name="loopml")
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
