"""In-process pipeline measurements, run by loopml's interpreter as a child of ``python -m bench``.

    .venv/bin/python bench/pipelines_child.py overhead --small 10 --large 50 --pairs 3
    .venv/bin/python bench/pipelines_child.py scaling --sizes 50,100,200,400 --trace-reps 20

The working directory is a fresh loopml workspace holding ``benchflow.py``, written by the parent
with ``write_flow`` (and left to age, so that loopml's per-process code-hash memo trusts its
mtime as it would for any file not edited in the last two seconds). The last line printed is
``BENCH-RESULT {json}``. ``write_flow`` and ``chain_source`` are used by the parent as well, so
this file imports nothing from loopml at module level.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

FLOW_MODULE = "benchflow"


def chain_source(n_steps: int) -> str:
    """A flow file with ``n_steps`` distinct trivial steps and two pipelines over them.

    ``chain(n)``: step i takes the output of step i-1 (the first takes ``start``).
    ``dag(n)``: step i takes the outputs of steps i-1 and (i-1)//2, so nodes have fan-in 2 and
    fan-out up to 3 (a binary-tree of skip edges over a chain).
    """
    lines = [
        f'"""{n_steps} trivial steps (written by bench/pipelines_child.py)."""',
        "",
        "from loopml import pipeline, step",
        "",
    ]
    for i in range(n_steps):
        lines += [
            "",
            "@step",
            f"def s{i:03d}(a: int, b: int = 0) -> int:",
            "    return a + b + 1",
            "",
        ]
    names = ", ".join(f"s{i:03d}" for i in range(n_steps))
    lines += [
        "",
        f"STEPS = [{names}]",
        "",
        "",
        "@pipeline",
        f"def chain(n: int = {n_steps}, start: int = 0):",
        "    x = STEPS[0](start)",
        "    for fn in STEPS[1:n]:",
        "        x = fn(x)",
        "    return x",
        "",
        "",
        "@pipeline",
        f"def dag(n: int = {n_steps}, start: int = 0):",
        "    outs = [STEPS[0](start)]",
        "    for i in range(1, n):",
        "        outs.append(STEPS[i](outs[i - 1], outs[(i - 1) // 2]))",
        "    return outs[-1]",
        "",
    ]
    return "\n".join(lines)


def explicit_chain_source(n_steps: int) -> str:
    """The CLI's flow: ``n_steps`` distinct steps called one after another, written out."""
    lines = [
        f'"""A chain of {n_steps} trivial steps (written by bench/pipelines_child.py)."""',
        "",
        "from loopml import pipeline, step",
        "",
    ]
    for i in range(n_steps):
        lines += ["", "@step", f"def s{i:02d}(x: int) -> int:", "    return x + 1", ""]
    lines += ["", "@pipeline", "def chain(start: int = 0):", "    x = s00(start)"]
    lines += [f"    x = s{i:02d}(x)" for i in range(1, n_steps)]
    lines += ["    return x", ""]
    return "\n".join(lines)


def write_flow(folder: Path, n_steps: int) -> Path:
    path = folder / f"{FLOW_MODULE}.py"
    path.write_text(chain_source(n_steps), encoding="utf-8")
    return path


def _flow() -> Any:
    sys.path.insert(0, str(Path.cwd()))
    import importlib

    return importlib.import_module(FLOW_MODULE)


def _timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def overhead(small: int, large: int, pairs: int) -> dict[str, Any]:
    """Per-step cost of uncached trivial steps: (t(large) - t(small)) / (large - small)."""
    from loopml.pipelines import RunOptions

    flow = _flow()
    options = RunOptions(cache=False)

    def run(n: int) -> Any:
        result = flow.chain.run({"n": n}, options=options)
        ran = [s.status for s in result.steps]
        if ran != ["ran"] * n:
            raise RuntimeError(f"expected {n} steps to run, got {ran}")
        return result

    # Untimed warm-up: opens the session, imports the materializers, fills per-process memos.
    run(small)
    run(large)
    times: dict[int, list[float]] = {small: [], large: []}
    for index in range(pairs):
        for n in (small, large) if index % 2 == 0 else (large, small):
            seconds, _ = _timed(lambda n=n: run(n))
            times[n].append(seconds)
    t_small = statistics.median(times[small])
    t_large = statistics.median(times[large])
    return {
        "seconds": (t_large - t_small) / (large - small),
        "small_s": times[small],
        "large_s": times[large],
        "fixed_s": t_small - small * (t_large - t_small) / (large - small),
        "large_per_step_s": t_large / large,
        "method": "Pipeline.run({'n': N}, options=RunOptions(cache=False)) of a chain of N "
        "distinct trivial steps (int -> int); per step = (median t(large) - median t(small)) / "
        "(large - small); fixed_s is the per-run cost that is left",
    }


def scaling(sizes: list[int], trace_reps: int) -> dict[str, Any]:
    """Trace (build + validate) and plan a DAG of N steps; run it, plan and run it cached."""
    from loopml.pipelines import RunOptions

    flow = _flow()
    out: dict[str, Any] = {}
    for n in sizes:
        # ``start`` differs per size, so no size finds another's steps in the cache.
        values = {"n": n, "start": n}
        params = flow.dag.bind(values)
        flow.dag.trace(params)  # untimed first trace
        traces = []
        for _ in range(trace_reps):
            seconds, graph = _timed(lambda params=params: flow.dag.trace(params))
            traces.append(seconds)
        if len(graph.nodes) != n:
            raise RuntimeError(f"traced {len(graph.nodes)} nodes, expected {n}")
        plan_new, planned = _timed(lambda values=values: flow.dag.plan(values))
        if len(planned) != n:
            raise RuntimeError(f"planned {len(planned)} steps, expected {n}")
        first_run, result = _timed(lambda values=values: flow.dag.run(values, options=RunOptions()))
        if [s.status for s in result.steps] != ["ran"] * n:
            raise RuntimeError("the first run of the DAG did not run every step")
        plan_cached, planned = _timed(lambda values=values: flow.dag.plan(values))
        if [p.action for p in planned] != ["cached"] * n:
            raise RuntimeError("the DAG is not cached after its run")
        cached_run, result = _timed(
            lambda values=values: flow.dag.run(values, options=RunOptions())
        )
        if [s.status for s in result.steps] != ["cached"] * n:
            raise RuntimeError("the cached run of the DAG ran steps")
        out[str(n)] = {
            "trace_s": statistics.median(traces),
            "trace_samples_s": traces,
            "plan_uncached_s": plan_new,
            "first_run_s": first_run,
            "plan_cached_s": plan_cached,
            "cached_run_s": cached_run,
            "edges": sum(len(node.upstream) for node in graph.nodes.values()),
        }
    return {
        "sizes": out,
        "method": "Pipeline.trace(params) of dag(n): n distinct steps, step i reading steps i-1 "
        "and (i-1)//2 (median of the trace repetitions); Pipeline.plan before any run "
        "(plan_uncached), Pipeline.run (first_run, every step runs), Pipeline.plan again "
        "(plan_cached: every step's cache key and lookup) and Pipeline.run again (cached_run)",
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("overhead")
    one.add_argument("--small", type=int, default=10)
    one.add_argument("--large", type=int, default=50)
    one.add_argument("--pairs", type=int, default=3)
    two = sub.add_parser("scaling")
    two.add_argument("--sizes", default="50,100,200,400")
    two.add_argument("--trace-reps", type=int, default=20)
    args = parser.parse_args()
    import loopml
    from loopml.tracking.fluent import session_workspace

    session_workspace()
    if args.what == "overhead":
        result = overhead(args.small, args.large, args.pairs)
    else:
        result = scaling([int(s) for s in args.sizes.split(",")], args.trace_reps)
    result["version"] = loopml.__version__
    print("BENCH-RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
