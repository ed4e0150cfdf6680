"""Contracts as data: building, YAML round trips, and refusing malformed contracts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from loopml.errors import UserInputError
from loopml.validation import (
    ColumnSpec,
    Contract,
    ContractFormatError,
    ExpressionCheck,
    RowBounds,
    UnsafeExpressionError,
    infer,
    load,
)
from loopml.validation.yamlfile import HEADER


def sample_frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": rng.integers(18, 90, rows),
            "score": rng.normal(0.5, 0.1, rows),
            "city": pd.Categorical(rng.choice(["north", "south", "no"], rows)),
            "plan": pd.Series(rng.choice(["basic", "pro"], rows), dtype="str"),
            "email": pd.Series([f"u{i}@example.com" for i in range(rows)], dtype="str"),
            "active": rng.random(rows) > 0.5,
            "joined": pd.date_range("2024-01-01", periods=rows, freq="h"),
            "visits": pd.array([1, None] * (rows // 2), dtype="Int64"),
        }
    )


def test_infer_save_load_round_trip(tmp_path: Path) -> None:
    contract = infer(sample_frame())
    contract.add_check("score_below_one", "score < 1")
    path = contract.save(tmp_path / "contract.yaml")
    again = load(path)
    assert again == contract
    assert again.to_yaml() == path.read_text(
        encoding="utf-8"
    )  # stable: saving again changes nothing
    assert again.validate(sample_frame()).ok


def test_yaml_is_readable_with_a_stable_key_order(tmp_path: Path) -> None:
    text = infer(sample_frame()).save(tmp_path / "c.yaml").read_text(encoding="utf-8")
    assert text.startswith(HEADER)
    data = yaml.safe_load(text)
    assert list(data) == ["version", "rows", "columns", "checks"]
    assert list(data["columns"]) == list(sample_frame().columns)
    assert list(data["columns"]["id"]) == ["type", "nullable", "min", "max", "unique"]
    assert list(data["columns"]["visits"]) == ["type", "nullable", "max_null_share", "min", "max"]
    # value lists stay on one line, and a category called "no" stays text for any YAML reader
    assert "allowed: ['no', north, south]" in text
    assert data["columns"]["city"]["allowed"] == ["no", "north", "south"]


def test_hand_written_yaml_reads_yes_and_no_as_text(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "columns:\n"
        "  answer: {type: string, allowed: [yes, no, maybe]}\n"
        "  flag: {type: bool, nullable: false}\n"
        "  born: {type: datetime, min: 2020-01-01, max: 2024-12-31 23:00:00}\n"
        "  age: int\n",
        encoding="utf-8",
    )
    contract = load(path)
    assert contract.column("answer").allowed == ["yes", "no", "maybe"]
    assert contract.column("flag").nullable is False
    assert contract.column("born").min == "2020-01-01"
    assert contract.column("born").max == "2024-12-31T23:00:00"
    assert contract.column("age") == ColumnSpec("age", "int")
    assert contract.rows == RowBounds()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("columns:\n  a: {type: int\n  b: [", "c.yaml:3: not valid YAML"),
        ("- just a list", "a contract is a mapping"),
        ("colums: {}", "unknown key 'colums'"),
        ("version: 2", "format version 2 is not supported"),
        ("columns: {a: {type: integer}}", "column 'a': unknown type 'integer'"),
        ("columns: {a: {type: int, maxx: 3}}", "column 'a': unknown key 'maxx'"),
        ("columns: {a: {nullable: true}}", "column 'a': needs a type"),
        ("columns: {a: {type: int, min: five}}", "column 'a': min must be a number"),
        ("columns: {a: {type: int, min: 5, max: 1}}", "column 'a': min 5 is above max 1"),
        ("columns: {a: {type: string, min: 1}}", "min applies to int, float and datetime"),
        ("columns: {a: {type: datetime, min: soon}}", "not an ISO 8601 date"),
        ("columns: {a: {type: int, max_null_share: 2}}", "max_null_share must be a number"),
        ("columns: {a: {type: int, nullable: false, max_null_share: 0.1}}", "needs nullable"),
        ("columns: {a: {type: int, allowed: 3}}", "allowed must be a list"),
        ("rows: {min: 10, max: 5}", "rows: min 10 is above max 5"),
        ("rows: {min: -1}", "rows: min must be 0 or more"),
        ("checks: [{name: x}]", "checks[0]: expected exactly the keys name and expression"),
        ("checks: [{name: x, expression: 'a.b > 1'}]", "uses attribute access"),
    ],
)
def test_malformed_contracts_are_refused_in_one_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ContractFormatError) as caught:
        load(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_missing_contract_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no contract file"):
        load(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "price.__class__",
        "price[0] > 1",
        "(lambda: 1)() > 0",
        "price if cost else 1",
        "@limit > price",
        "price > 1; cost < 2",
        "[c for c in price] == 1",
    ],
)
def test_unsafe_expressions_are_refused(expression: str) -> None:
    with pytest.raises(UnsafeExpressionError):
        ExpressionCheck("bad", expression)
    with pytest.raises(UnsafeExpressionError):
        Contract.from_yaml(f"checks: [{{name: bad, expression: {expression!r}}}]")


def test_callables_stay_in_code_and_names_must_differ() -> None:
    contract = Contract([ColumnSpec("a", "int")])
    contract.add_check("positive", lambda frame: frame["a"] > 0).add_check("small", "a < 10")
    assert "positive" not in contract.to_yaml()
    assert "small" in contract.to_yaml()
    assert contract.check_count == 1 + 2
    with pytest.raises(ContractFormatError, match="already has a check named 'small'"):
        contract.add_check("small", "a < 5")
    with pytest.raises(ContractFormatError, match="appears twice"):
        Contract([ColumnSpec("a", "int"), ColumnSpec("a", "float")])


def test_fingerprint_follows_the_content() -> None:
    one = Contract([ColumnSpec("a", "int", min=0)])
    two = Contract([ColumnSpec("a", "int", min=0)])
    assert one.fingerprint() == two.fingerprint()
    two.column("a").max = 5
    assert one.fingerprint() != two.fingerprint()
