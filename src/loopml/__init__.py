"""loopml: a local-first, closed-loop MLOps system."""

from loopml import data
from loopml._version import __version__
from loopml.artifacts.registry import materializer
from loopml.pipelines import pipeline, step
from loopml.tracking import (
    ActiveRun,
    Run,
    active_run,
    end_run,
    get_run,
    log_artifact,
    log_dict,
    log_figure,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_table,
    search_runs,
    seed,
    set_tag,
    set_tags,
    start_run,
)

__all__ = [
    "ActiveRun",
    "Run",
    "__version__",
    "active_run",
    "data",
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
    "materializer",
    "pipeline",
    "search_runs",
    "seed",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
]
