"""``loopml contract infer`` and ``loopml validate`` on Parquet and CSV: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.store.workspace import Workspace
from loopml.validation import load
from support import Cli


def table(text: str) -> list[dict[str, str]]:
    """Parse piped output: a header line and tab-separated rows."""
    lines = [line for line in text.splitlines() if line]
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def good_frame(rows: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "zip": pd.Series([f"{i:05d}" for i in rng.integers(0, 99_999, rows)], dtype="str"),
            "amount": rng.uniform(10, 20, rows).round(2),
            "plan": pd.Series(rng.choice(["basic", "pro"], rows), dtype="str"),
            "visits": pd.array(np.where(np.arange(rows) % 10 == 0, None, np.arange(rows))),
            "at": pd.date_range("2024-03-01", periods=rows, freq="min"),
        }
    )


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_infer_then_validate_good_and_bad_data(cli: Cli, tmp_path: Path, suffix: str) -> None:
    data = write(good_frame(), tmp_path / f"good{suffix}")
    contract = tmp_path / "contract.yaml"
    inferred = cli("contract", "infer", str(data), "-o", str(contract))
    assert inferred.exit_code == 0, inferred.output
    assert f"wrote {contract}: 6 columns" in inferred.stdout
    spec = load(contract)
    assert spec.column("zip").type == "string"  # "01234" stays text, from CSV too
    assert spec.column("visits").type == "int" and spec.column("visits").nullable

    passed = cli("validate", str(data), "--contract", str(contract))
    assert passed.exit_code == 0, passed.output
    assert passed.stdout.startswith(f"ok: {data} satisfies {contract} (100 rows,")

    bad_frame = good_frame()
    bad_frame.loc[[3, 4], "plan"] = "legacy"
    bad_frame.loc[7, "amount"] = 500.0
    bad_frame.loc[9, "id"] = 1
    bad = write(bad_frame, tmp_path / f"bad{suffix}")
    failed = cli("validate", str(bad), "--contract", str(contract))
    assert failed.exit_code == 1, failed.output
    rows = table(failed.stdout)
    assert [(r["check"], r["column"], r["count"]) for r in rows] == [
        ("unique", "id", "1"),
        ("max", "amount", "1"),
        ("allowed", "plan", "2"),
    ]
    assert rows[2]["share"] == "0.02"
    assert rows[2]["examples"] == "3: 'legacy', 4: 'legacy'"
    assert rows[1]["expected"].startswith("<= ")
    assert "3 violations of" in failed.stderr and str(bad) in failed.stderr


def test_infer_prints_yaml_without_output_file(cli: Cli, tmp_path: Path) -> None:
    data = write(good_frame(), tmp_path / "d.parquet")
    shown = cli("contract", "infer", str(data), "--slack", "0")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("# loopml data contract")
    assert "  min: 100\n  max: 100\n" in shown.stdout  # rows, with no slack


def test_validate_json_report(cli: Cli, tmp_path: Path) -> None:
    frame = good_frame()
    contract = tmp_path / "c.yaml"
    contract.write_text("columns:\n  amount: {type: float, max: 15}\n", encoding="utf-8")
    data = write(frame, tmp_path / "d.parquet")
    result = cli("validate", str(data), "-c", str(contract), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["rows"] == 100 and report["checks"] == 2
    (violation,) = report["violations"]
    expected = int((frame["amount"] > 15).sum())
    assert (violation["check"], violation["count"]) == ("max", expected)
    assert len(violation["examples"]) == 5


def test_bad_input_exits_2_with_one_line(cli: Cli, tmp_path: Path) -> None:
    data = write(good_frame(), tmp_path / "d.parquet")
    contract = tmp_path / "c.yaml"
    load_ok = cli("contract", "infer", str(data), "-o", str(contract))
    assert load_ok.exit_code == 0
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    malformed = tmp_path / "malformed.yaml"
    malformed.write_text("columns:\n  a: {type: int\n", encoding="utf-8")
    narrow = write(good_frame()[["id", "amount"]], tmp_path / "narrow.csv")
    cases = {
        "no such file": ("validate", str(tmp_path / "absent.csv"), "-c", str(contract)),
        "no contract file": ("validate", str(data), "-c", str(tmp_path / "absent.yaml")),
        "cannot read": ("validate", str(broken), "-c", str(contract)),
        "not valid YAML": ("validate", str(data), "-c", str(malformed)),
        "has no column 'zip', 'plan'": ("validate", str(narrow), "-c", str(contract)),
        "expected a .parquet": ("contract", "infer", str(contract)),
    }
    for message, args in cases.items():
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.output
    missing_option = cli("validate", str(data))
    assert missing_option.exit_code == 2


def test_infer_and_validate_a_dataset_version(workspace: Workspace, cli: Cli) -> None:
    from loopml.data import add

    folder = workspace.root / "data" / "sales"
    folder.mkdir(parents=True)
    good = good_frame()
    write(good.iloc[:50], folder / "a.parquet")
    write(good.iloc[50:], folder / "b.parquet")
    add(folder, name="sales")
    result = cli("contract", "infer", "sales@v1", "-o", "contract.yaml")
    assert result.exit_code == 0, result.output
    assert "drafted from 100 rows" in result.stdout
    assert cli("validate", "sales@v1", "--contract", "contract.yaml").exit_code == 0

    bad = good.copy()
    bad.loc[3, "amount"] = 1e9
    write(bad, folder / "b.parquet")
    (folder / "a.parquet").unlink()
    add(folder, name="sales")
    result = cli("validate", "sales", "--contract", "contract.yaml")  # the latest version
    assert result.exit_code == 1
    assert any(row["column"] == "amount" for row in table(result.stdout))
    missing = cli("validate", "sales@v9", "--contract", "contract.yaml")
    assert missing.exit_code == 1 and "sales@v9 does not exist" in missing.stderr
