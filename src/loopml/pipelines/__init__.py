"""Pipelines: ``@step`` and ``@pipeline`` in plain Python, with exact caching and lineage."""

from loopml.pipelines.errors import (
    PipelineDefinitionError,
    PipelineError,
    StepFailedError,
    StepTimeoutError,
)
from loopml.pipelines.pipeline import Pipeline, pipeline
from loopml.pipelines.runner import PipelineRun, RunOptions, StepResult
from loopml.pipelines.step import Step, step

__all__ = [
    "Pipeline",
    "PipelineDefinitionError",
    "PipelineError",
    "PipelineRun",
    "RunOptions",
    "Step",
    "StepFailedError",
    "StepResult",
    "StepTimeoutError",
    "pipeline",
    "step",
]
