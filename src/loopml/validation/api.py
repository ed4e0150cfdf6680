"""The user-facing contract API, meant to be reachable as ``loopml.contract``.

``infer(frame)`` drafts a contract, ``contract.save(path)`` writes it as YAML, ``load(path)``
reads it back, and ``contract.validate(frame)`` checks a frame and reports every violation.
"""

from __future__ import annotations

import os

from loopml.validation.contract import ColumnSpec, Contract, ExpressionCheck, RowBounds
from loopml.validation.guard import check_frame
from loopml.validation.infer import infer
from loopml.validation.report import ValidationReport, Violation

__all__ = [
    "ColumnSpec",
    "Contract",
    "ExpressionCheck",
    "RowBounds",
    "ValidationReport",
    "Violation",
    "check_frame",
    "infer",
    "load",
]


def load(path: str | os.PathLike[str]) -> Contract:
    """Read a contract from its YAML file; a missing or malformed file raises a one-line error."""
    from loopml.validation.yamlfile import read_text

    return Contract.from_yaml(read_text(path), source=os.fspath(path))
