"""``python -m bench`` (``make bench``): run the benchmarks and write bench/results/*.json.

Options:
  --suite NAME   versioning, tracking or pipelines (repeatable, or comma-separated; default: all)
  --quick        smaller inputs (e.g. a 128 MiB file, 200 metric points) for a fast sanity run
  --only NAME    run only this scenario (repeatable, or comma-separated); see --list
  --reps N       kept rounds per scenario (default: each suite's own)
  --no-warmup    skip the discarded warm-up round
  --no-bytecode-cache  run loopml as the dev venv has it: src/ without bytecode
  --quiet-wait S total seconds to wait for other processes to go idle (default 600, per suite)
  --strict       exit 1 when a goal is missed (default: report it and exit 0)

A full run of a suite writes bench/results/SUITE.json; a --quick, --only (or other non-default)
run writes bench/results/SUITE-partial.json, so that it never replaces the full results.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.harness import PEERS_VENV, BenchError, log, set_quiet_budget, write_results

SUITES = ("versioning", "tracking", "pipelines")


def _suite(name: str) -> ModuleType:
    from bench import pipelines, tracking, versioning

    return {"versioning": versioning, "tracking": tracking, "pipelines": pipelines}[name]


def _has_mlflow() -> bool:
    return any((PEERS_VENV / "lib").glob("python*/site-packages/mlflow/__init__.py"))


def _missing_peers(suites: list[str]) -> str | None:
    needs_dvc = {"versioning", "pipelines"} & set(suites)
    if needs_dvc and not (PEERS_VENV / "bin" / "dvc").exists():
        return "bench/.venv-peers is missing DVC (to compare against): run `make bench-setup` first"
    if "tracking" in suites and not _has_mlflow():
        return (
            "bench/.venv-peers is missing MLflow (to compare against): run `make bench-setup` first"
        )
    return None


def _config(name: str, args: argparse.Namespace) -> Any:
    module = _suite(name)
    cfg = module.Config.small() if args.quick else module.Config.full()
    if args.reps is not None:
        reps = max(1, args.reps)
        fields = {
            "versioning": {"big_reps": reps, "reps": reps},
            "tracking": {"reps": reps, "metric_reps": reps},
            "pipelines": {"reps": reps, "scaling_reps": reps},
        }[name]
        cfg = replace(cfg, **fields)
    if args.no_warmup:
        cfg = replace(cfg, warmup=False)
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--suite",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only this suite: {', '.join(SUITES)} (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="small inputs, for a sanity run")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this scenario (repeatable)",
    )
    parser.add_argument("--reps", type=int, default=None, help="kept rounds per scenario")
    parser.add_argument("--no-warmup", action="store_true", help="no discarded warm-up round")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run loopml without a bytecode cache when src/ has none (as the dev venv does)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds, in all (per suite), to wait for other processes to go idle before samples",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)

    suites = [name for item in args.suite for name in item.split(",") if name]
    unknown_suites = [name for name in suites if name not in SUITES]
    if unknown_suites:
        parser.error(f"unknown suite {unknown_suites[0]!r}; choose from {', '.join(SUITES)}")
    scenarios_of = {name: tuple(_suite(name).SCENARIOS) for name in SUITES}
    if args.list:
        for name in suites or SUITES:
            print("\n".join(f"{name}: {scenario}" for scenario in scenarios_of[name]))
        return 0
    selected = [name for item in args.only for name in item.split(",") if name]
    known = {scenario: suite for suite, names in scenarios_of.items() for scenario in names}
    unknown = [name for name in selected if name not in known]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(known)}")
    if not suites:
        suites = sorted({known[name] for name in selected}, key=SUITES.index) or list(SUITES)
    stray = [name for name in selected if known[name] not in suites]
    if stray:
        parser.error(f"scenario {stray[0]!r} belongs to suite {known[stray[0]]!r}, not selected")
    missing = _missing_peers(suites)
    if missing:
        print(missing, file=sys.stderr)
        return 2

    partial = args.quick or bool(selected) or args.reps is not None or args.no_warmup
    partial = partial or args.no_bytecode_cache
    failed = False
    missed = False
    for name in suites:
        module = _suite(name)
        chosen = [s for s in selected if known[s] == name] or list(module.SCENARIOS)
        log(f"suite {name}: {', '.join(chosen)}")
        try:
            set_quiet_budget(args.quiet_wait)
            doc = module.run_suite(
                _config(name, args), chosen, bytecode_cache=not args.no_bytecode_cache
            )
        except BenchError as exc:
            print(f"benchmark suite {name} failed: {exc}", file=sys.stderr)
            failed = True
            continue
        path: Path = write_results(f"{name}-partial" if partial else name, doc)
        module.print_report(doc)
        log(f"wrote {path.relative_to(path.parents[2])}")
        missed = missed or not doc["all_goals_met"]
    if failed:
        return 1
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
