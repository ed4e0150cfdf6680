"""Registry settings from ``[registry]`` in ``loopml.toml``: protected aliases and, per model,
the default gate file and holdout of ``models promote``::

    [registry]
    protected_aliases = ["champion"]

    [registry.models.churn]
    gate = "gates.yaml"          # relative to the workspace root
    holdout = "churn-holdout@latest"

``LOOPML_PROTECTED_ALIASES`` (comma-separated, empty for none) overrides the file; the default
protects ``champion``, the alias the loop serves.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import ConfigError
from loopml.refs import validate_label

if TYPE_CHECKING:
    from loopml.store.workspace import Workspace

__all__ = ["DEFAULT_PROTECTED_ALIASES", "ModelDefaults", "model_defaults", "protected_aliases"]

DEFAULT_PROTECTED_ALIASES: tuple[str, ...] = ("champion",)


@dataclass(frozen=True, slots=True)
class ModelDefaults:
    """A model's default gate file and holdout for ``models promote`` (None: not set)."""

    gate: Path | None = None
    holdout: str | None = None


def _registry_section(workspace: Workspace) -> dict[str, Any]:
    path = workspace.settings.config_path
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or remove it") from None
    section = data.get("registry", {})
    if not isinstance(section, dict):
        raise ConfigError("[registry] in loopml.toml must be a table")
    return section


def model_defaults(workspace: Workspace, name: str) -> ModelDefaults:
    """``[registry.models.NAME]``: the gate file (a path under the workspace) and holdout."""
    models = _registry_section(workspace).get("models", {})
    entry = models.get(name, {}) if isinstance(models, dict) else None
    if not isinstance(entry, dict):
        raise ConfigError(f"[registry.models.{name}] in loopml.toml must be a table")
    for key in entry:
        if key not in ("gate", "holdout"):
            raise ConfigError(
                f"[registry.models.{name}] in loopml.toml: unknown key {key!r} (gate, holdout)"
            )
    gate = entry.get("gate")
    holdout = entry.get("holdout")
    if gate is not None and not isinstance(gate, str):
        raise ConfigError(f'[registry.models.{name}] gate must be a path, e.g. "gates.yaml"')
    if holdout is not None and not isinstance(holdout, str):
        raise ConfigError(
            f'[registry.models.{name}] holdout must be a dataset version, e.g. "holdout@v2"'
        )
    gate_path = None
    if gate is not None:
        gate_path = Path(gate)
        if not gate_path.is_absolute():
            gate_path = workspace.root / gate_path
    if holdout is not None and "@" not in holdout and (workspace.root / holdout).is_file():
        holdout = str(workspace.root / holdout)  # a file, like the gate, under the workspace
    return ModelDefaults(gate=gate_path, holdout=holdout)


def protected_aliases(workspace: Workspace) -> frozenset[str]:
    """The aliases that only move with a passed gate or ``--force --reason``."""
    env = os.environ.get("LOOPML_PROTECTED_ALIASES")
    if env is not None:
        return frozenset(validate_label(a.strip(), "alias") for a in env.split(",") if a.strip())
    if not workspace.settings.config_path.is_file():
        return frozenset(DEFAULT_PROTECTED_ALIASES)
    section = _registry_section(workspace)
    value = section.get("protected_aliases", list(DEFAULT_PROTECTED_ALIASES))
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ConfigError(
            '[registry] protected_aliases in loopml.toml must be a list of names, e.g. ["champion"]'
        )
    return frozenset(validate_label(a, "alias") for a in value)
