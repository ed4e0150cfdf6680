"""Value objects of the model registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.registry.signature import Signature

__all__ = [
    "AliasEvent",
    "DatasetInput",
    "GateResult",
    "Lineage",
    "ModelVersion",
    "RegisteredModel",
    "VersionStatus",
]


class VersionStatus:
    """The states of a model version."""

    READY = "ready"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class DatasetInput:
    """A dataset version the training run had read."""

    dataset: str
    version: int
    hash: str

    @property
    def label(self) -> str:
        """``name@vN``."""
        return f"{self.dataset}@v{self.version}"


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A model name and a summary of its versions."""

    id: str
    name: str
    description: str | None
    created_at: int
    created_by: str
    version_count: int = 0
    latest: int | None = None  # the newest version that is not archived
    updated_at: int | None = None  # when the newest version was logged
    aliases: Mapping[str, int] = field(default_factory=dict)  # alias → version number


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One stored model; ``digest`` is its serialised object in the store."""

    id: str
    model: str
    number: int
    digest: str
    size: int
    flavor: str
    flavor_options: Mapping[str, Any]
    framework: str
    framework_version: str
    model_class: str
    signature: Signature | None
    run_id: str | None
    description: str | None
    status: str
    created_at: int
    created_by: str
    archived_at: int | None = None
    aliases: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``name@vN``."""
        return f"{self.model}@v{self.number}"

    @property
    def archived(self) -> bool:
        """Whether the version is archived (kept, but no longer ``latest`` or aliasable)."""
        return self.status == VersionStatus.ARCHIVED


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a model version came from: the run that logged it and the data that run read."""

    model_version_id: str
    run_id: str | None
    datasets: tuple[DatasetInput, ...]
    digest: str


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One move of an alias: who, when, from which version to which (None: unset), and why."""

    id: str
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    user: str
    created_at: int
    reason: str
    gate_result_id: str | None
    forced: bool


@dataclass(frozen=True, slots=True)
class GateResult:
    """A promotion gate's verdict on a candidate version (against the champion of the time)."""

    id: str
    model_version_id: str
    gate_file_hash: str
    data_hash: str
    champion_version_id: str | None
    passed: bool
    report: str
    created_at: int
    user: str
