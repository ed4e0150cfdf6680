"""``python -m bench`` (``make bench``): run the benchmarks and write bench/results/*.json.

Options:
  --quick        smaller inputs (a 128 MiB file, 2,000 small files) for a fast sanity run
  --only NAME    run only this scenario (repeatable, or comma-separated); see --list
  --reps N       kept rounds per scenario (default: 3 for the big file, 5 for the others)
  --no-warmup    skip the discarded warm-up round
  --no-bytecode-cache  run loopml as the dev venv has it: src/ without bytecode
  --quiet-wait S total seconds to wait for other processes to go idle (default 600)
  --strict       exit 1 when a goal is missed (default: report it and exit 0)

A full run writes bench/results/versioning.json; a --quick, --only (or other non-default) run writes
bench/results/versioning-partial.json, so that it never replaces the full results.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from bench.harness import PEERS_VENV, BenchError, log, set_quiet_budget, write_results


def main(argv: list[str] | None = None) -> int:
    from bench import versioning

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
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
        help="seconds, in all, to wait for other processes to go idle before samples",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)

    if args.list:
        print("\n".join(versioning.SCENARIOS))
        return 0
    selected = [name for item in args.only for name in item.split(",") if name]
    unknown = [name for name in selected if name not in versioning.SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario {unknown[0]!r}; choose from {', '.join(versioning.SCENARIOS)}"
        )
    if not (PEERS_VENV / "bin" / "dvc").exists():
        print(
            "bench/.venv-peers is missing (DVC to compare against): run `make bench-setup` first",
            file=sys.stderr,
        )
        return 2

    cfg = versioning.Config.small() if args.quick else versioning.Config.full()
    if args.reps is not None:
        cfg = replace(cfg, big_reps=max(1, args.reps), reps=max(1, args.reps))
    if args.no_warmup:
        cfg = replace(cfg, warmup=False)
    try:
        set_quiet_budget(args.quiet_wait)
        doc = versioning.run_suite(
            cfg,
            selected or list(versioning.SCENARIOS),
            bytecode_cache=not args.no_bytecode_cache,
        )
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    partial = (
        args.quick
        or bool(selected)
        or args.reps is not None
        or args.no_warmup
        or args.no_bytecode_cache
    )
    path = write_results("versioning-partial" if partial else "versioning", doc)
    versioning.print_report(doc)
    log(f"wrote {path.relative_to(path.parents[2])}")
    return 1 if args.strict and not doc["all_goals_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
