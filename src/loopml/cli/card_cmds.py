"""``loopml models card``: a model version's card on the terminal, or as an HTML page."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loopml.cli.output import out, print_table

if TYPE_CHECKING:
    from loopml.explain.card import ModelCard

__all__ = ["card"]


def card(
    ref: Annotated[
        str,
        typer.Argument(help="NAME@REF (churn@v3, churn@3, churn@champion, churn@latest) or NAME."),
    ],
    version: Annotated[
        str | None,
        typer.Argument(help="A version (3, v3) or alias, when NAME is given alone."),
    ] = None,
    html: Annotated[
        bool,
        typer.Option("--html", help="Write a self-contained HTML card with plots; print its path."),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where the HTML card goes (default .loopml/cards/NAME-vN.html); implies --html.",
        ),
    ] = None,
) -> None:
    """A version's card: lineage, code, params, metrics, gate results, slices, contract."""
    from loopml.explain import model_card, write_html
    from loopml.store.workspace import Workspace

    with Workspace.open() as workspace:
        found = model_card(ref, version, workspace=workspace)
    if html or output is not None:
        written = write_html(found, output)
        out.print(str(written))
        return
    _print(found)


def _print(found: ModelCard) -> None:
    """Rich tables with notes on a terminal; the plain text card when piped."""
    from loopml.explain import card_sections, render_text

    if not out.is_terminal:
        sys.stdout.write(render_text(found))
        return
    out.print(f"model card of {found.label}", style="bold")
    for section in card_sections(found, short=True):
        if section.rows:
            print_table(section.columns, section.rows, title=section.title)
        else:
            out.print(section.title, style="bold italic")
        for note in section.notes:
            out.print(f"  {note}", style="dim")
