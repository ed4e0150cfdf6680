"""Data contracts: column types, nulls, ranges, categories, uniqueness, rows, custom checks."""

from loopml.validation.api import infer, load
from loopml.validation.contract import ColumnSpec, Contract, ExpressionCheck, RowBounds
from loopml.validation.errors import (
    CheckError,
    ContractError,
    ContractFormatError,
    ContractViolationError,
    DataFileError,
    MissingColumnError,
    UnsafeExpressionError,
)
from loopml.validation.guard import (
    as_contract,
    check_frame,
    check_inputs,
    check_outputs,
    contract_fingerprint,
)
from loopml.validation.report import Example, ValidationReport, Violation

__all__ = [
    "CheckError",
    "ColumnSpec",
    "Contract",
    "ContractError",
    "ContractFormatError",
    "ContractViolationError",
    "DataFileError",
    "Example",
    "ExpressionCheck",
    "MissingColumnError",
    "RowBounds",
    "UnsafeExpressionError",
    "ValidationReport",
    "Violation",
    "as_contract",
    "check_frame",
    "check_inputs",
    "check_outputs",
    "contract_fingerprint",
    "infer",
    "load",
]
