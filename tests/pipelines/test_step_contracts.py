"""Steps that validate their inputs and outputs against data contracts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pytest

from loopml.pipelines import StepFailedError
from loopml.validation import Contract, ContractViolationError

if TYPE_CHECKING:
    from conftest import Project

FLOW = """
    from pathlib import Path
    import pandas as pd
    from loopml import pipeline, step
    from loopml.validation import load as load_contract

    HERE = Path(__file__).parent
    RUNS = HERE / "runs.txt"

    @step(output_contract=str(HERE / "out.yaml"), retries=2, retry_delay=0.01)
    def make(n: int) -> pd.DataFrame:
        with RUNS.open("a") as handle:
            handle.write("x")
        return pd.DataFrame({"value": list(range(n))})

    @pipeline
    def pipe(n: int = 5):
        return make(n)
"""


def _contract(maximum: int) -> str:
    from loopml.validation import ColumnSpec

    contract = Contract(columns=[ColumnSpec("value", "int", nullable=False, min=0, max=maximum)])
    return contract.to_yaml()


def test_output_contract_fails_the_step_once_and_reruns_when_the_contract_changes(
    project: Project,
) -> None:
    (project.folder / "out.yaml").write_text(_contract(4))
    project.write("flow", FLOW)
    flow = project.load()

    assert flow.pipe().step("make").status == "ran"  # values 0..4 fit the contract
    with pytest.raises(StepFailedError) as failure:
        flow.pipe(n=50)
    message = str(failure.value)
    assert "make" in message and "breaks its contract" in message
    # 1 run for n=5, then exactly 1 attempt for n=50: a violation is not retried.
    assert (project.folder / "runs.txt").read_text() == "xx"

    # A looser contract is part of the step's cache key: the step runs again and passes.
    (project.folder / "out.yaml").write_text(_contract(100))
    assert flow.pipe(n=50).step("make").status == "ran"


def test_a_plain_call_checks_inputs() -> None:
    from loopml.pipelines import step

    contract = Contract.from_yaml(_contract(3))

    @step(input_contract=contract)
    def total(frame: pd.DataFrame) -> int:
        return int(frame["value"].sum())

    assert total(pd.DataFrame({"value": [1, 2, 3]})) == 6
    with pytest.raises(ContractViolationError, match="total"):
        total(pd.DataFrame({"value": [1, 2, 99]}))
