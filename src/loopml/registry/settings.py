"""Registry settings: which aliases are protected (``[registry]`` in ``loopml.toml``).

``LOOPML_PROTECTED_ALIASES`` (comma-separated, empty for none) overrides the file; the default
protects ``champion``, the alias the loop serves.
"""

from __future__ import annotations

import os
import tomllib
from typing import TYPE_CHECKING

from loopml.errors import ConfigError
from loopml.refs import validate_label

if TYPE_CHECKING:
    from loopml.store.workspace import Workspace

__all__ = ["DEFAULT_PROTECTED_ALIASES", "protected_aliases"]

DEFAULT_PROTECTED_ALIASES: tuple[str, ...] = ("champion",)


def protected_aliases(workspace: Workspace) -> frozenset[str]:
    """The aliases that only move with a passed gate or ``--force --reason``."""
    env = os.environ.get("LOOPML_PROTECTED_ALIASES")
    if env is not None:
        return frozenset(validate_label(a.strip(), "alias") for a in env.split(",") if a.strip())
    path = workspace.settings.config_path
    if not path.is_file():
        return frozenset(DEFAULT_PROTECTED_ALIASES)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or remove it") from None
    section = data.get("registry", {})
    if not isinstance(section, dict):
        raise ConfigError("[registry] in loopml.toml must be a table")
    value = section.get("protected_aliases", list(DEFAULT_PROTECTED_ALIASES))
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ConfigError(
            '[registry] protected_aliases in loopml.toml must be a list of names, e.g. ["champion"]'
        )
    return frozenset(validate_label(a, "alias") for a in value)
