"""``loopml contract infer`` and ``loopml validate``: data contracts from the command line.

``validate`` exits 0 when the data satisfies the contract, 1 when it breaks it (the table of
violations on stdout, a summary line on stderr), and 2 on bad input (a missing or unreadable
file, malformed YAML, a column the contract needs and the data lacks).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.output import err, out, print_table

__all__ = ["app", "validate"]

app = typer.Typer(
    help="Data contracts: draft one from data (infer); check data with `loopml validate`.",
    no_args_is_help=True,
)


@app.command("infer")
def infer(
    data: Annotated[
        str,
        typer.Argument(
            help="A Parquet (.parquet, .pq) or CSV (.csv, .tsv) file, or a dataset version."
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the contract here (default: print it)."),
    ] = None,
    slack: Annotated[
        float, typer.Option("--slack", help="Widen ranges and row bounds by this share.")
    ] = 0.1,
    max_categories: Annotated[
        int,
        typer.Option("--max-categories", help="List allowed values up to this many distinct."),
    ] = 50,
) -> None:
    """Draft a contract from DATA: types, nulls, ranges, categories, uniqueness, row count."""
    from loopml.validation.datafile import read_source
    from loopml.validation.infer import infer as infer_contract

    _, frame = read_source(data)
    contract = infer_contract(frame, slack=slack, max_categories=max_categories)
    if output is None:
        sys.stdout.write(contract.to_yaml())
        return
    contract.save(output)
    out.print(
        f"wrote {output}: {len(contract.columns)} columns, {contract.check_count} checks, "
        f"drafted from {len(frame)} rows; edit it to taste"
    )


def validate(
    data: Annotated[
        str,
        typer.Argument(
            help="A Parquet (.parquet, .pq) or CSV (.csv, .tsv) file, or a dataset version."
        ),
    ],
    contract: Annotated[Path, typer.Option("--contract", "-c", help="The contract's YAML file.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of a table.")
    ] = False,
) -> None:
    """Check DATA against a contract; list every violation and exit 1 if there is any."""
    from loopml.validation.api import load
    from loopml.validation.datafile import read_source
    from loopml.validation.report import TABLE_COLUMNS

    loaded = load(contract)
    _, frame = read_source(data, loaded)
    report = loaded.validate(frame)
    if as_json:
        import json

        sys.stdout.write(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    elif report.ok:
        out.print(f"ok: {data} satisfies {contract} ({report.rows} rows, {report.checks} checks)")
    else:
        print_table(
            TABLE_COLUMNS,
            report.table_rows(),
            title=f"{data} against {contract}: {len(report.violations)} violations",
        )
    if not report.ok:
        err.print(f"{data} breaks {contract}: {report.summary()}")
        raise typer.Exit(1)
