"""Drafting a contract from a good frame: types, nulls, slack, categories, uniqueness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.errors import UserInputError
from loopml.validation import infer


def test_types_nulls_and_ranges_with_slack() -> None:
    frame = pd.DataFrame(
        {
            "age": [20, 30, 40, 50, 60, 70, 80, 90, 100, 120],
            "temp": [-5.0, 0.0, 2.5, 10.0, None, 3.0, 1.0, 2.0, 4.0, 35.0],
            "share": np.linspace(0.1, 0.9, 10),
            "when": pd.date_range("2024-01-01", periods=10, freq="D"),
            "flag": [True, False] * 5,
        }
    )
    contract = infer(frame)
    assert contract.rows.min == 9 and contract.rows.max == 11
    age = contract.column("age")
    assert (age.type, age.nullable, age.min, age.max) == ("int", False, 10, 130)
    temp = contract.column("temp")
    assert (temp.type, temp.nullable, temp.max_null_share) == ("float", True, 0.111)
    assert (temp.min, temp.max) == (-9.0, 39.0)
    share = contract.column("share")
    assert (share.min, share.max) == (0.02, 0.98)
    when = contract.column("when")
    assert (when.type, when.min, when.max) == (
        "datetime",
        "2023-12-31T02:24:00",
        "2024-01-10T21:36:00",
    )
    flag = contract.column("flag")
    assert (flag.type, flag.min, flag.allowed, flag.unique) == ("bool", None, None, False)
    assert contract.validate(frame).ok


def test_ranges_of_non_negative_columns_stay_non_negative() -> None:
    contract = infer(pd.DataFrame({"n": [0, 5, 10], "x": [0.0, 0.5, 1.0], "c": [7, 7, 7]}))
    assert (contract.column("n").min, contract.column("n").max) == (0, 11)
    assert (contract.column("x").min, contract.column("x").max) == (0.0, 1.1)
    assert (contract.column("c").min, contract.column("c").max) == (6, 8)


def test_uniqueness_only_for_fully_unique_integer_and_text_columns() -> None:
    frame = pd.DataFrame(
        {
            "id": [3, 1, 2, 4],
            "key": pd.Series(["a", "b", "c", None], dtype="str"),
            "nid": pd.array([1, None, 2, 3], dtype="Int64"),
            "x": [0.1, 0.2, 0.3, 0.4],  # floats: never inferred unique
            "dup": [1, 1, 2, 3],
            "when": pd.date_range("2024-01-01", periods=4),
        }
    )
    contract = infer(frame)
    assert [spec.name for spec in contract.columns if spec.unique] == ["id", "key", "nid"]


def test_allowed_values_for_categoricals_and_repetitive_text() -> None:
    frame = pd.DataFrame(
        {
            "cat": pd.Categorical(["b", "a", "b", "a"], categories=["a", "b", "never"]),
            "plan": pd.Series(["pro", "basic", "pro", "pro"], dtype="str"),
            "names": pd.Series(["ann", "bob", "cy", "dee"], dtype=object),
            "many": pd.Series([f"v{i % 30}" for i in range(60)][:4], dtype="str"),
        }
    )
    contract = infer(frame)
    assert contract.column("cat").type == "category"
    assert contract.column("cat").allowed == ["a", "b", "never"]
    assert contract.column("plan").allowed == ["basic", "pro"]
    assert contract.column("names").allowed is None  # every value distinct: not a category
    assert contract.column("names").unique is True
    few = infer(frame, max_categories=1)
    assert few.column("plan").allowed is None and few.column("cat").allowed is None


def test_object_columns_and_unsupported_dtypes() -> None:
    frame = pd.DataFrame(
        {
            "ints": pd.Series([1, 2, None], dtype=object),
            "words": pd.Series(["a", None, "b"], dtype=object),
        }
    )
    contract = infer(frame)
    assert contract.column("ints").type == "int"
    assert (contract.column("ints").min, contract.column("ints").max) == (0, 3)
    assert contract.column("words").type == "string"
    assert contract.validate(frame).ok
    with pytest.raises(UserInputError, match="column 'mixed' holds mixed"):
        infer(pd.DataFrame({"mixed": pd.Series([1, "a"], dtype=object)}))
    with pytest.raises(UserInputError, match="dtype timedelta64"):
        infer(pd.DataFrame({"gap": pd.to_timedelta([1, 2], unit="s")}))


def test_an_inferred_contract_passes_its_own_frame_and_catches_drift() -> None:
    rng = np.random.default_rng(11)
    rows = 5000
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "amount": rng.lognormal(3, 1, rows),
            "segment": pd.Series(rng.choice(["a", "b", "c"], rows), dtype="str"),
            "score": pd.array(np.where(rng.random(rows) < 0.1, None, rng.integers(0, 100, rows))),
        }
    )
    contract = infer(frame)
    assert contract.validate(frame).ok
    drifted = frame.copy()
    drifted.loc[:99, "segment"] = "d"
    drifted.loc[:1999, "score"] = None
    found = {(v.check, v.column) for v in contract.validate(drifted).violations}
    assert found == {("allowed", "segment"), ("null_share", "score")}
