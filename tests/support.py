"""Helpers shared by test modules (imported as ``support``; conftest files are not modules)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LOOPML_BIN", "Cli", "CliResult", "run_loopml"]

LOOPML_BIN = Path(sys.executable).with_name("loopml")


@dataclass
class CliResult:
    """What a CLI invocation printed and returned."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr


Cli = Callable[..., CliResult]


def run_loopml(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    user: int | None = None,
) -> CliResult:
    """Run the installed ``loopml`` script in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [str(LOOPML_BIN), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        user=user,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
