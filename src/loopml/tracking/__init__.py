"""Experiment tracking: runs, params, metrics, artifacts, manifests and search."""

from loopml.tracking.api import Run, get_run, search_runs
from loopml.tracking.fluent import (
    ActiveRun,
    active_run,
    end_run,
    log_artifact,
    log_dict,
    log_figure,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_table,
    seed,
    set_tag,
    set_tags,
    start_run,
)
from loopml.tracking.model import Metric, RunInfo, RunStatus

__all__ = [
    "ActiveRun",
    "Metric",
    "Run",
    "RunInfo",
    "RunStatus",
    "active_run",
    "end_run",
    "get_run",
    "log_artifact",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "search_runs",
    "seed",
    "set_tag",
    "set_tags",
    "start_run",
]
