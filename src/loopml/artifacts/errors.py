"""Errors of the serializers."""

from __future__ import annotations

from loopml.errors import LoopMLError, UserInputError

__all__ = ["ArtifactError", "UnsafeLoadError", "UnsupportedTypeError"]


class ArtifactError(LoopMLError):
    """A value cannot be saved or loaded."""


class UnsupportedTypeError(ArtifactError, UserInputError):
    """No materializer handles the value's type."""


class UnsafeLoadError(ArtifactError):
    """Loading would execute code from data loopml did not write and verify."""
