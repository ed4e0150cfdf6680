"""``python -m bench.validation``: data contracts, loopml against pandera, on one big frame.

Both tools validate the same seeded frame (1,000,000 rows by 25 columns: integers, a nullable
integer, floats with and without NaN, categoricals, text, booleans, timestamps, unique ids)
against the same rules: a dtype and a null rule per column, and about 50 value checks (ranges,
allowed values, uniqueness, null shares, two row expressions, the row count). pandera gets the
equivalent ``DataFrameSchema`` (``lazy=True``, so that it, too, reports every failure); rules it
has no built-in for (null share, row count) are written as its vectorised custom checks.

Each tool runs in child processes of its own, loopml in ``.venv`` and pandera in
``bench/.venv-peers`` (``bench/.venv-peers/bin/pip install pandera``): one for time, one for
memory. Each child builds the frame, builds the schema, validates once untimed (imports,
caches), then measures:

* memory: the peak resident set size of one validation above the resident size just before
  it (``VmHWM`` reset through ``/proc/self/clear_refs`` where the kernel allows, else
  ``ru_maxrss``; big buffers are mapped and unmapped one by one, see ``MEMORY_ENV``), and the
  ``tracemalloc`` peak of one validation (numpy and Python allocations; Arrow's buffers are
  not traced, hence both);
* time: ``--reps`` validations timed with ``perf_counter``, median kept.

loopml checks big frames a column per thread (numpy and Arrow release the GIL), one thread per
CPU; ``loopml-1-thread`` is the same validation on one thread, reported beside it so that the
gain from the algorithms and the gain from the threads can be told apart. pandera runs on one.

Scenarios: ``clean`` (every check passes) and ``dirty`` (a few hundred bad rows in several
columns; both tools must find and report them). Goals from the issue: loopml at least 5x
faster than pandera, and its peak memory no more than the frame's own size again.

Writes ``bench/results/validation.json`` (``--rows`` other than the default or ``--quick``:
``validation-partial.json``). ``--strict`` exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from bench.harness import (
    LOOPML_VENV,
    PEERS_VENV,
    REPO_ROOT,
    BenchError,
    Goal,
    git_commit,
    log,
    machine_info,
    run,
    write_results,
)

DEFAULT_ROWS = 1_000_000
# Every big buffer gets its own mapping and goes back to the kernel when freed (glibc's
# default threshold adapts upward after the first free, after which freed arrays stay in the
# heap and a second validation shows no RSS growth at all); Arrow allocates through malloc
# too. Both tools run under the same settings.
MEMORY_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "131072",
    "MALLOC_TRIM_THRESHOLD_": "131072",
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}
SEED = 20_240_531
CATEGORIES = ["north", "south", "east", "west", "centre", "island", "coast", "alpine"]
LABELS = ["basic", "plus", "pro", "team", "enterprise"]
INT_MAX = 1000
TS_START = "2024-01-01"


# -- the frame and the rules, shared by both tools ----------------------------------------------


def build_frame(rows: int, dirty: bool) -> Any:
    """The seeded frame: 25 columns of the usual kinds (the same in both venvs)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(SEED)
    columns: dict[str, Any] = {"id": np.arange(rows, dtype=np.int64)}
    for i in range(6):
        columns[f"int_{i}"] = rng.integers(0, INT_MAX, rows, dtype=np.int64)
    nullable = rng.integers(0, INT_MAX, rows, dtype=np.int64)
    columns["int_nullable"] = pd.array(nullable, dtype="Int64")
    columns["int_nullable"][rng.random(rows) < 0.05] = pd.NA
    for i in range(8):
        values = rng.normal(100.0, 15.0, rows).clip(20.0, 180.0)
        if i >= 6:  # two float columns with 2% NaN
            values[rng.random(rows) < 0.02] = np.nan
        columns[f"float_{i}"] = values
    for i in range(3):
        codes = rng.integers(0, len(CATEGORIES), rows).astype(np.int8)
        columns[f"cat_{i}"] = pd.Categorical.from_codes(codes, categories=CATEGORIES)
    for i in range(3):
        columns[f"str_{i}"] = pd.Series(
            np.asarray(LABELS, dtype=object)[rng.integers(0, len(LABELS), rows)], dtype="str"
        )
    columns["flag"] = rng.random(rows) < 0.3
    seconds = rng.integers(0, 365 * 86_400, rows)
    columns["ts"] = pd.Timestamp(TS_START) + pd.to_timedelta(seconds, unit="s")
    columns["user"] = pd.Series([f"user-{i:08d}" for i in range(rows)], dtype="str")
    frame = pd.DataFrame(columns)
    if dirty:
        bad = rng.choice(rows, 300, replace=False)
        frame.loc[bad[:100], "int_0"] = INT_MAX + 5  # above max
        frame.loc[bad[100:150], "float_0"] = np.nan  # nulls in a non-null column
        frame.loc[bad[150:200], "str_0"] = "legacy"  # not an allowed value
        frame.loc[bad[200:220], "id"] = 0  # repeats
        frame.loc[bad[220:300], "float_1"] = -50.0  # below min; breaks an expression too
    return frame


def rules(rows: int) -> dict[str, Any]:
    """The rules both schemas encode, as plain data."""
    ranges: dict[str, tuple[Any, Any]] = {"id": (0, rows - 1)}
    for i in range(6):
        ranges[f"int_{i}"] = (0, INT_MAX - 1)
    ranges["int_nullable"] = (0, INT_MAX - 1)
    for i in range(8):
        ranges[f"float_{i}"] = (0.0, 200.0)
    ranges["ts"] = ("2023-12-01T00:00:00", "2025-01-31T00:00:00")
    return {
        "rows": (rows // 2, rows * 2),
        "ranges": ranges,
        "null_share": {"int_nullable": 0.06, "float_6": 0.03, "float_7": 0.03},
        "allowed": {
            **{f"cat_{i}": CATEGORIES for i in range(3)},
            **{f"str_{i}": LABELS for i in range(3)},
        },
        "unique": ["id", "user"],
        "expressions": {
            "ints_add_up": ("int_0 + int_1 >= 0", lambda df: df["int_0"] + df["int_1"] >= 0),
            "float_spread": (
                "float_0 < float_1 + 1000",
                lambda df: df["float_0"] < df["float_1"] + 1000,
            ),
        },
    }


def value_check_count(spec: dict[str, Any]) -> int:
    """Checks beyond a dtype and a null rule per column (the issue's "about 50 checks")."""
    return (
        2
        + 2 * len(spec["ranges"])
        + len(spec["null_share"])
        + len(spec["allowed"])
        + len(spec["unique"])
        + len(spec["expressions"])
    )


# -- the two tools -------------------------------------------------------------------------------


def loopml_validator(
    frame: Any, rows: int, workers: int | None = None
) -> tuple[Callable[[], Any], Callable[[Any], int]]:
    """loopml's contract; returns (validate, count_violations). ``workers=1``: one thread."""
    from loopml.validation import ColumnSpec, Contract, RowBounds

    spec = rules(rows)
    kinds = {
        "int64": "int",
        "Int64": "int",
        "float64": "float",
        "category": "category",
        "str": "string",
        "bool": "bool",
    }
    columns = []
    for name in frame.columns:
        dtype = str(frame[name].dtype)
        kind = "datetime" if dtype.startswith("datetime64") else kinds[dtype]
        low, high = spec["ranges"].get(name, (None, None))
        share = spec["null_share"].get(name)
        columns.append(
            ColumnSpec(
                name,
                kind,
                nullable=share is not None,
                max_null_share=share,
                min=low,
                max=high,
                allowed=spec["allowed"].get(name),
                unique=name in spec["unique"],
            )
        )
    contract = Contract(columns=columns, rows=RowBounds(*spec["rows"]))
    for name, (expression, _) in spec["expressions"].items():
        contract.add_check(name, expression)

    def validate() -> Any:
        return contract.validate(frame, workers=workers)

    def violations(report: Any) -> int:
        return sum(v.count or 1 for v in report.violations)

    return validate, violations


def pandera_validator(frame: Any, rows: int) -> tuple[Callable[[], Any], Callable[[Any], int]]:
    """The equivalent pandera schema; returns (validate, count_failure_cases)."""
    import pandas as pd
    import pandera.pandas as pa

    spec = rules(rows)
    columns = {}
    for name in frame.columns:
        checks = []
        low, high = spec["ranges"].get(name, (None, None))
        if name == "ts":
            low, high = pd.Timestamp(low), pd.Timestamp(high)
        if low is not None:
            checks += [pa.Check.ge(low), pa.Check.le(high)]
        if name in spec["allowed"]:
            checks.append(pa.Check.isin(spec["allowed"][name]))
        share = spec["null_share"].get(name)
        if share is not None:
            checks.append(
                pa.Check(lambda s, share=share: s.isna().mean() <= share, ignore_na=False)
            )
        columns[name] = pa.Column(
            frame[name].dtype,
            checks=checks,
            nullable=share is not None,
            unique=name in spec["unique"],
        )
    low_rows, high_rows = spec["rows"]
    table_checks = [pa.Check(lambda df: low_rows <= len(df) <= high_rows)]
    table_checks += [pa.Check(function) for _, function in spec["expressions"].values()]
    schema = pa.DataFrameSchema(columns, checks=table_checks)

    def validate() -> Any:
        try:
            schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            return exc.failure_cases
        return pd.DataFrame()

    def violations(failures: Any) -> int:
        return len(failures)

    return validate, violations


TOOLS: dict[str, Callable[[Any, int], tuple[Callable[[], Any], Callable[[Any], int]]]] = {
    "loopml": loopml_validator,
    "loopml-1-thread": lambda frame, rows: loopml_validator(frame, rows, workers=1),
    "pandera": pandera_validator,
}


# -- the child: build, warm up, measure -----------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def child(tool: str, rows: int, dirty: bool, reps: int, what: str) -> dict[str, Any]:
    """Build the frame and the schema, validate once untimed, then measure ``what``."""
    started = time.perf_counter()
    frame = build_frame(rows, dirty)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    validate, count = TOOLS[tool](frame, rows)
    setup_s = time.perf_counter() - started
    started = time.perf_counter()
    found = count(validate())  # warm-up: lazy imports, caches
    result: dict[str, Any] = {
        "tool": tool,
        "rows": rows,
        "columns": frame.shape[1],
        "dirty": dirty,
        "violations_found": found,
        "frame_bytes": int(frame.memory_usage(deep=True).sum()),
        "build_frame_s": round(build_s, 3),
        "setup_s": round(setup_s, 4),
        "first_validate_s": round(time.perf_counter() - started, 4),
    }
    if what == "memory":
        gc.collect()
        rss_before = _status_kib("VmRSS") or 0
        reset = _reset_peak()
        maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        validate()
        peak_kib = _status_kib("VmHWM") if reset else None
        if peak_kib is None:  # no reset: the lifetime peak only says something if it grew
            peak_kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, maxrss_before)
        gc.collect()
        tracemalloc.start()
        validate()
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["rss_peak_delta_bytes"] = max(0, (peak_kib - rss_before) * 1024)
        result["rss_peak_method"] = "VmHWM reset" if reset else "ru_maxrss"
        result["tracemalloc_peak_bytes"] = traced_peak
        return result
    times = []
    for _ in range(reps):
        gc.collect()
        started = time.perf_counter()
        validate()
        times.append(time.perf_counter() - started)
    result["median_s"] = round(statistics.median(times), 4)
    result["min_s"] = round(min(times), 4)
    result["samples_s"] = [round(t, 4) for t in times]
    return result


# -- the parent ------------------------------------------------------------------------------------


def _python(tool: str) -> str:
    venv = PEERS_VENV if tool == "pandera" else LOOPML_VENV  # loopml-1-thread: loopml's venv
    return str(venv / "bin" / "python")


def _child_run(tool: str, rows: int, dirty: bool, reps: int, what: str) -> dict[str, Any]:
    argv = [_python(tool), "-m", "bench.validation", "--child", tool, "--measure", what]
    argv += ["--rows", str(rows), "--reps", str(reps)] + (["--dirty"] if dirty else [])
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'src'}"}
    if what == "memory":
        env.update(MEMORY_ENV)
    sample = run(argv, cwd=REPO_ROOT, env=env, quiet=True)
    lines = [line for line in sample.output.splitlines() if line.startswith("{")]
    if not lines:
        raise BenchError(f"{tool} child printed no result:\n{sample.output[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["other_load"] = round(sample.other_cpu_s / sample.wall_s, 2) if sample.wall_s else 0.0
    return result


def measure(tool: str, rows: int, dirty: bool, reps: int) -> dict[str, Any]:
    """Time in one child (default allocator settings), memory in another (``MEMORY_ENV``)."""
    timed = _child_run(tool, rows, dirty, reps, "time")
    memory = _child_run(tool, rows, dirty, reps, "memory")
    timed["other_load_memory_run"] = memory.pop("other_load")
    for key in ("rss_peak_delta_bytes", "rss_peak_method", "tracemalloc_peak_bytes"):
        timed[key] = memory[key]
    return timed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validation", description=__doc__)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 3 reps")
    parser.add_argument("--reps", type=int, default=7, help="timed validations per child")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--child", choices=sorted(TOOLS), help=argparse.SUPPRESS)
    parser.add_argument("--dirty", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=["time", "memory"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.reps = 100_000, 3
    if args.child:
        result = child(args.child, args.rows, args.dirty, args.reps, args.measure or "time")
        print(json.dumps(result), flush=True)
        return 0
    if not (PEERS_VENV / "bin" / "python").exists():
        raise BenchError("no bench/.venv-peers: run `make bench-setup`, then pip install pandera")
    spec = rules(args.rows)
    scenarios: dict[str, Any] = {}
    goals: list[Goal] = []
    for name, dirty in (("clean", False), ("dirty", True)):
        results = {}
        tools = ("loopml", "pandera", "loopml-1-thread")
        for tool in tools if name == "clean" else tools[::-1]:
            log(f"{name}: {tool}, {args.rows:,} rows, 25 columns")
            results[tool] = measure(tool, args.rows, dirty, args.reps)
            log(
                f"  {results[tool]['median_s']:.3f} s, rss +"
                f"{results[tool]['rss_peak_delta_bytes'] / 2**20:.0f} MiB, traced "
                f"{results[tool]['tracemalloc_peak_bytes'] / 2**20:.0f} MiB, "
                f"{results[tool]['violations_found']} violations"
            )
        ours, theirs = results["loopml"], results["pandera"]
        serial = results["loopml-1-thread"]
        speedup = theirs["median_s"] / ours["median_s"] if ours["median_s"] else float("inf")
        serial_speedup = theirs["median_s"] / serial["median_s"] if serial["median_s"] else 0.0
        peak = max(ours["rss_peak_delta_bytes"], ours["tracemalloc_peak_bytes"])
        memory_ratio = peak / ours["frame_bytes"]
        scenarios[name] = {
            "loopml": ours,
            "loopml-1-thread": serial,
            "pandera": theirs,
            "speedup_vs_pandera": round(speedup, 2),
            "speedup_vs_pandera_1_thread": round(serial_speedup, 2),
            "loopml_peak_over_frame": round(memory_ratio, 3),
            "pandera_peak_over_frame": round(
                max(theirs["rss_peak_delta_bytes"], theirs["tracemalloc_peak_bytes"])
                / theirs["frame_bytes"],
                3,
            ),
        }
        goals.append(Goal(f"{name}: at least 5x faster than pandera", speedup, ">=", 5.0))
        goals.append(
            Goal(f"{name}: peak memory at most the frame's size (ratio)", memory_ratio, "<=", 1.0)
        )
    payload = {
        "benchmark": "validation",
        "rows": args.rows,
        "columns": 25,
        "value_checks": value_check_count(spec),
        "reps": args.reps,
        "scenarios": scenarios,
        "goals": [goal.as_dict() for goal in goals],
        "pandera_version": _pandera_version(),
        "git": git_commit(),
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    name = "validation" if args.rows == DEFAULT_ROWS and not args.quick else "validation-partial"
    path = write_results(name, payload)
    for goal in goals:
        log(f"{'met ' if goal.met else 'MISSED'} {goal.text}: {goal.value:.3f}")
    log(f"wrote {path}")
    return 1 if args.strict and not all(goal.met for goal in goals) else 0


def _pandera_version() -> str | None:
    code = "import importlib.metadata as m; print(m.version('pandera'))"
    try:
        return run([_python("pandera"), "-c", code]).output.strip() or None
    except BenchError:
        return None


if __name__ == "__main__":
    sys.exit(main())
