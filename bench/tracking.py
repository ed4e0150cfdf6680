"""Experiment tracking: loopml's logging, runs and search against MLflow on its default local store.

Scenarios (sizes of the full run; ``--quick`` shrinks them):

``log-metric``  2,000 single ``log_metric`` calls in one run, including the flush at the end;
                MLflow synchronous (its default), asynchronous with its defaults, and
                asynchronous with ``MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1`` (its best).
``log-batch``   10,000 points of one metric (steps 0..9,999) handed over in one call.
``runs``        100 runs, each started, given 10 params and ended.
``search``      ``search_runs`` with ``metrics.acc > 0.5`` over 1,000 runs, returning a DataFrame.

Method, the same for both tools:

- each sample is one child process running ``bench/tracking_child.py`` with the tool's own
  interpreter (``.venv/bin/python`` for loopml, ``bench/.venv-peers/bin/python`` for MLflow),
  a child of this one;
- the child times the calls in-process with ``time.perf_counter``: interpreter start-up,
  imports (pandas included, both tools return DataFrames), opening the store (MLflow creates its
  database and runs its migrations then) and making the inputs are outside the timing;
- every sample gets a fresh workspace under ``bench/work/``: ``loopml init`` for loopml, an empty
  folder for MLflow with tracking URI ``sqlite:///<folder>/mlflow.db`` (its default local store
  since MLflow 3) and the default artifact location (``./mlruns`` in that folder). The search
  scenario fills one workspace per tool with the same seeded 1,000 runs (untimed) and searches it
  from several fresh processes;
- MLflow's telemetry is off (``MLFLOW_DISABLE_TELEMETRY=true``, ``DO_NOT_TRACK=true``: MLflow only
  honours ``DO_NOT_TRACK`` spelled ``true``); otherwise both tools run with their defaults;
- one discarded warm-up round, then medians of the kept rounds; tools alternate which goes first;
  the harness waits for the machine to go quiet before each child, as for data versioning.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    BENCH_DIR,
    PEERS_VENV,
    QUIET_LOAD,
    WORK_DIR,
    BenchError,
    Goal,
    Timed,
    child_result,
    fresh_dir,
    git_commit,
    log,
    machine_info,
    remove_tree,
    run,
)
from bench.versioning import Loopml, _base_env, ordered

SCENARIOS = ("log-metric", "log-batch", "runs", "search")
CHILD = BENCH_DIR / "tracking_child.py"

# What the issue measured for MLflow 3.17 (SQLite store) on this kind of machine, for reference
# only; ratios are computed against MLflow measured in the same run.
MLFLOW_REFERENCE = {
    "log-metric": {
        "mlflow-sync": "10-11 ms per point",
        "mlflow-async": "12 ms per point including the flush",
        "mlflow-async-buffered": "0.8 ms per point",
    },
    "log-batch": "2.2 s for 10,000 points",
    "runs": "39 ms per run (start + 10 params + end)",
    "search": "0.2-0.3 s over 1,000 runs",
}


@dataclass(frozen=True, slots=True)
class Config:
    """Sizes and repetitions of one run."""

    metric_points: int
    batch_points: int
    runs: int
    search_runs: int
    reps: int
    metric_reps: int
    search_calls: int = 5
    warmup: bool = True
    quick: bool = False

    @classmethod
    def full(cls) -> Config:
        return cls(
            metric_points=2_000,
            batch_points=10_000,
            runs=100,
            search_runs=1_000,
            reps=5,
            metric_reps=3,
        )

    @classmethod
    def small(cls) -> Config:
        return cls(
            metric_points=200,
            batch_points=1_000,
            runs=20,
            search_runs=200,
            reps=2,
            metric_reps=2,
            quick=True,
        )


# -- the tools --------------------------------------------------------------------------------


@dataclass
class Variant:
    """One tool in one configuration: the interpreter, the environment, how to make a workspace."""

    name: str  # the label in the results: loopml, mlflow, mlflow-sync, ...
    tool: str  # loopml or mlflow (the child's first argument)
    python: Path
    env: dict[str, str]
    variant: str = "default"
    loopml_exe: Path | None = None

    def workspace(self, parent: Path) -> Path:
        folder = fresh_dir(parent, self.name)
        if self.loopml_exe is not None:
            run([self.loopml_exe, "init"], cwd=folder, env=self.env)
        return folder

    def child(self, workspace: Path, scenario: str, *args: str) -> tuple[dict[str, Any], Any]:
        sample = run(
            [self.python, CHILD, self.tool, scenario, "--variant", self.variant, *args],
            cwd=workspace,
            env=self.env,
            quiet=True,
        )
        return child_result(sample), sample


def mlflow_env() -> dict[str, str]:
    env = {k: v for k, v in _base_env().items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"
    return env


def make_variants(
    run_dir: Path, bytecode_cache: bool
) -> tuple[Variant, dict[str, Variant], Loopml]:
    """loopml, and MLflow in its three logging modes (only ``mlflow-sync`` for the rest)."""
    cli = Loopml(run_dir, bytecode_cache)
    loopml = Variant(
        "loopml", "loopml", cli.exe.parent / "python", dict(cli.env), loopml_exe=cli.exe
    )
    python = PEERS_VENV / "bin" / "python"
    buffered = mlflow_env()
    buffered["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = "1"
    mlflow = {
        "mlflow-sync": Variant("mlflow-sync", "mlflow", python, mlflow_env(), "sync"),
        "mlflow-async": Variant("mlflow-async", "mlflow", python, mlflow_env(), "async"),
        "mlflow-async-buffered": Variant(
            "mlflow-async-buffered", "mlflow", python, buffered, "async-buffered"
        ),
    }
    return loopml, mlflow, cli


def _rounds(reps: int, warmup: bool) -> list[tuple[int, bool]]:
    rounds = [(1, False)] if warmup else []
    return rounds + [(index, True) for index in range(reps)]


def _check(condition: bool, what: str, result: dict[str, Any]) -> None:
    if not condition:
        raise BenchError(f"{what}: {result}")


# -- scenarios --------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    name: str
    description: str
    unit: str  # what one value is: e.g. "seconds for 2,000 points"
    per: int  # items per value (points, runs), for per-item numbers
    per_label: str
    tools: dict[str, Timed]
    goals: list[Goal]
    ratios: dict[str, float]
    notes: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        tools = {}
        for name, timed in self.tools.items():
            summary = timed.summary()
            summary[f"median_ms_per_{self.per_label}"] = round(timed.median_s / self.per * 1e3, 5)
            tools[name] = summary
        return {
            "name": self.name,
            "description": self.description,
            "value": self.unit,
            "tools": tools,
            "ratios": {k: round(v, 3) for k, v in self.ratios.items()},
            "mlflow_reference": MLFLOW_REFERENCE.get(self.name),
            "goals": [goal.as_dict() for goal in self.goals],
            "met": all(goal.met for goal in self.goals),
            **({"notes": self.notes} if self.notes else {}),
        }


def _simple(
    name: str,
    cfg: Config,
    variants: Sequence[Variant],
    run_dir: Path,
    n: int,
    reps: int,
    verify: Any,
) -> dict[str, Timed]:
    """One child per variant per round, each in a fresh workspace; returns the series."""
    series = {v.name: Timed() for v in variants}
    for index, kept in _rounds(reps, cfg.warmup):
        log(f"{name}: round {index + 1 if kept else 'warm-up'}")
        for variant in ordered(variants, index):  # type: ignore[arg-type]
            workspace = variant.workspace(run_dir)
            try:
                result, sample = variant.child(workspace, name, "--n", str(n))
                verify(variant, result)
                if kept:
                    series[variant.name].add(result["seconds"], sample, result)
            finally:
                remove_tree(workspace)
    for variant in variants:
        timed = series[variant.name]
        if timed.details:
            timed.extra["method"] = timed.details[-1].get("method")
            timed.extra["version"] = timed.details[-1].get("version")
    return series


def log_metric(
    cfg: Config, loopml: Variant, mlflow: dict[str, Variant], run_dir: Path
) -> ScenarioResult:
    n = cfg.metric_points

    def verify(variant: Variant, result: dict[str, Any]) -> None:
        _check(
            result["stored_points"] == n, f"{variant.name} stored a wrong number of points", result
        )

    variants = [loopml, *mlflow.values()]
    series = _simple("log-metric", cfg, variants, run_dir, n, cfg.metric_reps, verify)
    for timed in series.values():
        timed.extra["calls_median_s"] = round(timed.median_of("calls_s"), 6)
        timed.extra["flush_median_s"] = round(timed.median_of("flush_s"), 6)
        timed.extra["end_run_median_s"] = round(timed.median_of("end_run_s"), 6)
    ours = series["loopml"].median_s
    ratios = {
        f"{name}/loopml": timed.median_s / ours
        for name, timed in series.items()
        if name != "loopml"
    }
    goals = [
        Goal("mlflow-sync/loopml >= 200 (per point)", ratios["mlflow-sync/loopml"], ">=", 200.0),
        Goal(
            "mlflow-async-buffered/loopml >= 20 (per point)",
            ratios["mlflow-async-buffered/loopml"],
            ">=",
            20.0,
        ),
    ]
    return ScenarioResult(
        "log-metric",
        f"{n:,} single log_metric calls in one run, flush included",
        f"seconds for {n:,} calls and the flush",
        n,
        "point",
        series,
        goals,
        ratios,
        {},
    )


def log_batch(cfg: Config, loopml: Variant, mlflow: Variant, run_dir: Path) -> ScenarioResult:
    n = cfg.batch_points

    def verify(variant: Variant, result: dict[str, Any]) -> None:
        _check(
            result["stored_points"] == n, f"{variant.name} stored a wrong number of points", result
        )

    series = _simple("log-batch", cfg, [loopml, mlflow], run_dir, n, cfg.reps, verify)
    series["loopml"].extra["store_log_batch_median_s"] = round(
        series["loopml"].median_of("store_log_batch_s"), 6
    )
    ratio = series[mlflow.name].median_s / series["loopml"].median_s
    return ScenarioResult(
        "log-batch",
        f"{n:,} points of one metric in one call",
        f"seconds for one call of {n:,} points",
        n,
        "point",
        series,
        [Goal("mlflow/loopml >= 10", ratio, ">=", 10.0)],
        {"mlflow/loopml": ratio},
        {},
    )


def runs(cfg: Config, loopml: Variant, mlflow: Variant, run_dir: Path) -> ScenarioResult:
    n = cfg.runs

    def verify(variant: Variant, result: dict[str, Any]) -> None:
        _check(
            result["runs_finished"] == n + 1 and result["params_on_last_run"] == 10,
            f"{variant.name} did not record {n + 1} finished runs with 10 params",
            result,
        )

    series = _simple("runs", cfg, [loopml, mlflow], run_dir, n, cfg.reps, verify)
    ratio = series[mlflow.name].median_s / series["loopml"].median_s
    return ScenarioResult(
        "runs",
        f"{n} runs, each started, given 10 params and ended",
        f"seconds for {n} runs",
        n,
        "run",
        series,
        [Goal("mlflow/loopml >= 10", ratio, ">=", 10.0)],
        {"mlflow/loopml": ratio},
        {},
    )


def search(cfg: Config, loopml: Variant, mlflow: Variant, run_dir: Path) -> ScenarioResult:
    n = cfg.search_runs
    variants = [loopml, mlflow]
    spaces: dict[str, Path] = {}
    populate: dict[str, float] = {}
    try:
        for variant in variants:
            log(f"search: {variant.name} records {n:,} runs (untimed)")
            spaces[variant.name] = variant.workspace(run_dir)
            result, _ = variant.child(spaces[variant.name], "populate", "--n", str(n))
            populate[variant.name] = round(result["seconds"], 3)
        first = {v.name: Timed() for v in variants}
        repeat = {v.name: Timed() for v in variants}
        rows: dict[str, set[int]] = {v.name: set() for v in variants}
        for index, kept in _rounds(cfg.reps, cfg.warmup):
            log(f"search: round {index + 1 if kept else 'warm-up'}")
            for variant in ordered(variants, index):  # type: ignore[arg-type]
                result, sample = variant.child(
                    spaces[variant.name], "search", "--calls", str(cfg.search_calls)
                )
                _check(result["all_match"], f"{variant.name} returned rows off the filter", result)
                rows[variant.name].add(result["rows"])
                if kept:
                    first[variant.name].add(result["first_call_s"], sample, result)
                    repeat[variant.name].add(
                        statistics.median(result["repeat_calls_s"]), sample, result
                    )
        if len(rows["loopml"] | rows[mlflow.name]) != 1:
            raise BenchError(f"the tools found different numbers of runs: {rows}")
    finally:
        for path in spaces.values():
            remove_tree(path)
    matched = rows["loopml"].pop()
    tools: dict[str, Timed] = {}
    for variant in variants:
        first[variant.name].extra.update(
            {
                "what": "the first search_runs call in a fresh process (store already open)",
                "method": first[variant.name].details[-1]["method"],
                "version": first[variant.name].details[-1]["version"],
                "populate_s": populate[variant.name],
            }
        )
        repeat[variant.name].extra["what"] = (
            f"median of {cfg.search_calls} further calls in the same process"
        )
        tools[variant.name] = first[variant.name]
        tools[f"{variant.name} (repeat)"] = repeat[variant.name]
    ratio_first = first[mlflow.name].median_s / first["loopml"].median_s
    ratio_repeat = repeat[mlflow.name].median_s / repeat["loopml"].median_s
    return ScenarioResult(
        "search",
        f"search_runs with {'metrics.acc > 0.5'} over {n:,} runs ({matched} match), as a DataFrame",
        "seconds for one search_runs call",
        1,
        "call",
        tools,
        [
            Goal("mlflow/loopml >= 5 (first call)", ratio_first, ">=", 5.0),
            Goal("mlflow/loopml >= 5 (repeated call)", ratio_repeat, ">=", 5.0),
        ],
        {"mlflow/loopml": ratio_first, "mlflow/loopml (repeat)": ratio_repeat},
        {"rows_matched": matched},
    )


# -- the suite ---------------------------------------------------------------------------------


def run_suite(
    cfg: Config, selected: Sequence[str], *, bytecode_cache: bool = True
) -> dict[str, Any]:
    """Run the selected scenarios and return the results document."""
    run_dir = fresh_dir(WORK_DIR, "tracking")
    started = time.time()
    try:
        loopml, mlflow, cli = make_variants(run_dir, bytecode_cache)
        versions = {
            "loopml": cli.version(),
            "mlflow": run(
                [PEERS_VENV / "bin" / "python", "-c", "import mlflow; print(mlflow.__version__)"],
                env=mlflow_env(),
            )
            .output.strip()
            .splitlines()[-1],
        }
        log(f"tools: {versions}; work folder {run_dir}")
        chosen = set(selected)
        scenarios: list[ScenarioResult] = []
        if "log-metric" in chosen:
            scenarios.append(log_metric(cfg, loopml, mlflow, run_dir))
        if "log-batch" in chosen:
            scenarios.append(log_batch(cfg, loopml, mlflow["mlflow-sync"], run_dir))
        if "runs" in chosen:
            scenarios.append(runs(cfg, loopml, mlflow["mlflow-sync"], run_dir))
        if "search" in chosen:
            scenarios.append(search(cfg, loopml, mlflow["mlflow-sync"], run_dir))
    finally:
        remove_tree(run_dir)
    return {
        "suite": "tracking",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "quick": cfg.quick,
        "selected": list(selected),
        "config": {
            "log_metric_points": cfg.metric_points,
            "log_batch_points": cfg.batch_points,
            "runs": cfg.runs,
            "search_runs": cfg.search_runs,
            "reps": cfg.reps,
            "log_metric_reps": cfg.metric_reps,
            "search_calls_per_process": 1 + cfg.search_calls,
            "warmup_round": cfg.warmup,
        },
        "method": (
            "Seconds timed in-process (time.perf_counter around the calls only) by "
            "bench/tracking_child.py, run as a child process with each tool's own interpreter; "
            "interpreter start-up, imports (pandas too), opening the store and making inputs "
            "are not timed. One fresh workspace per sample (loopml init; MLflow: an empty "
            "folder, tracking URI sqlite:///<folder>/mlflow.db, default artifact location "
            "./mlruns there); search: one workspace per tool filled with the same seeded runs, "
            "searched from a fresh process per sample. MLflow telemetry off "
            "(MLFLOW_DISABLE_TELEMETRY=true, DO_NOT_TRACK=true); both tools otherwise at "
            "their defaults. Median of the kept rounds after one discarded warm-up round; "
            "tools alternate order each round. Ratios mlflow*/loopml are speed-ups (higher is "
            "better for loopml). Before each child the harness waits (up to 30 s) for other "
            "processes to use < 0.3 CPUs; other_load_samples gives the CPUs others used."
        ),
        "machine": machine_info(),
        "loopml": {**git_commit(), "version": versions["loopml"], "bytecode": cli.bytecode},
        "mlflow": {
            "version": versions["mlflow"],
            "python": str(PEERS_VENV / "bin" / "python"),
            "store": "sqlite:///<workspace>/mlflow.db (default local store), artifacts ./mlruns",
            "telemetry": "off",
        },
        "scenarios": [scenario.as_dict() for scenario in scenarios],
        "all_goals_met": all(goal.met for scenario in scenarios for goal in scenario.goals),
    }


def print_report(doc: dict[str, Any]) -> None:
    """Rich tables of the results document."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    table = Table(
        title=f"loopml vs MLflow {doc['mlflow']['version']} — tracking "
        f"({doc['machine']['cpu_count']} CPUs; in-process medians)",
    )
    for column in ("scenario", "tool", "median", "per item", "ratio"):
        table.add_column(column, justify="left" if column in ("scenario", "tool") else "right")
    for scenario in doc["scenarios"]:
        per_key = next(
            k for k in next(iter(scenario["tools"].values())) if k.startswith("median_ms_per_")
        )
        unit = per_key.removeprefix("median_ms_per_")
        for number, (name, summary) in enumerate(scenario["tools"].items()):
            ratio = scenario["ratios"].get(f"{name}/loopml")
            if ratio is None and name.startswith("mlflow"):
                suffix = " (repeat)" if name.endswith("(repeat)") else ""
                ratio = scenario["ratios"].get(f"mlflow/loopml{suffix}")
            table.add_row(
                f"{scenario['name']}\n[dim]{scenario['description']}[/]" if number == 0 else "",
                name,
                f"{summary['median_s'] * 1e3:.1f} ms",
                f"{summary[per_key]:.4g} ms/{unit}",
                f"{ratio:.1f}x" if ratio is not None else "",
            )
        table.add_section()
    console.print(table)
    goals = Table(title="tracking goals")
    for column in ("scenario", "goal", "measured", "met"):
        goals.add_column(column)
    for scenario in doc["scenarios"]:
        for goal in scenario["goals"]:
            goals.add_row(
                scenario["name"],
                goal["text"],
                f"{goal['value']:.3g}",
                "[green]yes[/]" if goal["met"] else "[red]NO[/]",
            )
    console.print(goals)
    _noise_warning(console, doc)
    verdict = "all goals met" if doc["all_goals_met"] else "some goals NOT met"
    console.print(
        f"{verdict}; loopml {doc['loopml']['commit']}"
        f"{' (+ uncommitted changes)' if doc['loopml']['dirty'] else ''}"
    )


def _noise_warning(console: Any, doc: dict[str, Any]) -> None:
    noisy = [
        f"{scenario['name']}/{name}"
        for scenario in doc["scenarios"]
        for name, summary in scenario["tools"].items()
        if sum(load > QUIET_LOAD for load in summary["other_load_samples"])
        > len(summary["other_load_samples"]) // 2
    ]
    if noisy:
        console.print(
            f"[yellow]warning:[/] other processes kept > {QUIET_LOAD} CPUs busy during most "
            f"samples of {', '.join(noisy)}; those numbers measure a shared machine"
        )


__all__ = ["SCENARIOS", "Config", "print_report", "run_suite"]
