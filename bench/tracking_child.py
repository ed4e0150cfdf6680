"""One tracking measurement inside one tool's own interpreter (a child of ``python -m bench``).

    <interpreter> bench/tracking_child.py TOOL SCENARIO [--n N] [--calls K] [--seed S]

TOOL is ``loopml`` (run with ``.venv/bin/python``) or ``mlflow`` (run with the peers venv's
python); the working directory is a fresh workspace (loopml: made by ``loopml init``; MLflow: an
empty folder that gets ``mlflow.db`` and ``mlruns/``). This file imports nothing but the standard
library and the tool, so it runs under either interpreter. Timing is in-process, with
``time.perf_counter`` around the calls only: imports, opening the store and making the inputs are
outside it. The last line printed is ``BENCH-RESULT {json}``.

Scenarios:

``log-metric``  N single ``log_metric`` calls in one run, then the flush that makes them durable
                (MLflow's synchronous default has nothing to flush; its asynchronous modes are
                chosen by the parent through ``--variant`` and the environment).
``log-batch``   N points of one metric, steps 0..N-1, handed over in one call and flushed.
``runs``        N runs, each started, given 10 params and ended (one untimed run first).
``populate``    N finished runs with 3 params and metrics ``acc`` (seeded) and ``loss`` (untimed;
                the workspace is then searched by ``search``).
``search``      ``search_runs`` with ``metrics.acc > 0.5`` over the populated runs: the first call
                in this process (the store already open) and K more.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

FILTER = "metrics.acc > 0.5"
EXPERIMENT = "bench"
MAX_RESULTS = 50_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _values(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(n)]


# -- loopml --------------------------------------------------------------------------------------


class LoopmlTool:
    def __init__(self) -> None:
        import loopml
        from loopml.tracking.fluent import session_workspace

        self.loopml = loopml
        session_workspace()  # open the workspace's tracking session (store + writer): untimed

    def version(self) -> str:
        return str(self.loopml.__version__)

    def log_metric(self, n: int, variant: str, seed: int) -> dict[str, Any]:
        loopml = self.loopml
        values = _values(n, seed)
        run = loopml.start_run(experiment=EXPERIMENT)
        writer = run._session.writer
        started = time.perf_counter()
        for step, value in enumerate(values):
            loopml.log_metric("loss", value, step=step)
        logged = time.perf_counter()
        writer.flush(run.id)  # what run.end() and get_run() do first: the points are in the DB
        flushed = time.perf_counter()
        stored = run._session.store.count_points(run.id, "loss")
        loopml.end_run()
        ended = time.perf_counter()
        return {
            "seconds": flushed - started,
            "calls_s": logged - started,
            "flush_s": flushed - logged,
            "end_run_s": ended - flushed,
            "stored_points": stored,
            "method": "loopml.log_metric(key, value, step=i) x N, then "
            "run._session.writer.flush(run.id) (the flush run.end() starts with); "
            "start_run defaults (system metrics on)",
        }

    def log_batch(self, n: int, variant: str, seed: int) -> dict[str, Any]:
        from loopml.tracking.model import Metric

        loopml = self.loopml
        stamp = _now_ms()
        points = [Metric("loss", v, i, stamp) for i, v in enumerate(_values(n, seed))]
        run = loopml.start_run(experiment=EXPERIMENT)
        writer = run._session.writer
        started = time.perf_counter()
        writer.add(run.id, metrics=points)
        writer.flush(run.id)
        flushed = time.perf_counter()
        stored = run._session.store.count_points(run.id, "loss")
        loopml.end_run()
        # The store-level call on its own, in a second run of the same process (for the notes).
        other = loopml.start_run(experiment=EXPERIMENT)
        store = other._session.store
        direct_started = time.perf_counter()
        store.log_batch(other.id, metrics=points)
        direct = time.perf_counter() - direct_started
        direct_stored = store.count_points(other.id, "loss")
        loopml.end_run()
        return {
            "seconds": flushed - started,
            "stored_points": stored,
            "store_log_batch_s": direct,
            "store_log_batch_points": direct_stored,
            "method": "no public loopml call takes N points of one key with their steps "
            "(log_metrics takes one step for a mapping of keys), so the points go through the "
            "run's background writer as log_metric's do: "
            "run._session.writer.add(run.id, metrics=[Metric(key, value, step, ts) x N]) + "
            "writer.flush(run.id); store_log_batch_s is SqlTrackingStore.log_batch alone",
        }

    def runs(self, n: int, variant: str, seed: int) -> dict[str, Any]:
        loopml = self.loopml
        params = {f"param_{j}": j * 1.5 for j in range(10)}
        with loopml.start_run(experiment=EXPERIMENT) as first:  # untimed: creates the experiment
            first.log_params(params)
        started = time.perf_counter()
        for _ in range(n):
            with loopml.start_run(experiment=EXPERIMENT) as run:
                run.log_params(params)
        elapsed = time.perf_counter() - started
        frame = loopml.search_runs(experiment=EXPERIMENT, max_results=MAX_RESULTS)
        finished = int((frame["status"] == "finished").sum())
        last = loopml.get_run(run.id)
        return {
            "seconds": elapsed,
            "runs_finished": finished,
            "params_on_last_run": len(last.params),
            "method": "with loopml.start_run(experiment=...) as run: run.log_params({10 params}) "
            "x N (defaults: system metrics on, manifest written at the end)",
        }

    def populate(self, n: int, variant: str, seed: int) -> dict[str, Any]:
        loopml = self.loopml
        rng = random.Random(seed)
        started = time.perf_counter()
        for index in range(n):
            with loopml.start_run(experiment=EXPERIMENT, system_metrics=False) as run:
                run.log_params({"depth": index % 8, "lr": 0.01 * (index % 5), "model": "gbm"})
                run.log_metrics({"acc": rng.random(), "loss": rng.random()})
        return {"seconds": time.perf_counter() - started, "runs": n}

    def search(self, calls: int) -> tuple[Any, list[float], int]:
        loopml = self.loopml
        timings = []
        frame = None
        for _ in range(1 + calls):
            started = time.perf_counter()
            frame = loopml.search_runs(
                experiment=EXPERIMENT, filter=FILTER, max_results=MAX_RESULTS
            )
            timings.append(time.perf_counter() - started)
        assert frame is not None
        return frame, timings, len(frame)


# -- MLflow --------------------------------------------------------------------------------------


class MlflowTool:
    def __init__(self) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.mlflow = mlflow
        mlflow.set_tracking_uri(f"sqlite:///{Path.cwd() / 'mlflow.db'}")
        # Untimed: creates (or opens) the database, runs its migrations, sets the experiment.
        mlflow.set_experiment(EXPERIMENT)
        self.client = MlflowClient()

    def version(self) -> str:
        return str(self.mlflow.__version__)

    def log_metric(self, n: int, variant: str, seed: int) -> dict[str, Any]:
        mlflow = self.mlflow
        values = _values(n, seed)
        synchronous = variant == "sync"
        run = mlflow.start_run()
        started = time.perf_counter()
        if synchronous:
            for step, value in enumerate(values):
                mlflow.log_metric("loss", value, step=step)
        else:
            for step, value in enumerate(values):
                mlflow.log_metric("loss", value, step=step, synchronous=False)
        logged = time.perf_counter()
        if not synchronous:
            mlflow.flush_async_logging()
        flushed = time.perf_counter()
        stored = len(self.client.get_metric_history(run.info.run_id, "loss"))
        mlflow.end_run()
        ended = time.perf_counter()
        return {
            "seconds": flushed - started,
            "calls_s": logged - started,
            "flush_s": flushed - logged,
            "end_run_s": ended - flushed,
            "stored_points": stored,
            "method": (
                "mlflow.log_metric(key, value, step=i) x N (synchronous, the default)"
                if synchronous
                else "mlflow.log_metric(key, value, step=i, synchronous=False) x N, then "
                "mlflow.flush_async_logging(); MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS="
                + os.environ.get("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "unset")
            ),
        }

    def log_batch(self, n: int, variant: str, seed: int) -> dict[str, Any]:
        from mlflow.entities import Metric

        mlflow = self.mlflow
        stamp = _now_ms()
        points = [Metric("loss", v, stamp, i) for i, v in enumerate(_values(n, seed))]
        run = mlflow.start_run()
        started = time.perf_counter()
        self.client.log_batch(run.info.run_id, metrics=points)
        elapsed = time.perf_counter() - started
        stored = len(self.client.get_metric_history(run.info.run_id, "loss"))
        mlflow.end_run()
        return {
            "seconds": elapsed,
            "stored_points": stored,
            "method": "MlflowClient().log_batch(run_id, metrics=[Metric(key, value, ts, step) "
            "x N]) (the client splits it into MLflow's batches of 1,000)",
        }

    def runs(self, n: int, variant: str, seed: int) -> dict[str, Any]:
        mlflow = self.mlflow
        params = {f"param_{j}": j * 1.5 for j in range(10)}
        with mlflow.start_run():  # untimed, as loopml's first run
            mlflow.log_params(params)
        started = time.perf_counter()
        for _ in range(n):
            with mlflow.start_run() as run:
                mlflow.log_params(params)
        elapsed = time.perf_counter() - started
        frame = mlflow.search_runs(experiment_names=[EXPERIMENT], max_results=MAX_RESULTS)
        finished = int((frame["status"] == "FINISHED").sum())
        last = self.client.get_run(run.info.run_id)
        return {
            "seconds": elapsed,
            "runs_finished": finished,
            "params_on_last_run": len(last.data.params),
            "method": "with mlflow.start_run(): mlflow.log_params({10 params}) x N (defaults)",
        }

    def populate(self, n: int, variant: str, seed: int) -> dict[str, Any]:
        from mlflow.entities import Metric, Param

        rng = random.Random(seed)
        experiment = self.mlflow.get_experiment_by_name(EXPERIMENT)
        started = time.perf_counter()
        for index in range(n):
            run = self.client.create_run(experiment.experiment_id)
            stamp = _now_ms()
            self.client.log_batch(
                run.info.run_id,
                metrics=[
                    Metric("acc", rng.random(), stamp, 0),
                    Metric("loss", rng.random(), stamp, 0),
                ],
                params=[
                    Param("depth", str(index % 8)),
                    Param("lr", str(0.01 * (index % 5))),
                    Param("model", "gbm"),
                ],
            )
            self.client.set_terminated(run.info.run_id)
        return {"seconds": time.perf_counter() - started, "runs": n}

    def search(self, calls: int) -> tuple[Any, list[float], int]:
        mlflow = self.mlflow
        timings = []
        frame = None
        for _ in range(1 + calls):
            started = time.perf_counter()
            frame = mlflow.search_runs(
                experiment_names=[EXPERIMENT], filter_string=FILTER, max_results=MAX_RESULTS
            )
            timings.append(time.perf_counter() - started)
        assert frame is not None
        return frame, timings, len(frame)


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tool", choices=("loopml", "mlflow"))
    parser.add_argument(
        "scenario", choices=("log-metric", "log-batch", "runs", "populate", "search")
    )
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20240404)
    parser.add_argument("--variant", default="default")
    args = parser.parse_args()

    # Both tools return DataFrames from search; pandas is imported before any timing, as a user's
    # notebook or script has it already.
    import pandas  # noqa: F401

    opened = time.perf_counter()
    tool: Any = LoopmlTool() if args.tool == "loopml" else MlflowTool()
    result: dict[str, Any] = {"open_store_s": time.perf_counter() - opened}
    if args.scenario == "search":
        frame, timings, rows = tool.search(args.calls)
        acc = frame["metrics.acc"]
        result.update(
            {
                "seconds": timings[0],
                "first_call_s": timings[0],
                "repeat_calls_s": timings[1:],
                "rows": rows,
                "all_match": bool((acc > 0.5).all()),
                "method": "loopml.search_runs(experiment=..., filter=F, max_results=M)"
                if args.tool == "loopml"
                else "mlflow.search_runs(experiment_names=[...], filter_string=F, max_results=M)",
                "filter": FILTER,
            }
        )
    else:
        result.update(
            getattr(tool, args.scenario.replace("-", "_"))(args.n, args.variant, args.seed)
        )
    result["version"] = tool.version()
    result["python"] = sys.version.split()[0]
    print("BENCH-RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
