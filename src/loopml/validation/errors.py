"""Errors of data contracts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml.errors import LoopMLError, UserInputError

if TYPE_CHECKING:
    from loopml.validation.report import ValidationReport

__all__ = [
    "CheckError",
    "ContractError",
    "ContractFormatError",
    "ContractViolationError",
    "DataFileError",
    "MissingColumnError",
    "UnsafeExpressionError",
]


class ContractError(LoopMLError):
    """A data contract cannot be built, read or checked."""


class ContractFormatError(ContractError, UserInputError):
    """A contract (a YAML file or arguments given in code) is malformed."""


class UnsafeExpressionError(ContractFormatError):
    """A custom check's expression uses more than column names, constants and operators."""


class MissingColumnError(ContractError, UserInputError):
    """The data lacks a column the contract (or one of its expressions) names."""


class DataFileError(ContractError, UserInputError):
    """A data file is missing, of an unknown kind, or cannot be read."""


class CheckError(ContractError):
    """A custom Python check raised, or returned something other than true/false values."""


class ContractViolationError(ContractError):
    """Data broke its contract; ``report`` holds every violation."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message)
        self.report = report
