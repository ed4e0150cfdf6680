"""Pipelines: ``loopml run`` against ``dvc repro``, per-step overhead, and DAG build scaling.

Scenarios (sizes of the full run; ``--quick`` shrinks them):

``chain-cached``   a chain of 20 trivial steps, run once, then run again with everything cached,
                   from the command line (whole process, start-up included): ``loopml run
                   flow.py:chain`` against ``dvc repro`` of a ``dvc.yaml`` of 20 stages, each a
                   ``python -c`` that reads the previous stage's output file and writes its own.
                   ``python -c pass`` and ``loopml --version`` are timed beside them (start-up).
``step-overhead``  in-process, cache off: a chain of 50 trivial steps against one of 10, so
                   per step = (t50 - t10) / 40.
``trace-scaling``  in-process: ``Pipeline.trace`` (the DAG built and validated) of a DAG of 50,
                   100, 200 and 400 steps (step i reads steps i-1 and (i-1)//2), time per step;
                   beside it ``Pipeline.plan`` before and after a run, and a cached re-run.

Method: as for data versioning, fresh workspaces under ``bench/work/`` (loopml: ``loopml init``;
DVC: ``git init`` + ``dvc init``, analytics off, site cache and config folders inside the run),
one discarded warm-up round, medians of the kept rounds, the tools alternating which goes first,
and the harness waiting for the machine to go quiet before each timed command. Flow files age
2.5 s before their first run (loopml memoises a step's code hash only for files not written in
the last 2 s, as git's racy-clean rule; a user's flow file is older than that).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import (
    BENCH_DIR,
    PEERS_VENV,
    QUIET_LOAD,
    WORK_DIR,
    BenchError,
    Goal,
    Sample,
    Series,
    Timed,
    child_result,
    fresh_dir,
    git_commit,
    log,
    machine_info,
    remove_tree,
    run,
)
from bench.pipelines_child import explicit_chain_source, write_flow
from bench.versioning import Dvc, Loopml

SCENARIOS = ("chain-cached", "step-overhead", "trace-scaling")
CHILD = BENCH_DIR / "pipelines_child.py"
AGE_S = 2.5

# What the issue measured for DVC 3.67 (20 stages), for reference only.
DVC_REFERENCE_S = {"cached": 1.9, "first": 4.8}


@dataclass(frozen=True, slots=True)
class Config:
    chain_steps: int
    reps: int
    overhead_small: int
    overhead_large: int
    overhead_pairs: int
    scaling_sizes: tuple[int, ...]
    scaling_reps: int
    trace_reps: int
    warmup: bool = True
    quick: bool = False

    @classmethod
    def full(cls) -> Config:
        return cls(
            chain_steps=20,
            reps=5,
            overhead_small=10,
            overhead_large=50,
            overhead_pairs=3,
            scaling_sizes=(50, 100, 200, 400),
            scaling_reps=3,
            trace_reps=20,
        )

    @classmethod
    def small(cls) -> Config:
        return cls(
            chain_steps=20,
            reps=3,
            overhead_small=5,
            overhead_large=20,
            overhead_pairs=2,
            scaling_sizes=(25, 50, 100),
            scaling_reps=1,
            trace_reps=5,
            quick=True,
        )


# -- the chain in each tool ---------------------------------------------------------------------

_STAGE_CODE = "import sys; open(sys.argv[2], 'w').write(str(int(open(sys.argv[1]).read()) + 1))"


def dvc_yaml(n_steps: int, python: Path) -> str:
    """``n_steps`` stages; stage i reads out/s{i-1}.txt (stage 0: input.txt) and writes its own."""
    lines = ["stages:"]
    for i in range(n_steps):
        source = "input.txt" if i == 0 else f"out/s{i - 1:02d}.txt"
        target = f"out/s{i:02d}.txt"
        lines += [
            f"  s{i:02d}:",
            f'    cmd: {python} -c "{_STAGE_CODE}" {source} {target}',
            "    deps:",
            f"    - {source}",
            "    outs:",
            f"    - {target}",
        ]
    return "\n".join(lines) + "\n"


class LoopmlChain:
    name = "loopml"

    def __init__(self, cli: Loopml, steps: int) -> None:
        self.cli = cli
        self.steps = steps

    def setup(self, workspace: Path) -> None:
        self.cli.init(workspace)
        (workspace / "flow.py").write_text(explicit_chain_source(self.steps), encoding="utf-8")

    def repro(self, workspace: Path) -> Sample:
        return run(
            [self.cli.exe, "run", "flow.py:chain"], cwd=workspace, env=self.cli.env, quiet=True
        )

    def check(self, output: str, expect: str) -> None:
        lines = [line for line in output.splitlines() if "\t" in line]
        statuses = [line.split("\t")[1] for line in lines]
        if statuses != [expect] * self.steps or "finished" not in output:
            raise BenchError(f"loopml run: expected {self.steps} steps {expect}:\n{output[-3000:]}")


class DvcChain:
    name = "dvc"

    def __init__(self, dvc: Dvc, steps: int) -> None:
        self.dvc = dvc
        self.steps = steps
        self.python = PEERS_VENV / "bin" / "python"

    def setup(self, workspace: Path) -> None:
        self.dvc.init(workspace)
        (workspace / "input.txt").write_text("0\n", encoding="utf-8")
        (workspace / "out").mkdir()
        (workspace / "dvc.yaml").write_text(dvc_yaml(self.steps, self.python), encoding="utf-8")

    def repro(self, workspace: Path) -> Sample:
        return run([self.dvc.exe, "repro"], cwd=workspace, env=self.dvc.env, quiet=True)

    def check(self, output: str, expect: str) -> None:
        if expect == "cached":
            ok = "Data and pipelines are up to date" in output and "Running stage" not in output
        else:
            ok = output.count("Running stage") == self.steps
        if not ok:
            raise BenchError(f"dvc repro: expected every stage {expect}:\n{output[-3000:]}")


@dataclass
class ScenarioResult:
    name: str
    description: str
    tools: dict[str, Any]  # name -> summary dict
    goals: list[Goal]
    ratios: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tools": self.tools,
            "ratios": {k: round(v, 3) for k, v in self.ratios.items()},
            "goals": [goal.as_dict() for goal in self.goals],
            "met": all(goal.met for goal in self.goals),
            **({"notes": self.notes} if self.notes else {}),
        }


def _rounds(reps: int, warmup: bool) -> list[tuple[int, bool]]:
    rounds = [(1, False)] if warmup else []
    return rounds + [(index, True) for index in range(reps)]


def chain_cached(cfg: Config, cli: Loopml, dvc: Dvc, run_dir: Path) -> ScenarioResult:
    tools = [LoopmlChain(cli, cfg.chain_steps), DvcChain(dvc, cfg.chain_steps)]
    spaces: dict[str, Path] = {}
    first: dict[str, Series] = {tool.name: Series() for tool in tools}
    cached: dict[str, Series] = {tool.name: Series() for tool in tools}
    baselines = {"python -c pass": Series(), "loopml --version": Series()}
    try:
        for tool in tools:
            spaces[tool.name] = fresh_dir(run_dir, f"{tool.name}-chain")
            tool.setup(spaces[tool.name])
        time.sleep(AGE_S)
        for tool in tools:
            log(f"chain-cached: {tool.name} first run")
            sample = tool.repro(spaces[tool.name])
            tool.check(sample.output, "ran")
            first[tool.name].add(sample)
        for index, kept in _rounds(cfg.reps, cfg.warmup):
            log(f"chain-cached: round {index + 1 if kept else 'warm-up'}")
            order = tools if index % 2 == 0 else list(reversed(tools))
            for tool in order:
                sample = tool.repro(spaces[tool.name])
                tool.check(sample.output, "cached")
                if kept:
                    cached[tool.name].add(sample)
            python = run([cli.exe.parent / "python", "-c", "pass"], env=cli.env, quiet=True)
            version = run([cli.exe, "--version"], env=cli.env, quiet=True)
            if kept:
                baselines["python -c pass"].add(python)
                baselines["loopml --version"].add(version)
    finally:
        for path in spaces.values():
            remove_tree(path)
    ours = cached["loopml"].median_s
    ratio = cached["dvc"].median_s / ours
    summaries: dict[str, Any] = {
        name: {**series.summary(), "first_run_s": round(first[name].samples[0].wall_s, 4)}
        for name, series in cached.items()
    }
    summaries["loopml"]["command"] = "loopml run flow.py:chain"
    summaries["dvc"]["command"] = "dvc repro"
    return ScenarioResult(
        "chain-cached",
        f"a chain of {cfg.chain_steps} trivial steps, everything cached, run again from the CLI",
        summaries,
        [
            Goal("loopml s <= 0.5", ours, "<=", 0.5),
            Goal("dvc/loopml >= 4", ratio, ">=", 4.0),
        ],
        {
            "dvc/loopml": ratio,
            "dvc/loopml (first run)": first["dvc"].samples[0].wall_s
            / first["loopml"].samples[0].wall_s,
            **{f"loopml/{name}": ours / series.median_s for name, series in baselines.items()},
        },
        {
            "baselines": {name: series.summary() for name, series in baselines.items()},
            "dvc_reference_s": DVC_REFERENCE_S,
            "dvc_stage_command": f'{PEERS_VENV / "bin" / "python"} -c "{_STAGE_CODE}" IN OUT',
            "loopml_flow": "flow.py: 20 distinct @step functions (x: int) -> int returning x + 1, "
            "called one after another by @pipeline chain(start=0)",
        },
    )


def _child(cli: Loopml, workspace: Path, *args: str) -> tuple[dict[str, Any], Sample]:
    sample = run([cli.exe.parent / "python", CHILD, *args], cwd=workspace, env=cli.env, quiet=True)
    return child_result(sample), sample


def _flow_workspace(cli: Loopml, run_dir: Path, name: str, steps: int) -> Path:
    workspace = fresh_dir(run_dir, name)
    cli.init(workspace)
    write_flow(workspace, steps)
    time.sleep(AGE_S)
    return workspace


def step_overhead(cfg: Config, cli: Loopml, run_dir: Path) -> ScenarioResult:
    timed = Timed()
    for index, kept in _rounds(cfg.reps, cfg.warmup):
        log(f"step-overhead: round {index + 1 if kept else 'warm-up'}")
        workspace = _flow_workspace(cli, run_dir, "loopml-overhead", cfg.overhead_large)
        try:
            result, sample = _child(
                cli,
                workspace,
                "overhead",
                "--small",
                str(cfg.overhead_small),
                "--large",
                str(cfg.overhead_large),
                "--pairs",
                str(cfg.overhead_pairs),
            )
        finally:
            remove_tree(workspace)
        if kept:
            timed.add(result["seconds"], sample, result)
    per_step = timed.median_s
    summary = timed.summary()
    summary.update(
        {
            "median_ms_per_step": round(per_step * 1e3, 4),
            "fixed_s_median": round(timed.median_of("fixed_s"), 5),
            "large_per_step_ms_median": round(timed.median_of("large_per_step_s") * 1e3, 4),
            "method": timed.details[-1]["method"],
        }
    )
    return ScenarioResult(
        "step-overhead",
        f"uncached trivial steps in process: chains of {cfg.overhead_large} and "
        f"{cfg.overhead_small}, (t{cfg.overhead_large} - t{cfg.overhead_small}) / "
        f"{cfg.overhead_large - cfg.overhead_small}",
        {"loopml": summary},
        [Goal("ms per step <= 5", per_step * 1e3, "<=", 5.0)],
    )


def trace_scaling(cfg: Config, cli: Loopml, run_dir: Path) -> ScenarioResult:
    sizes = cfg.scaling_sizes
    kinds = ("trace_s", "plan_uncached_s", "first_run_s", "plan_cached_s", "cached_run_s")
    collected: dict[str, dict[str, list[float]]] = {str(n): {k: [] for k in kinds} for n in sizes}
    processes: list[Sample] = []
    method = ""
    for index, kept in _rounds(cfg.scaling_reps, cfg.warmup):
        log(f"trace-scaling: round {index + 1 if kept else 'warm-up'}")
        workspace = _flow_workspace(cli, run_dir, "loopml-scaling", max(sizes))
        try:
            result, sample = _child(
                cli,
                workspace,
                "scaling",
                "--sizes",
                ",".join(str(n) for n in sizes),
                "--trace-reps",
                str(cfg.trace_reps),
            )
        finally:
            remove_tree(workspace)
        if kept:
            processes.append(sample)
            method = result["method"]
            for n, values in result["sizes"].items():
                for kind in kinds:
                    collected[n][kind].append(values[kind])
    table: dict[str, Any] = {}
    for n in sizes:
        row: dict[str, Any] = {}
        for kind in kinds:
            median = statistics.median(collected[str(n)][kind])
            row[kind.removesuffix("_s") + "_median_s"] = round(median, 6)
            row[kind.removesuffix("_s") + "_ms_per_step"] = round(median / n * 1e3, 5)
        table[str(n)] = row
    smallest, largest = str(sizes[0]), str(sizes[-1])

    def flatness(kind: str) -> float:
        return table[largest][f"{kind}_ms_per_step"] / table[smallest][f"{kind}_ms_per_step"]

    ratios = {
        f"{kind} per step {largest}/{smallest}": flatness(kind)
        for kind in ("trace", "plan_cached", "cached_run", "first_run")
    }
    mid = "200" if "200" in table else largest
    return ScenarioResult(
        "trace-scaling",
        f"Pipeline.trace of DAGs of {', '.join(map(str, sizes))} steps (fan-in 2), time per step",
        {
            "loopml": {
                "sizes": table,
                "process_wall_s": [round(p.wall_s, 3) for p in processes],
                "other_load_samples": [
                    round(p.other_cpu_s / p.wall_s, 2) if p.wall_s else 0.0 for p in processes
                ],
                "method": method,
            }
        },
        [
            Goal(
                f"trace time per step flat: {largest} steps / {smallest} steps <= 1.5",
                ratios[f"trace per step {largest}/{smallest}"],
                "<=",
                1.5,
            )
        ],
        ratios,
        {f"trace_{mid}_steps_s": table[mid]["trace_median_s"]},
    )


# -- the suite ---------------------------------------------------------------------------------


def run_suite(
    cfg: Config, selected: Sequence[str], *, bytecode_cache: bool = True
) -> dict[str, Any]:
    run_dir = fresh_dir(WORK_DIR, "pipelines")
    started = time.time()
    try:
        cli = Loopml(run_dir, bytecode_cache)
        dvc = Dvc(run_dir)
        versions = {"loopml": cli.version(), "dvc": dvc.version()}
        log(f"tools: {versions}; work folder {run_dir}")
        chosen = set(selected)
        scenarios: list[ScenarioResult] = []
        if "chain-cached" in chosen:
            scenarios.append(chain_cached(cfg, cli, dvc, run_dir))
        if "step-overhead" in chosen:
            scenarios.append(step_overhead(cfg, cli, run_dir))
        if "trace-scaling" in chosen:
            scenarios.append(trace_scaling(cfg, cli, run_dir))
    finally:
        remove_tree(run_dir)
    return {
        "suite": "pipelines",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "quick": cfg.quick,
        "selected": list(selected),
        "config": {
            "chain_steps": cfg.chain_steps,
            "reps": cfg.reps,
            "overhead_small": cfg.overhead_small,
            "overhead_large": cfg.overhead_large,
            "overhead_pairs_per_process": cfg.overhead_pairs,
            "scaling_sizes": list(cfg.scaling_sizes),
            "scaling_reps": cfg.scaling_reps,
            "trace_reps_per_process": cfg.trace_reps,
            "warmup_round": cfg.warmup,
        },
        "method": (
            "chain-cached: wall-clock seconds of each real CLI as a child process (start-up "
            "included), both tools run once first, then one discarded warm-up round and the "
            "median of the kept cached re-runs, tools alternating order. step-overhead and "
            "trace-scaling: timed in-process (time.perf_counter) by bench/pipelines_child.py "
            "in a fresh workspace per child, with an untimed warm-up inside the child; medians "
            "over the kept children. Fresh workspaces under bench/work; flow files age 2.5 s "
            "before first use. Before each timed command the harness waits (up to 30 s) for "
            "other processes to use < 0.3 CPUs; other_load_samples gives the CPUs others used."
        ),
        "machine": machine_info(),
        "loopml": {**git_commit(), "version": versions["loopml"], **cli.notes()},
        "dvc": {
            "version": versions["dvc"],
            "executable": str(dvc.exe),
            "config": dvc.notes()["config"],
        },
        "scenarios": [scenario.as_dict() for scenario in scenarios],
        "all_goals_met": all(goal.met for scenario in scenarios for goal in scenario.goals),
    }


def print_report(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    by_name = {s["name"]: s for s in doc["scenarios"]}
    if "chain-cached" in by_name:
        s = by_name["chain-cached"]
        table = Table(title=f"loopml vs DVC {doc['dvc']['version']} — {s['description']}")
        for column in ("command", "cached re-run s", "min s", "max s", "first run s", "vs loopml"):
            table.add_column(column, justify="left" if column == "command" else "right")
        for name in ("loopml", "dvc"):
            t = s["tools"][name]
            ratio = "" if name == "loopml" else f"dvc/loopml {s['ratios']['dvc/loopml']:.2f}x"
            table.add_row(
                t["command"],
                f"{t['median_s']:.3f}",
                f"{t['min_s']:.3f}",
                f"{t['max_s']:.3f}",
                f"{t['first_run_s']:.3f}",
                ratio,
            )
        for name, t in s["notes"]["baselines"].items():
            table.add_row(
                f"[dim]{name}[/]",
                f"{t['median_s']:.3f}",
                f"{t['min_s']:.3f}",
                f"{t['max_s']:.3f}",
                "",
                "",
            )
        console.print(table)
    if "step-overhead" in by_name:
        s = by_name["step-overhead"]
        t = s["tools"]["loopml"]
        console.print(
            f"step-overhead: {t['median_ms_per_step']:.2f} ms per uncached trivial step "
            f"(samples {', '.join(f'{v * 1e3:.2f}' for v in t['samples_s'])} ms); "
            f"{t['fixed_s_median'] * 1e3:.1f} ms fixed per pipeline run"
        )
    if "trace-scaling" in by_name:
        s = by_name["trace-scaling"]
        table = Table(title=f"{s['description']} (ms per step; medians)")
        for column in (
            "steps",
            "trace",
            "plan (nothing run)",
            "first run",
            "plan (cached)",
            "cached run",
            "trace total ms",
        ):
            table.add_column(column, justify="right")
        for n, row in s["tools"]["loopml"]["sizes"].items():
            table.add_row(
                n,
                f"{row['trace_ms_per_step']:.4f}",
                f"{row['plan_uncached_ms_per_step']:.3f}",
                f"{row['first_run_ms_per_step']:.2f}",
                f"{row['plan_cached_ms_per_step']:.3f}",
                f"{row['cached_run_ms_per_step']:.2f}",
                f"{row['trace_median_s'] * 1e3:.2f}",
            )
        console.print(table)
    goals = Table(title="pipeline goals")
    for column in ("scenario", "goal", "measured", "met"):
        goals.add_column(column)
    for s in doc["scenarios"]:
        for goal in s["goals"]:
            goals.add_row(
                s["name"],
                goal["text"],
                f"{goal['value']:.3g}",
                "[green]yes[/]" if goal["met"] else "[red]NO[/]",
            )
    console.print(goals)
    noisy = []
    for s in doc["scenarios"]:
        for name, t in s["tools"].items():
            loads = t.get("other_load_samples", [])
            if loads and sum(load > QUIET_LOAD for load in loads) > len(loads) // 2:
                noisy.append(f"{s['name']}/{name}")
    if noisy:
        console.print(
            f"[yellow]warning:[/] other processes kept > {QUIET_LOAD} CPUs busy during most "
            f"samples of {', '.join(noisy)}; those numbers measure a shared machine"
        )
    verdict = "all goals met" if doc["all_goals_met"] else "some goals NOT met"
    console.print(
        f"{verdict}; loopml {doc['loopml']['commit']}"
        f"{' (+ uncommitted changes)' if doc['loopml']['dirty'] else ''}"
    )


__all__ = ["SCENARIOS", "Config", "dvc_yaml", "print_report", "run_suite"]
