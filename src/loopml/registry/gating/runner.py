"""Running a gate: a candidate version, a gate file and a holdout in; a recorded verdict out.

The verdict is kept in the registry keyed by (model version, gate file hash, data hash, champion
version), which is what a protected alias move checks, and what ``promote`` reuses while it
still applies.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import UserInputError
from loopml.refs import Ref, RefKind, validate_label
from loopml.registry.errors import GateFileError, RegistryError
from loopml.registry.gating.report import ConfusionMatrix, GateReport, Residuals, SliceTable
from loopml.registry.gating.spec import GateSpec, load_gate
from loopml.registry.model import GateResult, ModelVersion

if TYPE_CHECKING:
    import pandas as pd

    from loopml.registry.loaded import LoadedModel
    from loopml.store.workspace import Workspace

__all__ = [
    "GateRun",
    "Holdout",
    "holdout_key",
    "report_of",
    "resolve_champion",
    "resolve_holdout",
    "run_gate",
]


@dataclass(frozen=True, slots=True)
class Holdout:
    """The rows a gate judges: a dataset version (or a file), its label and content hash."""

    label: str
    hash: str
    frame: pd.DataFrame


@dataclass(frozen=True, slots=True)
class GateRun:
    """A gate's report and the registry record that keeps it (``reused``: found, not run)."""

    report: GateReport
    result: GateResult
    reused: bool = False

    @property
    def passed(self) -> bool:
        """Whether every check passed (or was skipped)."""
        return self.result.passed


def holdout_key(workspace: Workspace, data: str) -> tuple[str, str]:
    """(label, content hash) of ``holdout@v2`` (a dataset version) or of a Parquet/CSV file."""
    text = data.strip()
    if not text:
        raise UserInputError("--data is empty; give a dataset version (holdout@v2) or a file")
    path = Path(text)
    if "@" not in text and path.is_file():
        from loopml.store.hashing import hash_file

        return str(path), hash_file(path)
    from loopml.data.versioning import resolve

    _, version = resolve(workspace, text)
    return version.label, version.hash


def resolve_holdout(workspace: Workspace, data: str) -> Holdout:
    """The holdout ``data`` names (see :func:`holdout_key`), read into a frame."""
    label, digest = holdout_key(workspace, data)
    if "@" not in data and Path(data.strip()).is_file():
        from loopml.validation.datafile import read_data

        return Holdout(label=label, hash=digest, frame=read_data(Path(data.strip())))
    from loopml.data.api import read_frame

    # Read the version resolved above, not whatever `@latest` names a moment later.
    return Holdout(label=label, hash=digest, frame=read_frame(label, workspace=workspace))


def resolve_champion(
    workspace: Workspace, candidate: ModelVersion, against: str | None
) -> tuple[ModelVersion | None, str | None, str]:
    """The version to compare with: an alias (``champion``) or a version (``v3``, ``3``).

    Returns (version or None, the alias named or None, why there is none).
    """
    from loopml.registry.repository import ModelRepository

    if against is None:
        return None, None, "no champion to compare with (--against not given)"
    repository = ModelRepository(workspace.metadata)
    text = against.strip()
    digits = text[1:] if text[:1] in ("v", "V") else text
    if digits.isdigit():
        found = repository.resolve(Ref(candidate.model, RefKind.VERSION, version=int(digits)))
        return found, None, ""
    alias = validate_label(text, "alias")
    number = repository.get_model(candidate.model).aliases.get(alias)
    if number is None:
        return None, alias, f"no champion yet ({candidate.model}@{alias} is not set)"
    return repository.resolve(Ref(candidate.model, RefKind.VERSION, version=number)), alias, ""


def _features(model: LoadedModel, frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """The model's input columns of the holdout (the label and other extra columns left out)."""
    features = frame.drop(columns=[label])
    signature = model.signature
    if signature is not None and signature.named:
        missing = [c for c in signature.names if c not in features.columns]
        if missing:
            raise UserInputError(
                f"the holdout lacks {', '.join(missing)}, which {model.label} needs; give "
                "holdout data with the model's input columns"
            )
        features = features[signature.names]
    return features


def _confusion(y: np.ndarray, labels: np.ndarray, classes: tuple[Any, ...]) -> ConfusionMatrix:
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(y, labels, labels=list(classes))
    return ConfusionMatrix(
        classes=tuple(str(c) for c in classes),
        counts=tuple(tuple(int(c) for c in row) for row in counts),
    )


def _residuals(y: np.ndarray, predicted: np.ndarray) -> Residuals:
    residuals = np.asarray(y, dtype=float) - np.asarray(predicted, dtype=float)
    residuals = residuals[np.isfinite(residuals)]
    counts, edges = np.histogram(residuals, bins=30)
    return Residuals(
        edges=tuple(float(e) for e in edges),
        counts=tuple(int(c) for c in counts),
        mean=float(residuals.mean()) if residuals.size else 0.0,
        std=float(residuals.std()) if residuals.size else 0.0,
    )


def _labels(frame: pd.DataFrame, spec: GateSpec, classes: tuple[Any, ...] | None) -> np.ndarray:
    """The label column, as the model's own classes when the holdout's type differs a little."""
    import pandas as pd

    column = frame[spec.label]
    if column.isna().any():
        raise UserInputError(
            f"the label column {spec.label!r} of the holdout has {int(column.isna().sum())} "
            "missing values; drop those rows or fill them"
        )
    if classes and pd.api.types.is_bool_dtype(column) and not isinstance(classes[0], bool):
        column = column.astype(int)  # booleans saved by one tool, 0/1 classes in the model
    return np.asarray(column.to_numpy())


def _check_label_values(
    y: np.ndarray,
    classes: tuple[Any, ...] | None,
    spec: GateSpec,
    data: str,
    model: str,
) -> None:
    """Refuse a label the model cannot be judged on: values outside a classifier's classes
    (text against numbers, say), or non-numbers for a regressor."""
    if classes is None:
        if not np.issubdtype(np.asarray(y).dtype, np.number):
            raise UserInputError(
                f"the label {spec.label!r} of {data} is not numeric ({np.asarray(y).dtype}), "
                f"but {model} is a regressor"
            )
        return
    known = set(classes)
    unknown = [v for v in dict.fromkeys(np.asarray(y).tolist()) if v not in known]
    if unknown:
        shown = ", ".join(repr(v) for v in unknown[:3])
        raise UserInputError(
            f"the label {spec.label!r} of {data} has values {model} never predicts ({shown}); "
            f"its classes are {', '.join(map(repr, classes))}: give labels of the same type"
        )


def run_gate(
    candidate: ModelVersion,
    gate: str | Path | GateSpec,
    data: str,
    *,
    against: str | None = "champion",
    workspace: Workspace,
    progress: Callable[[str], None] | None = None,
) -> GateRun:
    """Run every check of ``gate`` on ``candidate`` with the holdout ``data``; record it.

    ``against`` names the version to compare with (an alias, default ``champion``, or a version
    number); with no such version the no-regression check is skipped and the report says so.
    """
    from loopml.registry.api import load_model
    from loopml.registry.gates import GateResults
    from loopml.registry.gating.checks import GateContext, predict_all, run_checks

    spec = gate if isinstance(gate, GateSpec) else load_gate(gate)
    started = time.perf_counter()
    note = progress or (lambda _label: None)
    note("reading the holdout")
    holdout = resolve_holdout(workspace, data)
    if spec.label not in holdout.frame.columns:
        raise GateFileError(
            f"{spec.path}: label {spec.label!r} is not a column of {holdout.label} "
            f"(it has {', '.join(map(str, holdout.frame.columns[:12]))})"
        )
    if len(holdout.frame) == 0:
        raise UserInputError(f"{holdout.label} has no rows to judge the model on")
    champion_version, alias, champion_note = resolve_champion(workspace, candidate, against)
    note(f"predicting with {candidate.label}")
    model = load_model(candidate.label, workspace=workspace)
    features = _features(model, holdout.frame, spec.label)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # extra columns of the holdout are expected
        predictions = predict_all(model, features)
    champion = None
    champion_features = None
    if champion_version is not None and champion_version.id == candidate.id:
        champion_note = f"{candidate.label} is the champion itself; nothing to compare"
    elif champion_version is not None:
        champion = load_model(champion_version.label, workspace=workspace)
        try:  # the champion may take other columns than the candidate
            champion_features = _features(champion, holdout.frame, spec.label)
        except UserInputError:
            champion_features = None
    task = "classification" if predictions.classes is not None else "regression"
    if spec.positive is not None and spec.positive not in (predictions.classes or ()):
        known = ", ".join(map(str, predictions.classes or ())) or "none: it is a regressor"
        raise GateFileError(
            f"{spec.path}: positive: {spec.positive!r} is not one of {candidate.label}'s "
            f"classes ({known})"
        )
    y = _labels(holdout.frame, spec, predictions.classes)
    _check_label_values(y, predictions.classes, spec, holdout.label, candidate.label)
    context = GateContext(
        spec=spec,
        frame=holdout.frame,
        features=features,
        y=y,
        candidate=model,
        predictions=predictions,
        champion=champion,
        champion_note=champion_note,
        task=task,
        champion_features=champion_features,
    )
    metrics: dict[str, float] = {}
    slices: list[SliceTable] = []
    outcomes = run_checks(context, metrics, slices, progress=note)
    confusion = None
    residuals = None
    if predictions.classes is not None:
        confusion = _confusion(y, predictions.labels, predictions.classes)
    else:
        residuals = _residuals(y, predictions.labels)
    report = GateReport(
        model=candidate.model,
        version=candidate.number,
        gate_file=spec.path,
        gate_file_hash=spec.digest,
        data=holdout.label,
        data_hash=holdout.hash,
        rows=len(holdout.frame),
        champion=champion.version.number if champion is not None else None,
        champion_alias=alias,
        outcomes=tuple(outcomes),
        task=task,
        metrics=metrics,
        slices=tuple(slices),
        confusion=confusion,
        residuals=residuals,
        duration_s=round(time.perf_counter() - started, 3),
    )
    # The key names the version compared with, even when it is the candidate itself, so that a
    # move of the alias checks the result against the alias's holder at that moment.
    compared = champion_version.id if champion_version is not None else None
    result = GateResults(workspace.metadata).add(
        model_version_id=candidate.id,
        gate_file_hash=spec.digest,
        data_hash=holdout.hash,
        champion_version_id=compared,
        passed=report.passed,
        report=report.to_json(),
        user=workspace.settings.user,
    )
    return GateRun(report=report, result=result)


def report_of(result: GateResult) -> GateReport:
    """The report a gate result keeps."""
    try:
        return GateReport.from_json(result.report)
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(
            f"gate result {result.id[:12]} holds no readable report ({exc})"
        ) from None
