"""Errors of the explainability layer (model cards, explanations)."""

from __future__ import annotations

from loopml.errors import LoopMLError, UserInputError

__all__ = ["CardWriteError", "ExplainError"]


class ExplainError(LoopMLError):
    """An explanation or a model card cannot be made."""


class CardWriteError(ExplainError, UserInputError):
    """A model card cannot be written where it was asked to go."""
