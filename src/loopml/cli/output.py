"""Terminal output: rich tables and progress bars on a terminal, plain lines when piped."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console

__all__ = ["RichProgress", "err", "human_bytes", "out", "print_table"]

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def human_bytes(count: float) -> str:
    """``1.5 MiB`` style sizes."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None
) -> None:
    """A rich table on a terminal; tab-separated lines with a header when piped."""
    if out.is_terminal:
        from rich.table import Table

        table = Table(title=title, title_justify="left", header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        out.print(table)
        return
    sys.stdout.write("\t".join(columns) + "\n")
    for row in rows:
        sys.stdout.write("\t".join(str(cell) for cell in row) + "\n")


class RichProgress:
    """A ``Progress`` sink drawing a bar with files and bytes per second on a terminal."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._files = 0
        self._total_files = 0

    def start(self, description: str, total_files: int, total_bytes: int) -> None:
        """Begin a bar (only on a terminal, and only when there is work)."""
        self.finish()
        if not err.is_terminal or total_files == 0:
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._files, self._total_files = 0, total_files
        columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
        if total_bytes:
            columns += [DownloadColumn(binary_units=True), TransferSpeedColumn()]
        columns += [TextColumn("{task.fields[files]}"), TimeRemainingColumn()]
        self._progress = Progress(*columns, console=err, transient=True)
        self._progress.start()
        self._task = self._progress.add_task(
            description, total=total_bytes or total_files, files=f"0/{total_files} files"
        )
        self._by_bytes = bool(total_bytes)

    def advance(self, files: int, nbytes: int) -> None:
        """Move the bar."""
        if self._progress is None:
            return
        self._files += files
        self._progress.update(
            self._task,
            advance=nbytes if self._by_bytes else files,
            files=f"{self._files}/{self._total_files} files",
        )

    def finish(self) -> None:
        """Remove the bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
