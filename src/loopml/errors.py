"""The root of every error loopml raises on purpose.

Each layer defines its own subclasses next to its code; every message is one line that tells the
user what went wrong and what to do about it. The CLI prints ``str(error)`` and exits with
``error.exit_code``; anything that is not a ``LoopMLError`` is a bug and shows a traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InvalidReferenceError",
    "LoopMLError",
    "NotFoundError",
    "UserInputError",
    "WorkspaceNotFoundError",
]


class LoopMLError(Exception):
    """Base class of all expected loopml failures."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UserInputError(LoopMLError):
    """An argument, flag, path or file given by the user cannot be used."""

    exit_code = 2


class ConfigError(UserInputError):
    """A setting in ``loopml.toml`` or the environment is invalid."""


class InvalidReferenceError(UserInputError):
    """A ``NAME@REF`` reference is malformed."""


class NotFoundError(LoopMLError):
    """Something the user named does not exist."""


class WorkspaceNotFoundError(NotFoundError):
    """No ``.loopml`` workspace was found from the current folder upward."""
