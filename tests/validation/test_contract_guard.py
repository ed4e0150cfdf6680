"""Contracts as guards for step inputs and outputs, and the exactness of the fast repeat test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.errors import LoopMLError, UserInputError
from loopml.validation import (
    ColumnSpec,
    Contract,
    ContractViolationError,
    RowBounds,
    check_frame,
    check_inputs,
    check_outputs,
    contract_fingerprint,
    infer,
)
from loopml.validation.hashing import int_hashes, repeated_hashes

CONTRACT = Contract([ColumnSpec("x", "int", min=0, max=10)], rows=RowBounds(min=1))


def test_check_frame_passes_quietly_and_fails_in_one_line() -> None:
    report = check_frame(CONTRACT, pd.DataFrame({"x": [1, 2]}), "input 'df' of step 'train'")
    assert report.ok
    frame = pd.DataFrame({"x": [1, 20, -3, 11, *range(10)]})
    with pytest.raises(ContractViolationError) as caught:
        check_frame(CONTRACT, frame, "input 'df' of step 'train'")
    error = caught.value
    assert isinstance(error, LoopMLError) and error.exit_code == 1
    message = str(error)
    assert "\n" not in message
    assert message == (
        "input 'df' of step 'train' breaks its contract: 2 violations of 4 checks on 14 rows: "
        "min on x: 1 row (7.1%); max on x: 2 rows (14.3%)"
    )
    assert [v.count for v in error.report.violations] == [1, 2]


def test_contracts_from_yaml_paths(tmp_path: Path) -> None:
    path = CONTRACT.save(tmp_path / "c.yaml")
    assert check_frame(path, pd.DataFrame({"x": [3]}), "output").ok
    assert check_frame(str(path), pd.DataFrame({"x": [3]}), "output").ok
    with pytest.raises(UserInputError, match="no contract file"):
        check_frame(tmp_path / "absent.yaml", pd.DataFrame({"x": [3]}), "output")
    with pytest.raises(UserInputError, match="is a list, not a pandas DataFrame"):
        check_frame(CONTRACT, [1, 2], "output of step 'load'")


def test_inputs_and_outputs_of_a_step() -> None:
    good, bad = pd.DataFrame({"x": [1]}), pd.DataFrame({"x": [99]})
    check_inputs(CONTRACT, {"df": good, "alpha": 0.5}, "train")
    with pytest.raises(ContractViolationError, match="input 'df' of step 'train' breaks"):
        check_inputs(CONTRACT, {"df": bad, "alpha": 0.5}, "train")
    check_inputs({"df": CONTRACT}, {"df": good, "other": bad}, "train")  # only the one named
    with pytest.raises(UserInputError, match="no DataFrame argument"):
        check_inputs(CONTRACT, {"alpha": 0.5}, "train")
    with pytest.raises(UserInputError, match="not one of its arguments"):
        check_inputs({"data": CONTRACT}, {"df": good}, "train")
    check_outputs(CONTRACT, good, "prepare")
    with pytest.raises(ContractViolationError, match="output of step 'prepare' breaks"):
        check_outputs(CONTRACT, bad, "prepare")
    with pytest.raises(ContractViolationError, match="output 1 of step 'split' breaks"):
        check_outputs(CONTRACT, (good, bad), "split", outputs=2)
    check_outputs({0: CONTRACT}, (good, bad), "split", outputs=2)
    check_inputs(None, {"df": bad}, "train")
    check_outputs(None, bad, "prepare")
    assert contract_fingerprint(None) is None
    assert contract_fingerprint(CONTRACT) == CONTRACT.fingerprint()


def test_empty_frames() -> None:
    empty = pd.DataFrame({"x": pd.Series([], dtype="int64"), "s": pd.Series([], dtype="str")})
    contract = infer(empty)
    assert contract.rows == RowBounds(0, 0)
    assert contract.validate(empty).ok
    assert [v.check for v in CONTRACT.validate(empty).violations] == ["rows"]


def test_a_hash_collision_never_hides_or_invents_a_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forcing every hash equal sends everything down the exact path: same answers."""
    rows = 100_000
    frame = pd.DataFrame(
        {
            "num": np.random.default_rng(2).permutation(rows) * 1_000_003,  # sparse: hashed
            "text": pd.Series([f"k{i}" for i in range(rows)], dtype="str"),
        }
    )
    contract = Contract(
        [ColumnSpec("num", "int", unique=True), ColumnSpec("text", "string", unique=True)]
    )
    assert contract.validate(frame).ok
    monkeypatch.setattr(
        "loopml.validation.checks.text_hashes",
        lambda chunks: np.zeros(sum(len(c) for c in chunks), dtype=np.uint64),
    )
    monkeypatch.setattr(
        "loopml.validation.checks.int_hashes", lambda values: np.zeros(len(values), np.uint64)
    )
    assert contract.validate(frame).ok
    frame.loc[rows - 1, ["num", "text"]] = [frame.loc[0, "num"], "k0"]
    assert [(v.column, v.count) for v in contract.validate(frame).violations] == [
        ("num", 1),
        ("text", 1),
    ]


def test_repeated_hashes_finds_exactly_the_repeats() -> None:
    rng = np.random.default_rng(4)
    values = rng.integers(0, 2**63, 300_000, dtype=np.int64)
    values[[10, 200_000, 299_999]] = values[5]
    hashes = int_hashes(values)
    assert sorted(repeated_hashes(hashes)) == [5, 10, 200_000, 299_999]
    assert len(repeated_hashes(int_hashes(np.arange(10)))) == 0
