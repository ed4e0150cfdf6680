"""Contracts as guards: raise when a frame breaks its contract (for ``@step`` inputs/outputs).

A contract may be given as a ``Contract``, or as the path of its YAML file (read once and
kept). ``check_inputs``/``check_outputs`` apply one contract to every DataFrame argument or
output, or a mapping (parameter name or output position → contract) to the ones it names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import UserInputError
from loopml.validation.contract import Contract
from loopml.validation.errors import ContractViolationError

if TYPE_CHECKING:
    from loopml.validation.report import ValidationReport

__all__ = [
    "ContractLike",
    "as_contract",
    "check_frame",
    "check_inputs",
    "check_outputs",
    "contract_fingerprint",
]

ContractLike = Contract | str | os.PathLike[str]

_loaded: dict[tuple[str, int], Contract] = {}


def as_contract(contract: ContractLike) -> Contract:
    """A ``Contract`` as is, or the one the YAML file at that path holds (cached by mtime)."""
    if isinstance(contract, Contract):
        return contract
    if not isinstance(contract, str | os.PathLike):
        raise UserInputError(
            f"a contract is a loopml Contract or the path of its YAML file, not "
            f"{type(contract).__name__}"
        )
    from loopml.validation.api import load

    path = Path(contract).resolve()
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError:
        return load(path)  # load names the problem
    if key not in _loaded:
        _loaded[key] = load(path)
    return _loaded[key]


def check_frame(contract: ContractLike, frame: Any, where: str) -> ValidationReport:
    """Validate ``frame``; raise ``ContractViolationError`` (one line) if it breaks the contract.

    ``where`` names the frame in the message, e.g. ``"input 'df' of step 'train'"``. Returns
    the (passing) report.
    """
    import pandas as pd

    resolved = as_contract(contract)
    if not isinstance(frame, pd.DataFrame):
        raise UserInputError(
            f"{where} has a contract but is a {type(frame).__name__}, not a pandas DataFrame"
        )
    report = resolved.validate(frame)
    if not report.ok:
        raise ContractViolationError(f"{where} breaks its contract: {report.summary()}", report)
    return report


def _is_frame(value: Any) -> bool:
    module = type(value).__module__
    return module.startswith("pandas") and type(value).__name__ == "DataFrame"


def check_inputs(
    spec: ContractLike | Mapping[str, ContractLike] | None,
    arguments: Mapping[str, Any],
    step: str,
) -> None:
    """Check a step's arguments: every DataFrame argument, or those a mapping names."""
    if spec is None:
        return
    if isinstance(spec, Mapping):
        for name, contract in spec.items():
            if name not in arguments:
                raise UserInputError(
                    f"step {step!r} has an input contract for {name!r}, which is not one of its "
                    f"arguments ({', '.join(arguments) or 'none'})"
                )
            check_frame(contract, arguments[name], f"input {name!r} of step {step!r}")
        return
    frames = [name for name, value in arguments.items() if _is_frame(value)]
    if not frames:
        raise UserInputError(f"step {step!r} has an input contract but no DataFrame argument")
    for name in frames:
        check_frame(spec, arguments[name], f"input {name!r} of step {step!r}")


def check_outputs(
    spec: ContractLike | Mapping[int, ContractLike] | None,
    result: Any,
    step: str,
    *,
    outputs: int = 1,
) -> None:
    """Check a step's return value (``outputs`` > 1: a tuple; a mapping picks positions)."""
    if spec is None:
        return
    values: Sequence[Any] = [result] if outputs == 1 else list(result)
    if isinstance(spec, Mapping):
        for position, contract in spec.items():
            if not 0 <= position < len(values):
                raise UserInputError(
                    f"step {step!r} has an output contract for position {position}, but it has "
                    f"{len(values)} output(s)"
                )
            check_frame(contract, values[position], _output_label(position, outputs, step))
        return
    checked = 0
    for position, value in enumerate(values):
        if outputs == 1 or _is_frame(value):
            check_frame(spec, value, _output_label(position, outputs, step))
            checked += 1
    if not checked:
        raise UserInputError(f"step {step!r} has an output contract but returned no DataFrame")


def _output_label(position: int, outputs: int, step: str) -> str:
    return f"output of step {step!r}" if outputs == 1 else f"output {position} of step {step!r}"


def contract_fingerprint(
    spec: ContractLike | Mapping[Any, ContractLike] | None,
) -> str | None:
    """A hash of the contract(s), for a step's cache key (None when there is none)."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        parts = [f"{key}={as_contract(value).fingerprint()}" for key, value in spec.items()]
        return ";".join(sorted(parts))
    return as_contract(spec).fingerprint()
