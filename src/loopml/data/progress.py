"""A progress sink the CLI implements with rich; the Python API passes none."""

from __future__ import annotations

from typing import Protocol

__all__ = ["NullProgress", "Progress"]


class Progress(Protocol):
    """Receives counts of files and bytes as work proceeds."""

    def start(self, description: str, total_files: int, total_bytes: int) -> None:
        """A phase begins with known totals."""
        ...

    def advance(self, files: int, nbytes: int) -> None:
        """Some files and bytes are done."""
        ...

    def finish(self) -> None:
        """The phase is over."""
        ...


class NullProgress:
    """Reports nothing."""

    def start(self, description: str, total_files: int, total_bytes: int) -> None:
        """Ignore."""

    def advance(self, files: int, nbytes: int) -> None:
        """Ignore."""

    def finish(self) -> None:
        """Ignore."""
