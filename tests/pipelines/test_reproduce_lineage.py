"""``loopml reproduce`` and ``loopml lineage`` on real flows, through the in-process CLI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

import loopml
from loopml.store.workspace import Workspace

if TYPE_CHECKING:
    from conftest import Project
    from support import Cli, CliResult

SKLEARN_FLOW = """
    from pathlib import Path

    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    import loopml
    from loopml import pipeline, step

    FEATURES = ["tenure", "spend"]

    @step
    def load(raw: Path) -> pd.DataFrame:
        return pd.read_csv(raw)

    @step
    def features(df: pd.DataFrame, ratio: float = 1.0) -> pd.DataFrame:
        return df.assign(spend=df["spend"] * ratio)

    @step
    def train(
        df: pd.DataFrame, n_estimators: int = 10, max_depth: int = 4
    ) -> RandomForestClassifier:
        model = RandomForestClassifier(
            n_estimators=n_estimators, max_depth=max_depth, random_state=0
        )
        return model.fit(df[FEATURES], df["churned"])

    @step
    def evaluate(model: RandomForestClassifier, df: pd.DataFrame) -> dict:
        accuracy = float(model.score(df[FEATURES], df["churned"]))
        loopml.log_metric("accuracy", accuracy)
        return {"accuracy": accuracy}

    @pipeline
    def churn(n_estimators: int = 10, max_depth: int = 4):
        df = features(load(loopml.data.ref("sales@latest")))
        model = train(df, n_estimators=n_estimators, max_depth=max_depth)
        return evaluate(model, df)
    """

NOISY_FLOW = """
    import numpy as np
    import pandas as pd
    import loopml
    from loopml import pipeline, step

    @step
    def load(n: int) -> pd.DataFrame:
        return pd.DataFrame({"x": np.arange(n, dtype=float), "label": ["a", "b"] * (n // 2)})

    @step
    def noisy(df: pd.DataFrame) -> pd.DataFrame:
        rng = np.random.default_rng()
        return df.assign(x=df["x"] + rng.normal(size=len(df)))

    @step
    def summary(df: pd.DataFrame) -> dict:
        loopml.log_metric("mean", float(df["x"].mean()))
        return {"rows": len(df), "mean": float(df["x"].mean())}

    @pipeline
    def flow(n: int = 20):
        return summary(noisy(load(n)))
    """


def run_id(result: CliResult) -> str:
    match = re.search(r"^run ([0-9a-f]+) (finished|failed)", result.stdout, re.MULTILINE)
    assert match, result.output
    return match.group(1)


def table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if "\t" in line]
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def sales_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 60, size=rows)
    spend = rng.normal(50, 15, size=rows).round(2)
    churned = ((tenure < 12) & (spend < 55)).astype(int)
    return pd.DataFrame({"tenure": tenure, "spend": spend, "churned": churned})


def test_a_seeded_sklearn_pipeline_reproduces_and_its_model_has_lineage(
    cli: Cli, project: Project, workspace: Workspace
) -> None:
    sales = workspace.root / "sales.csv"
    sales_frame(120, seed=1).to_csv(sales, index=False)
    loopml.data.add(sales, name="sales", workspace=workspace)
    project.write("flow", SKLEARN_FLOW)
    target = f"{project.package}/flow.py:churn"

    first = cli("run", target, "-p", "n_estimators=12")
    assert first.exit_code == 0, first.output
    run = run_id(first)

    # A newer version of the data does not change what the run is reproduced from.
    sales_frame(150, seed=2).to_csv(sales, index=False)
    loopml.data.add(sales, name="sales", workspace=workspace)

    reproduced = cli("reproduce", run)
    assert reproduced.exit_code == 0, reproduced.output
    compared = table("step\toutput" + reproduced.stdout.split("step\toutput", 1)[1])
    assert [(r["step"], r["result"], r["format"]) for r in compared] == [
        ("load", "identical", "parquet"),
        ("features", "identical", "parquet"),
        ("train", "identical", "skops"),
        ("evaluate", "identical", "json"),
        ("evaluate", "identical", "metrics"),
    ]
    assert re.search(
        rf"^run {run} reproduced as run [0-9a-f]+: all 4 outputs and their metrics identical$",
        reproduced.stdout,
        re.MULTILINE,
    )
    # Cache off: every step ran again.
    assert re.findall(r"^(\w+)\tran\t", reproduced.stdout, re.MULTILINE) == [
        "load",
        "features",
        "train",
        "evaluate",
    ]

    # Lineage of the model: the step run with its code and params, back to sales@v1.
    tree = cli("lineage", f"{run}:train")
    assert tree.exit_code == 0, tree.output
    text = tree.stdout
    assert text.splitlines()[0].startswith("object ")
    assert "RandomForestClassifier, skops)" in text.splitlines()[0]
    assert f"{project.package}.flow:train, ran" in text
    assert "params max_depth=4, n_estimators=12" in text
    assert "params ratio=1.0" in text
    assert re.search(r"raw: dataset version sales@v1 \(hash [0-9a-f]{12}\)", text)
    assert "sales@v2" not in text
    assert re.search(r"code [0-9a-f]{12}", text)
    # The same tree from the object digest's prefix, and from the evaluation down.
    digest = text.splitlines()[0].split()[1]
    by_digest = cli("lineage", digest[:10])
    assert by_digest.exit_code == 0, by_digest.output
    assert "dataset version sales@v1" in by_digest.stdout
    metrics = cli("lineage", f"{run}:evaluate:0").stdout
    assert "model: object" in metrics and "df: object" in metrics
    assert "(shown above)" in metrics  # features feeds both train and evaluate

    assert cli("lineage", "zz").exit_code == 2
    assert cli("lineage", "abcdef0123").exit_code == 1
    assert cli("lineage", f"{run}:train:3").exit_code == 2


def test_unseeded_randomness_shows_what_differs(cli: Cli, project: Project) -> None:
    project.write("flow", NOISY_FLOW)
    first = cli("run", f"{project.package}/flow.py:flow")
    assert first.exit_code == 0, first.output
    result = cli("reproduce", run_id(first))
    assert result.exit_code == 1, result.output
    compared = {
        (r["step"], r["output"]): r
        for r in table("step\toutput" + result.stdout.split("step\toutput", 1)[1])
    }
    assert list(compared) == [
        ("load", "0"),
        ("noisy", "0"),
        ("summary", "0"),
        ("summary", "metrics"),
    ]
    assert compared["load", "0"]["result"] == "identical"
    assert compared["noisy", "0"]["result"] == "differs"
    how = compared["noisy", "0"]["how"]
    assert "20 of 40 cells differ (x: 20)" in how
    assert "largest absolute difference" in how
    assert compared["summary", "0"]["result"] == "differs"
    assert compared["summary", "0"]["how"].startswith("mean: ")
    assert "rows" not in compared["summary", "0"]["how"]
    assert compared["summary", "metrics"]["result"] == "differs"
    assert compared["summary", "metrics"]["how"].startswith("mean: ")
    assert re.search(
        r"did not reproduce .*: 1 of 3 outputs identical, 2 differ; the metrics of 1 step",
        result.stdout,
    )


def test_changed_code_is_refused_unless_forced(cli: Cli, project: Project) -> None:
    project.write("flow", NOISY_FLOW)
    first = cli("run", f"{project.package}/flow.py:flow")
    run = run_id(first)
    project.edit("flow", '"rows": len(df)', '"rows": len(df) + 1')
    project.purge()

    refused = cli("reproduce", run)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: the code differs from run")
    assert "summary (code changed)" in refused.stderr
    assert "--force" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert refused.stdout == ""

    forced = cli("reproduce", run, "--force")
    assert forced.exit_code == 1
    assert "warning: summary: code changed" in forced.stderr
    compared = {
        (r["step"], r["output"]): r
        for r in table("step\toutput" + forced.stdout.split("step\toutput", 1)[1])
    }
    assert "rows: 20 → 21" in compared["summary", "0"]["how"]


def test_reproduce_keeps_a_link_to_the_original(cli: Cli, project: Project) -> None:
    project.write("flow", NOISY_FLOW.replace("rng.normal(size=len(df))", "0.0"))
    first = cli("run", f"{project.package}/flow.py:flow")
    run = run_id(first)
    result = cli("reproduce", run)
    assert result.exit_code == 0, result.output
    fresh = re.search(r"reproduced as run ([0-9a-f]+)", result.stdout)
    assert fresh
    shown = cli("runs", "show", fresh.group(1)).stdout
    assert re.search(r"^loopml.reproduction_of\t[0-9a-f]{32}$", shown, re.MULTILINE)
    dag = table(cli("runs", "dag", fresh.group(1)).stdout)
    assert [(r["step"], r["status"]) for r in dag] == [
        ("load", "ran"),
        ("noisy", "ran"),
        ("summary", "ran"),
    ]
    assert Path(".loopml").is_dir()
