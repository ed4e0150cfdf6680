"""Errors and warnings of the model registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopml.errors import LoopMLError, NotFoundError, UserInputError

__all__ = [
    "AliasConflictError",
    "AmbiguousReferenceError",
    "ExtraColumnsWarning",
    "FrameworkVersionWarning",
    "GateFailedError",
    "GateFileError",
    "ModelNotFoundError",
    "ModelVersionNotFoundError",
    "ProtectedAliasError",
    "RegistryError",
    "SignatureError",
    "SignatureInferenceError",
    "UnsupportedModelError",
]


class RegistryError(LoopMLError):
    """A model registry operation cannot be done."""


class GateFileError(RegistryError, UserInputError):
    """A gate file cannot be read or does not describe a gate."""


class GateFailedError(RegistryError):
    """A promotion was refused because the gate failed; ``gate_run`` holds the report."""

    def __init__(self, message: str, *, gate_run: Any = None) -> None:
        super().__init__(message)
        self.gate_run = gate_run


class ModelNotFoundError(RegistryError, NotFoundError):
    """No registered model has that name."""


class ModelVersionNotFoundError(ModelNotFoundError):
    """A reference names no version of a model."""


class AliasConflictError(RegistryError):
    """An alias moved since the caller looked (compare-and-swap lost); nothing was changed."""


class AmbiguousReferenceError(RegistryError, UserInputError):
    """A hash prefix matches several versions."""


class ProtectedAliasError(RegistryError, UserInputError):
    """A protected alias can only move with a passed gate, or with ``--force --reason``."""


class UnsupportedModelError(RegistryError, UserInputError):
    """No model flavour can store the object."""


class SignatureInferenceError(RegistryError, UserInputError):
    """A signature cannot be inferred from the example (never skipped silently)."""


class SignatureError(RegistryError, UserInputError):
    """Input does not match a model's signature; ``problems`` lists ``(column, problem)``."""

    def __init__(self, message: str, problems: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.problems: list[tuple[str, str]] = list(problems)


class ExtraColumnsWarning(UserWarning):
    """Input has columns the signature does not know; they were ignored."""


class FrameworkVersionWarning(UserWarning):
    """A model is loaded with a different framework version than it was saved with."""
