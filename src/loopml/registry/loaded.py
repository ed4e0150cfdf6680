"""A loaded model version: the model, its signature, version record and lineage."""

from __future__ import annotations

from typing import Any

from loopml.registry.model import Lineage, ModelVersion
from loopml.registry.signature import Signature

__all__ = ["LoadedModel", "ProbabilisticModel"]


class LoadedModel:
    """A model version ready to predict; input is checked against its signature first.

    ``predict_proba`` exists only where the model has it (see :class:`ProbabilisticModel`),
    so ``hasattr(loaded, "predict_proba")`` answers the question.
    """

    def __init__(self, model: Any, version: ModelVersion, lineage: Lineage) -> None:
        self.model = model
        self.version = version
        self.lineage = lineage

    @property
    def signature(self) -> Signature | None:
        """The input signature, or ``None`` when the model was logged without an example."""
        return self.version.signature

    @property
    def label(self) -> str:
        """``name@vN``."""
        return self.version.label

    def prepare(self, data: Any) -> Any:
        """``data`` checked and converted to what the model was trained on."""
        if self.version.signature is None:
            return data
        return self.version.signature.check(data, what=self.label)

    def predict(self, data: Any) -> Any:
        """The model's predictions for ``data``."""
        return self.model.predict(self.prepare(data))

    def __repr__(self) -> str:
        return f"<LoadedModel {self.label} ({self.version.model_class})>"


class ProbabilisticModel(LoadedModel):
    """A loaded model whose flavour gives class probabilities."""

    def predict_proba(self, data: Any) -> Any:
        """Class probabilities for ``data`` (columns in the order of ``signature.output``)."""
        return self.model.predict_proba(self.prepare(data))
