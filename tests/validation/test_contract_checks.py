"""Every check catches its violation, with the right count, share and example rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.errors import UserInputError
from loopml.validation import (
    CheckError,
    ColumnSpec,
    Contract,
    MissingColumnError,
    RowBounds,
    ValidationReport,
    Violation,
)


def only(report: ValidationReport) -> Violation:
    assert len(report.violations) == 1, report
    return report.violations[0]


def rows_of(violation: Violation) -> list[object]:
    return [example.row for example in violation.examples]


def values_of(violation: Violation) -> list[object]:
    return [example.value for example in violation.examples]


def test_a_clean_frame_passes_every_check() -> None:
    frame = pd.DataFrame(
        {
            "id": np.arange(10),
            "price": np.linspace(1, 10, 10),
            "cost": np.linspace(0, 9, 10),
            "plan": pd.Series(["a", "b"] * 5, dtype="str"),
            "tier": pd.Categorical(["x", "y"] * 5),
            "paid": [True, False] * 5,
            "at": pd.date_range("2024-01-01", periods=10, freq="D"),
        }
    )
    contract = Contract(
        [
            ColumnSpec("id", "int", nullable=False, min=0, max=9, unique=True),
            ColumnSpec("price", "float", min=1, max=10),
            ColumnSpec("cost", "float", min=0),
            ColumnSpec("plan", "string", allowed=["a", "b"]),
            ColumnSpec("tier", "category", allowed=["x", "y"]),
            ColumnSpec("paid", "bool", nullable=False),
            ColumnSpec("at", "datetime", min="2024-01-01", max="2024-01-10"),
        ],
        rows=RowBounds(10, 10),
    ).add_check("margin", "price > cost")
    report = contract.validate(frame)
    assert report.ok and bool(report)
    assert report.violations == ()
    assert report.checks == contract.check_count == 22
    assert report.summary() == f"ok: 10 rows passed {report.checks} checks"


def test_range_reports_count_share_and_the_first_five_rows() -> None:
    values = np.arange(100)
    frame = pd.DataFrame({"age": values}, index=[f"r{i}" for i in range(100)])
    report = Contract([ColumnSpec("age", "int", min=3, max=90)]).validate(frame)
    low, high = report.violations
    assert (low.check, low.column, low.count, low.share) == ("min", "age", 3, 0.03)
    assert rows_of(low) == ["r0", "r1", "r2"] and values_of(low) == [0, 1, 2]
    assert low.expected == ">= 3"
    assert (high.check, high.count, high.share) == ("max", 9, 0.09)
    assert rows_of(high) == ["r91", "r92", "r93", "r94", "r95"]  # at most five examples
    assert values_of(high) == [91, 92, 93, 94, 95]


def test_nulls_not_null_and_max_null_share() -> None:
    frame = pd.DataFrame({"a": [1.0, None, 3.0, None], "b": [1.0, None, 3.0, 4.0]})
    contract = Contract(
        [ColumnSpec("a", "float", max_null_share=0.25), ColumnSpec("b", "float", nullable=False)]
    )
    share, not_null = contract.validate(frame).violations
    assert (share.check, share.column, share.count, share.share) == ("null_share", "a", 2, 0.5)
    assert share.expected == "null share <= 0.25"
    assert rows_of(share) == [1, 3] and values_of(share) == [None, None]
    assert (not_null.check, not_null.column, not_null.count) == ("not_null", "b", 1)
    assert contract.validate(frame.fillna({"b": 2.0}).iloc[:3]).violations[
        0
    ].share == pytest.approx(1 / 3)


def test_allowed_values_on_text_object_and_numbers() -> None:
    frame = pd.DataFrame(
        {
            "arrow": pd.Series(["a", "b", "zz", None, "a"], dtype="str"),
            "objects": pd.Series(["a", "q", "b", "a", None], dtype=object),
            "level": [1, 2, 3, 7, 1],
        }
    )
    contract = Contract(
        [
            ColumnSpec("arrow", "string", allowed=["a", "b"]),
            ColumnSpec("objects", "string", allowed=["a", "b"]),
            ColumnSpec("level", "int", allowed=[1, 2, 3]),
        ]
    )
    arrow, objects, level = contract.validate(frame).violations
    assert (arrow.check, arrow.count, rows_of(arrow), values_of(arrow)) == (
        "allowed",
        1,
        [2],
        ["zz"],
    )
    assert (objects.count, rows_of(objects), values_of(objects)) == (1, [1], ["q"])
    assert (level.count, rows_of(level), values_of(level)) == (1, [3], [7])
    assert level.expected == "one of 1, 2, 3"


@pytest.mark.parametrize("dtype", ["int64", "Int64", "str", "object", "float64"])
def test_unique_counts_every_repeat_after_the_first(dtype: str) -> None:
    values = [5, 1, 5, 2, 5, 1, 9]
    series = (
        pd.Series(values).astype(dtype)
        if dtype != "str"
        else pd.Series([str(v) for v in values], dtype="str")
    )
    violation = only(
        Contract([ColumnSpec("k", "category", unique=True)]).validate(pd.DataFrame({"k": series}))
    )
    assert (violation.check, violation.count) == ("unique", 3)
    assert violation.share == pytest.approx(3 / 7)
    assert rows_of(violation) == [2, 4, 5]


def test_unique_ignores_nulls_and_proves_big_columns_distinct() -> None:
    nullable = pd.DataFrame({"k": pd.array([1, None, 2, None], dtype="Int64")})
    assert Contract([ColumnSpec("k", "int", unique=True)]).validate(nullable).ok
    rows = 200_000  # past the hashing path's small-input cut-off
    rng = np.random.default_rng(1)
    ids = rng.permutation(rows)
    frame = pd.DataFrame(
        {
            "num": ids,
            "text": pd.Series([f"id-{i}" for i in ids], dtype="str"),
            "fixed": pd.Series([f"{i:08d}" for i in ids], dtype="str"),
        }
    )
    contract = Contract([ColumnSpec(c, "category", unique=True) for c in frame.columns])
    assert contract.validate(frame).ok
    frame.loc[150_000, ["num", "text", "fixed"]] = [ids[7], f"id-{ids[7]}", f"{ids[7]:08d}"]
    report = contract.validate(frame)
    assert [(v.check, v.column, v.count, rows_of(v)) for v in report.violations] == [
        ("unique", column, 1, [150_000]) for column in ("num", "text", "fixed")
    ]


def test_categoricals_are_checked_through_their_codes() -> None:
    frame = pd.DataFrame(
        {
            "color": pd.Categorical(
                ["red", "blue", "green", None, "red", "pink"],
                categories=["red", "blue", "green", "pink", "unused"],
            ),
            "size": pd.Categorical([1, 5, 3, 3, 12, 1]),
        }
    )
    contract = Contract(
        [
            ColumnSpec("color", "category", nullable=False, allowed=["red", "blue", "green"]),
            ColumnSpec("size", "int", min=1, max=10, unique=True),
        ]
    )
    not_null, allowed, high, unique = contract.validate(frame).violations
    assert (not_null.check, not_null.count, rows_of(not_null)) == ("not_null", 1, [3])
    assert (allowed.check, allowed.count, rows_of(allowed), values_of(allowed)) == (
        "allowed",
        1,
        [5],
        ["pink"],
    )
    assert (high.check, high.count, values_of(high)) == ("max", 1, [12])
    assert (unique.check, unique.count, rows_of(unique)) == ("unique", 2, [3, 5])


def test_nullable_integer_and_boolean_columns() -> None:
    frame = pd.DataFrame(
        {
            "n": pd.array([1, None, -4, 7, None], dtype="Int64"),
            "flag": pd.array([True, None, False, True, None], dtype="boolean"),
        }
    )
    contract = Contract(
        [
            ColumnSpec("n", "int", min=0, max_null_share=0.5),
            ColumnSpec("flag", "bool", nullable=False),
        ]
    )
    low, nulls = contract.validate(frame).violations
    assert (low.check, low.count, rows_of(low), values_of(low)) == ("min", 1, [2], [-4])
    assert (nulls.check, nulls.column, nulls.count, rows_of(nulls)) == (
        "not_null",
        "flag",
        2,
        [1, 4],
    )
    assert Contract([ColumnSpec("n", "float"), ColumnSpec("flag", "bool")]).validate(frame).ok


def test_safe_conversions_pass_and_each_lossy_value_is_a_type_violation() -> None:
    frame = pd.DataFrame(
        {
            "whole": [1.0, 2.0, None, 4.0],  # an int column read from CSV with a gap
            "lossy": [1.0, 2.5, 3.0, np.inf],
            "text_ints": pd.Series(["1", "2", "x", None], dtype="str"),
            "flags": pd.Series(["true", "False", "1", "maybe"], dtype=object),
            "when": pd.Series(["2024-01-02", "2024-02-30", None, "2024-03-01T10:00"], dtype="str"),
            "numbers": [1, 2, 3, 4],
        }
    )
    contract = Contract(
        [
            ColumnSpec("whole", "int", min=1),
            ColumnSpec("lossy", "int"),
            ColumnSpec("text_ints", "int", max=1),
            ColumnSpec("flags", "bool"),
            ColumnSpec("when", "datetime", max="2024-02-01"),
            ColumnSpec("numbers", "string"),
        ]
    )
    found = [(v.check, v.column, v.count, rows_of(v)) for v in contract.validate(frame).violations]
    assert found == [
        ("type", "lossy", 2, [1, 3]),
        ("type", "text_ints", 1, [2]),
        ("max", "text_ints", 1, [1]),  # bounds still apply to the values that converted
        ("type", "flags", 1, [3]),
        ("type", "when", 1, [1]),
        ("max", "when", 1, [3]),
        ("type", "numbers", 4, [0, 1, 2, 3]),
    ]
    numbers = contract.validate(frame).violations[-1]
    assert numbers.expected == "a string column, not int64"


def test_datetime_bounds_across_units_and_time_zones() -> None:
    naive = pd.Series(pd.to_datetime(["2024-01-01", "2024-06-01", "2025-01-01"])).astype(
        "datetime64[s]"
    )
    aware = naive.dt.tz_localize("Europe/Paris")
    contract = Contract([ColumnSpec("t", "datetime", min="2024-01-01", max="2024-12-31T22:00:00")])
    assert rows_of(only(contract.validate(pd.DataFrame({"t": naive})))) == [2]
    # Midnight in Paris is 23:00 UTC the day before: below a naive (UTC) minimum, and above
    # a maximum of 22:00 UTC.
    aware_report = contract.validate(pd.DataFrame({"t": aware}))
    assert [rows_of(v) for v in aware_report.violations] == [[0], [2]]
    bounded = Contract([ColumnSpec("t", "datetime", min="2024-01-01T00:00:00+01:00")])
    assert bounded.validate(pd.DataFrame({"t": aware})).ok


def test_rows_bounds() -> None:
    frame = pd.DataFrame({"a": range(5)})
    few = only(Contract(rows=RowBounds(min=10)).validate(frame))
    assert (few.check, few.column, few.count, few.share) == ("rows", None, 5, None)
    assert few.expected == ">= 10 rows, got 5"
    assert only(Contract(rows=RowBounds(max=4)).validate(frame)).expected == "<= 4 rows, got 5"


def test_expressions_report_rows_with_the_values_they_read() -> None:
    frame = pd.DataFrame(
        {
            "price": [10.0, 5.0, None, 2.0],
            "cost": [4.0, 6.0, 1.0, 3.0],
            "plan": ["a", "b", "a", "c"],
        }
    )
    contract = Contract([ColumnSpec("price", "float")])
    contract.add_check("margin", "price >= cost")
    contract.add_check("known plan", "plan in ['a', 'b'] | price > 100")
    margin, plan = contract.validate(frame).violations
    assert (margin.check, margin.column, margin.count, rows_of(margin)) == (
        "margin",
        "price, cost",
        2,
        [1, 3],
    )  # row 2 has a null price: not judged
    assert values_of(margin) == [{"price": 5.0, "cost": 6.0}, {"price": 2.0, "cost": 3.0}]
    assert (plan.count, rows_of(plan)) == (1, [3])
    assert str(margin.examples[0]) == "1: (price=5.0, cost=6.0)"


def test_an_expression_that_cannot_run_is_reported_and_the_rest_still_checked() -> None:
    frame = pd.DataFrame({"a": ["x", "y"], "b": [1, 2]})
    contract = Contract([ColumnSpec("b", "int", max=1)]).add_check("cmp", "a < b")
    high, broken = contract.validate(frame).violations
    assert high.check == "max"
    assert broken.check == "cmp" and broken.count is None
    assert "cannot evaluate" in broken.expected
    with pytest.raises(MissingColumnError, match="no column 'c'"):
        Contract().add_check("x", "c > 1").validate(frame)


def test_python_checks_per_row_and_per_table() -> None:
    frame = pd.DataFrame({"a": [1, -2, 3]})
    contract = Contract()
    contract.add_check("positive", lambda df: df["a"] > 0)
    contract.add_check("big enough", lambda df: len(df) > 5)
    positive, table = contract.validate(frame).violations
    assert (positive.count, rows_of(positive), str(positive.examples[0])) == (1, [1], "1")
    assert (table.check, table.count, table.share) == ("big enough", None, None)
    broken = Contract().add_check("boom", lambda df: df["missing"] > 0)
    with pytest.raises(CheckError, match="check 'boom' raised KeyError"):
        broken.validate(frame)
    wrong = Contract().add_check("numbers", lambda df: df["a"] * 2)
    with pytest.raises(CheckError, match="int64 values, not true/false"):
        wrong.validate(frame)


def test_missing_columns_and_non_frames_are_bad_input() -> None:
    contract = Contract([ColumnSpec("a", "int"), ColumnSpec("b", "int")])
    with pytest.raises(MissingColumnError) as caught:
        contract.validate(pd.DataFrame({"c": [1]}))
    assert str(caught.value) == "the data has no column 'a', 'b' that the contract requires"
    assert caught.value.exit_code == 2
    with pytest.raises(UserInputError, match="not a list"):
        contract.validate([1, 2])  # type: ignore[arg-type]


def test_every_violation_is_reported_and_threads_change_nothing() -> None:
    rng = np.random.default_rng(3)
    rows = 120_000
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "x": rng.normal(size=rows),
            "label": pd.Series(rng.choice(["a", "b", "c"], rows), dtype="str"),
            "cat": pd.Categorical(rng.choice(["p", "q"], rows)),
        }
    )
    frame.loc[[5, 50, 500], "x"] = 99.0
    frame.loc[[7, 70], "label"] = "z"
    frame.loc[9, "id"] = 3
    contract = Contract(
        [
            ColumnSpec("id", "int", unique=True, max=rows - 2),
            ColumnSpec("x", "float", max=10),
            ColumnSpec("label", "string", allowed=["a", "b", "c"]),
            ColumnSpec("cat", "category", allowed=["p"]),
        ]
    ).add_check("x small", "x < 50")
    serial = contract.validate(frame, workers=1)
    threaded = contract.validate(frame, workers=4)
    assert serial == threaded
    assert [(v.check, v.column, v.count) for v in serial.violations] == [
        ("max", "id", 1),
        ("unique", "id", 1),
        ("max", "x", 3),
        ("allowed", "label", 2),
        ("allowed", "cat", int((frame["cat"] == "q").sum())),
        ("x small", "x", 3),
    ]
    assert serial.to_frame().shape == (6, 6)
