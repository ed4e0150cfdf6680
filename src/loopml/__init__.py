"""loopml: a local-first, closed-loop MLOps system.

The user-facing names are re-exported here and imported on first use, so that ``import loopml``
(and every ``loopml`` command, which imports this package first) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loopml._version import __version__

if TYPE_CHECKING:
    from loopml import data
    from loopml.artifacts.registry import materializer
    from loopml.pipelines import pipeline, step
    from loopml.registry import load_model, log_model
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
    from loopml.validation import api as contract

_TRACKING = (
    "ActiveRun",
    "Run",
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
)
_HOME: dict[str, str] = {
    **dict.fromkeys(_TRACKING, "loopml.tracking"),
    "load_model": "loopml.registry",
    "log_model": "loopml.registry",
    "materializer": "loopml.artifacts.registry",
    "pipeline": "loopml.pipelines",
    "step": "loopml.pipelines",
}

__all__ = [
    "ActiveRun",
    "Run",
    "__version__",
    "active_run",
    "contract",
    "data",
    "end_run",
    "get_run",
    "load_model",
    "log_artifact",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_model",
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


def __getattr__(name: str) -> Any:
    if name == "data":
        return importlib.import_module("loopml.data")
    if name == "contract":  # loopml.contract.infer / load / Contract
        return importlib.import_module("loopml.validation.api")
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'loopml' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
