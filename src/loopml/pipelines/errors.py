"""Errors of pipelines."""

from __future__ import annotations

from loopml.errors import LoopMLError, UserInputError

__all__ = [
    "PipelineDefinitionError",
    "PipelineError",
    "StepFailedError",
    "StepTimeoutError",
]


class PipelineError(LoopMLError):
    """A pipeline cannot run."""


class PipelineDefinitionError(PipelineError, UserInputError):
    """The pipeline's code is not a valid DAG of steps (bad argument, type mismatch …)."""


class StepFailedError(PipelineError):
    """A step raised; the message names the step and carries the user's traceback."""

    def __init__(self, node: str, message: str, user_traceback: str) -> None:
        super().__init__(f"step {node!r} failed: {message}")
        self.node = node
        self.user_traceback = user_traceback


class StepTimeoutError(PipelineError):
    """A step ran longer than its timeout."""
